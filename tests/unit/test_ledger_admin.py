"""The ledger's admin: pages answer, drafts are written through the posting service (lines
and all), posted entries stay read-only, and the actions call the services and report
refusals as messages, never a 500."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
import time_machine
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.urls import reverse

from ledger.models import (
    Account,
    Budget,
    BudgetVariance,
    Company,
    DailyTotal,
    EntryStatus,
    FiscalYear,
    JournalEntry,
    JournalLine,
    Membership,
    Period,
    PeriodBalance,
    PeriodStatus,
    Reconciliation,
    TrialBalanceSnapshot,
)
from ledger.services import periods, posting, reports
from ledger.services.chart import load_default_chart
from ledger.services.posting import Entry, Line
from tests.factories import AccountFactory, CompanyFactory, MembershipFactory

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 11, 21, 10, 0, tzinfo=datetime.UTC)
DAY = datetime.date(2026, 11, 20)
ROWS = 30


@pytest.fixture(autouse=True)
def frozen_time():
    with time_machine.travel(NOW, tick=False):
        yield


def url(model, view: str, *args) -> str:
    return reverse(f"admin:ledger_{model._meta.model_name}_{view}", args=args)


def act(admin_client, model, action: str, *objects):
    data = {"action": action, ACTION_CHECKBOX_NAME: [obj.pk for obj in objects]}
    return admin_client.post(url(model, "changelist"), data, follow=True)


def texts(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def sale(chart, amount="100.00", day=DAY, **fields) -> Entry:
    return Entry(day, [Line(chart["1100"], debit=amount), Line(chart["4100"], credit=amount)], **fields)


def period_of(company, day: datetime.date) -> Period:
    return Period.objects.for_company(company).containing(day).get()


def close_through(company, day: datetime.date) -> None:
    for period in Period.objects.for_company(company).filter(end_date__lte=day).order_by("start_date"):
        periods.close_period(period)


def lines_form(prefix_rows: list[dict], initial: int = 0, extra: int = 1) -> dict:
    """The line inline's POST data: the given rows, then ``extra`` blank ones."""
    data = {
        "lines-TOTAL_FORMS": str(len(prefix_rows) + extra),
        "lines-INITIAL_FORMS": str(initial),
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
    }
    for i, row in enumerate(prefix_rows):
        data.update({f"lines-{i}-{name}": value for name, value in row.items()})
    return data


@pytest.fixture
def records(company, chart, other_company):
    """One row of every ledger table, for the page sweep."""
    posted = posting.post(company, sale(chart, reference="INV-1")).entry
    posting.create_draft(company, sale(chart, "5.00", reference="DRAFT-1"))
    period = period_of(company, DAY)
    Budget.objects.create(company=company, account=chart["4100"], period=period, amount=Decimal("1000"))
    BudgetVariance.objects.create(
        company=company,
        account=chart["4100"],
        period=period,
        budget=Decimal("1000"),
        actual=Decimal("100"),
        variance=Decimal("-900"),
        percentage=Decimal("-90"),
        favourable=False,
        computed_at=NOW,
    )
    DailyTotal.objects.create(
        company=company,
        date=DAY,
        entries=1,
        lines=2,
        debit=Decimal(100),
        credit=Decimal(100),
        balanced=True,
        recorded_at=NOW,
    )
    PeriodBalance.objects.create(
        company=company, period=period, account=chart["1100"], debit=Decimal(100), credit=0, closing=Decimal(100)
    )
    reports.snapshot_trial_balance(company, datetime.date(2026, 1, 1), DAY)
    Reconciliation.objects.create(
        company=company,
        account=chart["1200"],
        as_of=DAY,
        subledger="test",
        ledger_balance=0,
        subledger_balance=Decimal(5),
        difference=Decimal(-5),
        differences=[{"party": "customer:1", "ledger": "0", "subledger": "5"}],
        computed_at=NOW,
    )
    return posted


ALL_MODELS = [
    Company,
    Account,
    FiscalYear,
    Period,
    JournalEntry,
    Budget,
    BudgetVariance,
    DailyTotal,
    PeriodBalance,
    TrialBalanceSnapshot,
    Reconciliation,
]


@pytest.mark.parametrize("model", ALL_MODELS)
def test_every_changelist_and_change_page_answers(admin_client, records, model):
    obj = model.objects.order_by("pk").first()

    assert admin_client.get(url(model, "changelist")).status_code == 200
    assert admin_client.get(url(model, "change", obj.pk)).status_code == 200


@pytest.mark.parametrize("model", [Company, Account, JournalEntry, Budget])
def test_add_pages_answer_for_what_operators_create(admin_client, records, model):
    assert admin_client.get(url(model, "add")).status_code == 200


@pytest.mark.parametrize(
    "model", [FiscalYear, Period, BudgetVariance, DailyTotal, PeriodBalance, TrialBalanceSnapshot, Reconciliation]
)
def test_what_the_ledger_keeps_itself_cannot_be_added_or_changed(admin_client, records, model):
    obj = model.objects.order_by("pk").first()

    assert admin_client.get(url(model, "add")).status_code == 403
    assert admin_client.post(url(model, "change", obj.pk), {}).status_code == 403


def test_the_changelist_filters_answer(admin_client, records, company):
    queries = [
        (Account, f"?company__id__exact={company.pk}&type=asset&role=bank&is_active__exact=1&q=bank", 1),
        (Period, f"?company__id__exact={company.pk}&status=closed", 0),
        (JournalEntry, "?status=draft&source=manual&is_closing__exact=0&flagged=no&q=DRAFT", 1),
        (JournalEntry, "?date__year=2026&date__month=11", 2),
        (Budget, f"?company__id__exact={company.pk}&period={period_of(company, DAY).pk}", 1),
    ]

    for model, query, rows in queries:
        response = admin_client.get(url(model, "changelist") + query)
        assert response.status_code == 200, query
        assert len(response.context["cl"].result_list) == rows, query


# --- Query counts --------------------------------------------------------------------------


@pytest.fixture
def many(company, chart):
    """ROWS posted entries over two fiscal years whose periods start on the 6th (so a
    period's label reads its year's name), and ROWS accounts with a budget each."""
    Company.objects.filter(pk=company.pk).update(fiscal_year_start_month=4, fiscal_year_start_day=6)
    company.refresh_from_db()
    days = [DAY - datetime.timedelta(days=9 * i) for i in range(ROWS)]
    posting.post_many(company, [sale(chart, day=day) for day in days])
    for i, day in enumerate(days):
        account = AccountFactory(company=company, code=f"7{i:03d}", parent=chart["6000"], type="expense")
        Budget.objects.create(company=company, account=account, period=period_of(company, day), amount=1)


@pytest.mark.parametrize("model", [Account, Period, JournalEntry, Budget])
def test_changelists_take_a_fixed_number_of_queries(admin_client, many, django_assert_max_num_queries, model):
    with django_assert_max_num_queries(8):
        response = admin_client.get(url(model, "changelist"))

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) >= 24


# --- Companies -------------------------------------------------------------------------------


def test_loading_the_default_chart_reports_what_it_created(admin_client, company):
    first = act(admin_client, Company, "load_chart", company)
    again = act(admin_client, Company, "load_chart", company)

    assert texts(first) == ["acme: 31 accounts created, 0 already there"]
    assert texts(again) == ["acme: 0 accounts created, 31 already there"]
    assert Account.objects.for_company(company).count() == 31


def test_opening_the_current_year_creates_it_once(admin_client, company):
    first = act(admin_client, Company, "open_current_year", company)
    again = act(admin_client, Company, "open_current_year", company)

    assert texts(first) == ["acme: FY2026, 2026-01-01 to 2026-12-31, opened with its 12 periods"]
    assert texts(again) == ["acme: FY2026, 2026-01-01 to 2026-12-31, already there (open)"]
    assert Period.objects.for_company(company).count() == 12


# --- Accounts --------------------------------------------------------------------------------


def account_form(company, **fields) -> dict:
    return {"company": company.pk, "code": "1600", "name": "Vehicles", "type": "asset", "role": "", **fields}


def test_a_new_account_follows_its_type_for_the_normal_balance(admin_client, company, chart):
    response = admin_client.post(url(Account, "add"), account_form(company, parent=chart["1000"].pk, is_active="on"))

    assert response.status_code == 302
    account = Account.objects.get(company=company, code="1600")
    assert (account.normal_balance, account.parent, account.is_active) == ("debit", chart["1000"], True)


def test_an_account_under_another_companys_parent_is_refused(admin_client, company, chart, other_company):
    foreign = AccountFactory(company=other_company, code="1000")

    response = admin_client.post(url(Account, "add"), account_form(company, parent=foreign.pk))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["parent"] == ["The parent account belongs to another company."]
    assert not Account.objects.filter(company=company, code="1600").exists()


def test_a_second_account_with_a_role_is_refused(admin_client, company, chart):
    response = admin_client.post(url(Account, "add"), account_form(company, role="bank"))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert Account.objects.for_company(company).with_role("bank").count() == 1


def test_an_account_can_be_deactivated_from_the_list(admin_client, company, chart):
    bank = chart["1100"]
    data = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-0-id": bank.pk,
        "_save": "Save",
    }

    response = admin_client.post(url(Account, "changelist") + "?q=1100", data)

    assert response.status_code == 302
    bank.refresh_from_db()
    assert not bank.is_active


def test_deleting_an_account_with_postings_shows_the_protected_page(admin_client, company, chart):
    posting.post(company, sale(chart))

    shown = admin_client.get(url(Account, "delete", chart["4100"].pk))
    posted = admin_client.post(url(Account, "delete", chart["4100"].pk), {"post": "yes"})

    for response in (shown, posted):
        assert response.status_code == 200
        assert "would require deleting the following protected related objects" in response.content.decode()
    assert Account.objects.filter(pk=chart["4100"].pk).exists()


# --- Periods ---------------------------------------------------------------------------------


@pytest.fixture
def year(company):
    return periods.open_year(company, DAY)


def test_closing_periods_goes_in_date_order_and_reports_refusals(admin_client, company, chart, year):
    posting.post(company, sale(chart, day=datetime.date(2026, 1, 15)))
    january, february, november = (period_of(company, datetime.date(2026, m, 1)) for m in (1, 2, 11))

    response = act(admin_client, Period, "close_periods", november, february, january)

    assert texts(response) == ["Close: 2 done, 1 refused: acme 2026-11: Close 2026-03 first: periods close in order."]
    january.refresh_from_db()
    assert january.status == PeriodStatus.CLOSED
    assert january.balances_at is not None
    assert PeriodBalance.objects.filter(period=january).count() == 2


def test_a_period_with_drafts_left_is_not_closed(admin_client, company, chart, year):
    draft = posting.create_draft(company, sale(chart, day=datetime.date(2026, 1, 15)))
    january = period_of(company, datetime.date(2026, 1, 1))

    response = act(admin_client, Period, "close_periods", january)

    assert texts(response) == [
        f"Close: 0 done, 1 refused: acme 2026-01: 2026-01 still has 1 draft entry (JE{draft.pk}); "
        "post or delete it first."
    ]
    january.refresh_from_db()
    assert january.status == PeriodStatus.OPEN


def test_reopening_goes_in_reverse_order(admin_client, company, year):
    close_through(company, datetime.date(2026, 2, 28))
    january, february, march = (period_of(company, datetime.date(2026, m, 1)) for m in (1, 2, 3))

    response = act(admin_client, Period, "reopen_periods", january, february, march)

    assert texts(response) == ["Reopen: 2 done, 1 already open"]
    assert set(Period.objects.for_company(company).values_list("status", flat=True)) == {PeriodStatus.OPEN}
    assert not PeriodBalance.objects.exists()


def test_a_periods_status_cannot_be_posted_to_its_page(admin_client, company, year):
    january = period_of(company, datetime.date(2026, 1, 1))

    response = admin_client.post(url(Period, "change", january.pk), {"status": "closed"})

    assert response.status_code == 403
    january.refresh_from_db()
    assert january.status == PeriodStatus.OPEN


# --- Journal entries -------------------------------------------------------------------------


def entry_form(company, day="2026-11-20", reference="ADJ-1", **fields) -> dict:
    return {"company": company.pk, "date": day, "reference": reference, "memo": "", **fields}


def test_a_draft_with_lines_is_created_through_the_service(admin_client, admin_user, company, chart):
    rows = [
        {"account": chart["6200"].pk, "debit": "100.00", "description": "November rent"},
        {"account": chart["1100"].pk, "credit": "60.00"},
    ]

    response = admin_client.post(url(JournalEntry, "add"), {**entry_form(company), **lines_form(rows)})

    assert response.status_code == 302
    draft = JournalEntry.objects.get(reference="ADJ-1")
    assert (draft.status, draft.period, draft.created_by) == (EntryStatus.DRAFT, period_of(company, DAY), admin_user)
    assert list(draft.lines.order_by("pk").values_list("account__code", "debit", "credit", "currency", "amount")) == [
        ("6200", Decimal("100.000"), Decimal(0), "GBP", Decimal("100.000")),
        ("1100", Decimal(0), Decimal("60.000"), "GBP", Decimal("-60.000")),
    ]
    assert response["Location"] == url(JournalEntry, "changelist")


def test_posting_an_unbalanced_draft_reports_the_difference(admin_client, company, chart):
    draft = posting.create_draft(
        company, Entry(DAY, [Line(chart["6200"], debit="100.00"), Line(chart["1100"], credit="60.00")])
    )

    response = act(admin_client, JournalEntry, "post_drafts", draft)

    assert texts(response) == [
        f"Post: 0 done, 1 refused: JE{draft.pk}: Debits 100.00 and credits 60.00 GBP differ by 40.00."
    ]
    draft.refresh_from_db()
    assert draft.status == EntryStatus.DRAFT
    page = admin_client.get(url(JournalEntry, "change", draft.pk)).content.decode()
    assert "debits 100.00 and credits 60.00 GBP: out by 40.00" in page


def test_posting_drafts_posts_the_balanced_ones(admin_client, company, chart):
    balanced = posting.create_draft(company, sale(chart))
    short = posting.create_draft(company, Entry(DAY, [Line(chart["1100"], debit="5.00")]))
    posted = posting.post(company, sale(chart, "7.00")).entry

    response = act(admin_client, JournalEntry, "post_drafts", balanced, short, posted)

    assert texts(response) == [
        f"Post: 1 done, 1 already posted, 1 refused: JE{short.pk}: "
        "An entry needs at least 2 lines; this one has 1. Debits 5.00 and credits 0 GBP differ by 5.00."
    ]
    balanced.refresh_from_db()
    assert balanced.status == EntryStatus.POSTED
    assert balanced.lines.filter(posted=True).count() == 2


def test_editing_a_draft_replaces_its_lines(admin_client, company, chart):
    draft = posting.create_draft(company, sale(chart, reference="DRAFT-1"))
    bank, sales = draft.lines.order_by("pk")
    rows = [
        {"id": bank.pk, "entry": draft.pk, "account": chart["1100"].pk, "debit": "120.00"},
        {"id": sales.pk, "entry": draft.pk, "account": chart["4100"].pk, "credit": "100.00", "DELETE": "on"},
        {"account": chart["4100"].pk, "credit": "110.00", "currency": "USD", "base_amount": "100.00"},
        {"account": chart["2200"].pk, "credit": "20.00", "party": "hmrc"},
    ]

    response = admin_client.post(
        url(JournalEntry, "change", draft.pk),
        {**entry_form(company, day="2026-10-31", reference="DRAFT-1b"), **lines_form(rows, initial=2)},
    )

    assert response.status_code == 302, response.context and response.context["inline_admin_formsets"][0].formset.errors
    draft.refresh_from_db()
    assert (draft.reference, draft.date, draft.period.label) == ("DRAFT-1b", datetime.date(2026, 10, 31), "2026-10")
    assert list(draft.lines.order_by("pk").values_list("account__code", "currency", "amount", "party")) == [
        ("1100", "GBP", Decimal("120.000"), ""),
        ("4100", "USD", Decimal("-100.000"), ""),
        ("2200", "GBP", Decimal("-20.000"), "hmrc"),
    ]
    assert posting.post_draft(draft).created


def test_a_draft_page_shows_its_totals_and_existing_lines(admin_client, company, chart):
    draft = posting.create_draft(
        company,
        Entry(
            DAY,
            [Line(chart["1100"], debit="5.00"), Line(chart["4100"], credit="6.00", currency="EUR", base_amount="5.00")],
        ),
    )

    response = admin_client.get(url(JournalEntry, "change", draft.pk))

    page = response.content.decode()
    assert 'name="_save"' in page
    assert "debits 5.00 and credits 5.00 GBP" in page
    forms = response.context["inline_admin_formsets"][0].formset.forms
    assert [(f.initial["currency"], f.initial.get("base_amount")) for f in forms[:2]] == [
        ("GBP", None),
        ("EUR", Decimal("5.000")),
    ]


def test_a_line_in_another_currency_without_its_base_amount_is_a_form_error(admin_client, company, chart):
    rows = [
        {"account": chart["1100"].pk, "debit": "100.00"},
        {"account": chart["4100"].pk, "credit": "110.00", "currency": "USD"},
    ]

    response = admin_client.post(url(JournalEntry, "add"), {**entry_form(company), **lines_form(rows)})

    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.non_form_errors()
    assert list(errors) == ["line 2: a USD line needs base_amount, its value in GBP"]
    assert not JournalEntry.objects.exists()


def test_a_line_with_both_sides_is_a_form_error(admin_client, company, chart):
    rows = [{"account": chart["1100"].pk, "debit": "1.00", "credit": "1.00"}]

    response = admin_client.post(url(JournalEntry, "add"), {**entry_form(company), **lines_form(rows)})

    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.non_form_errors()
    assert list(errors) == ["line 1: give either a debit or a credit, not both or neither"]


def test_a_draft_dated_in_a_closed_period_is_a_form_error(admin_client, company, chart):
    periods.open_year(company, DAY)
    close_through(company, datetime.date(2026, 1, 31))
    rows = [{"account": chart["1100"].pk, "debit": "1.00"}]

    response = admin_client.post(
        url(JournalEntry, "add"), {**entry_form(company, day="2026-01-15"), **lines_form(rows)}
    )

    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.non_form_errors()
    assert list(errors) == ["Period 2026-01 is closed; it accepts no postings."]
    assert not JournalEntry.objects.exists()


def test_an_account_of_another_company_is_a_form_error(admin_client, company, chart, other_company):
    foreign = AccountFactory(company=other_company)
    rows = [{"account": foreign.pk, "debit": "1.00"}]

    response = admin_client.post(url(JournalEntry, "add"), {**entry_form(company), **lines_form(rows)})

    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.non_form_errors()
    assert list(errors) == [f"line 1: account {foreign.pk} does not exist in this company"]


def test_a_posted_entry_is_read_only(admin_client, company, chart):
    entry = posting.post(company, sale(chart, reference="INV-1")).entry
    line = entry.lines.order_by("pk").first()
    rows = [{"id": line.pk, "entry": entry.pk, "account": chart["6100"].pk, "debit": "999.00"}]

    page = admin_client.get(url(JournalEntry, "change", entry.pk))
    changed = admin_client.post(
        url(JournalEntry, "change", entry.pk),
        {**entry_form(company, reference="EDITED"), **lines_form(rows, initial=2)},
    )
    deleted = admin_client.post(url(JournalEntry, "delete", entry.pk), {"post": "yes"})

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert (changed.status_code, deleted.status_code) == (403, 403)
    entry.refresh_from_db()
    line.refresh_from_db()
    assert (entry.reference, line.account_id, line.debit) == ("INV-1", chart["1100"].pk, Decimal("100.000"))


def test_reversing_posts_the_mirror_once_and_refuses_drafts(admin_client, company, chart):
    entry = posting.post(company, sale(chart)).entry
    draft = posting.create_draft(company, sale(chart, "5.00"))

    response = act(admin_client, JournalEntry, "reverse_entries", entry, draft)
    again = act(admin_client, JournalEntry, "reverse_entries", entry)

    assert texts(response) == [
        f"Reverse: 1 done, 1 refused: JE{draft.pk}: Entry {draft.pk} is a draft; delete it instead of reversing it."
    ]
    assert texts(again) == ["Reverse: 0 done, 1 already reversed"]
    entry.refresh_from_db()
    assert entry.status == EntryStatus.REVERSED
    assert sorted(entry.reversed_by.lines.values_list("amount", flat=True)) == [Decimal(-100), Decimal(100)]
    page = admin_client.get(url(JournalEntry, "change", entry.pk)).content.decode()
    assert f"JE{entry.reversed_by.pk}</a>" in page


def test_only_drafts_are_deleted(admin_client, company, chart):
    entry = posting.post(company, sale(chart)).entry
    draft = posting.create_draft(company, sale(chart, "5.00"))

    response = act(admin_client, JournalEntry, "delete_drafts", entry, draft)

    assert texts(response) == ["Deleted 1 drafts; 1 posted entries kept (reverse them instead)"]
    assert list(JournalEntry.objects.values_list("pk", flat=True)) == [entry.pk]
    assert "delete_selected" not in admin_client.get(url(JournalEntry, "changelist")).content.decode()


# --- Budgets ---------------------------------------------------------------------------------


def test_a_budget_takes_its_company_from_its_account(admin_client, company, chart, year):
    period = period_of(company, DAY)

    response = admin_client.post(
        url(Budget, "add"), {"account": chart["6200"].pk, "period": period.pk, "amount": "1500.00"}
    )

    assert response.status_code == 302
    budget = Budget.objects.get()
    assert (budget.company, budget.amount) == (company, Decimal("1500.000"))


def test_a_budget_for_another_companys_period_is_refused(admin_client, company, chart, other_company):
    foreign = periods.open_year(other_company, DAY).periods.first()

    response = admin_client.post(url(Budget, "add"), {"account": chart["6200"].pk, "period": foreign.pk, "amount": "1"})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["period"] == [
        "This period belongs to another company than the account."
    ]
    assert not Budget.objects.exists()


def test_budgets_are_edited_from_the_list(admin_client, company, chart, year):
    budget = Budget.objects.create(company=company, account=chart["6200"], period=period_of(company, DAY), amount=1)
    data = {"form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "1", "form-0-id": budget.pk, "form-0-amount": "250.00"}

    response = admin_client.post(url(Budget, "changelist"), {**data, "_save": "Save"})

    assert response.status_code == 302
    budget.refresh_from_db()
    assert budget.amount == Decimal(250)


# --- Scoping to the operator's companies -------------------------------------------------------


@pytest.fixture
def operator(company):
    """A staff user, not a superuser, who is a member of acme and holds every ledger permission."""
    user = MembershipFactory(company=company, user__username="operator", user__is_staff=True).user
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="ledger"))
    return user


@pytest.fixture
def operator_client(client, operator):
    client.force_login(operator)
    return client


@pytest.fixture
def two_books(company, chart, other_company, outsider):
    """Acme's and rival's books side by side: a chart, a year, a posted entry and a draft each."""
    load_default_chart(other_company)
    rival = {a.code: a for a in Account.objects.for_company(other_company)}
    for books, accounts in ((company, chart), (other_company, rival)):
        periods.open_year(books, DAY)
        posting.post(books, sale(accounts, reference=f"{books.slug}-posted"))
        posting.create_draft(books, sale(accounts, "5.00", reference=f"{books.slug}-draft"))
        Budget.objects.create(company=books, account=accounts["6200"], period=period_of(books, DAY), amount=1)
    return rival


DOES_NOT_EXIST = "doesn\N{RIGHT SINGLE QUOTATION MARK}t exist"  # Django's message, typographic apostrophe


def listed(response) -> list:
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


@pytest.mark.parametrize("model", [Company, Membership, Account, FiscalYear, Period, JournalEntry, Budget])
def test_an_operator_lists_only_their_companys_rows(operator_client, company, two_books, model):
    rows = listed(operator_client.get(url(model, "changelist")))

    assert rows
    assert {getattr(row, "company", row) for row in rows} == {company}


@pytest.mark.parametrize("model", [Account, Period, JournalEntry])
def test_a_superuser_lists_every_companys_rows(admin_client, company, other_company, two_books, model):
    rows = listed(admin_client.get(url(model, "changelist")))

    assert {row.company for row in rows} == {company, other_company}


def test_the_filters_offer_only_the_operators_companies(operator_client, operator, company, other_company, two_books):
    alone = operator_client.get(url(Budget, "changelist"))
    MembershipFactory(user=operator, company=CompanyFactory(name="Beta Ltd", slug="beta"))
    both = operator_client.get(url(Budget, "changelist"))

    # With one company to choose from, Django leaves the company filter off.
    (period_filter,) = alone.context["cl"].filter_specs
    assert {label.split()[0] for _, label in period_filter.lookup_choices} == {"acme"}
    company_filter, _ = both.context["cl"].filter_specs
    assert [label for _, label in company_filter.lookup_choices] == [company.name, "Beta Ltd"]
    assert other_company.name not in alone.content.decode() + both.content.decode()


def test_another_companys_entry_does_not_exist_for_an_operator(operator_client, other_company, two_books):
    entry = JournalEntry.objects.for_company(other_company).get(status=EntryStatus.POSTED)

    for view in ("change", "delete", "history"):
        response = operator_client.get(url(JournalEntry, view, entry.pk))

        assert response.status_code == 302, view
        assert response["Location"] == reverse("admin:index")
        followed = operator_client.get(response["Location"])
        assert any(DOES_NOT_EXIST in text for text in texts(followed)), view


def test_another_company_does_not_exist_for_an_operator(operator_client, other_company):
    response = operator_client.get(url(Company, "change", other_company.pk), follow=True)

    assert response.redirect_chain[0][0] == reverse("admin:index")
    assert any(DOES_NOT_EXIST in text for text in texts(response))


def test_the_account_form_offers_only_the_operators_companies(operator_client, company, chart, other_company):
    page = operator_client.get(url(Account, "add"))
    refused = operator_client.post(url(Account, "add"), account_form(other_company))

    form = page.context["adminform"].form
    assert list(form.fields["company"].queryset) == [company]
    assert list(form.fields["parent"].queryset) == list(Account.objects.for_company(company))
    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors["company"]
    assert not Account.objects.filter(company=other_company).exists()


def test_an_operator_cannot_use_another_companys_account_on_a_line(operator_client, company, two_books):
    lines = [{"account": two_books["1100"].pk, "debit": "1.00"}, {"account": two_books["4100"].pk, "credit": "1.00"}]

    response = operator_client.post(url(JournalEntry, "add"), {**entry_form(company), **lines_form(lines)})

    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.errors
    assert all("account" in line for line in errors[:2])
    assert not JournalEntry.objects.filter(reference="ADJ-1").exists()


def test_an_operator_writes_drafts_for_their_company(operator_client, operator, company, chart):
    lines = [{"account": chart["6200"].pk, "debit": "10.00"}, {"account": chart["1100"].pk, "credit": "10.00"}]

    response = operator_client.post(url(JournalEntry, "add"), {**entry_form(company), **lines_form(lines)})

    assert response.status_code == 302
    assert JournalEntry.objects.get(reference="ADJ-1").created_by == operator


def test_an_operator_cannot_close_another_companys_period(operator_client, company, other_company, two_books):
    theirs = period_of(other_company, datetime.date(2026, 1, 1))

    response = act(operator_client, Period, "close_periods", theirs)

    assert texts(response) == ["Close: 0 done"]
    theirs.refresh_from_db()
    assert theirs.status == PeriodStatus.OPEN


def test_an_operators_actions_run_only_on_their_companys_rows(operator_client, company, other_company, two_books):
    drafts = JournalEntry.objects.drafts().order_by("company__slug")

    response = act(operator_client, JournalEntry, "post_drafts", *drafts)

    assert texts(response) == ["Post: 1 done"]
    assert dict(drafts.model.objects.filter(reference__endswith="-draft").values_list("company__slug", "status")) == {
        "acme": EntryStatus.POSTED,
        "rival": EntryStatus.DRAFT,
    }


def autocomplete(client, model, field: str, term: str = "") -> list[int]:
    query = {"app_label": "ledger", "model_name": model._meta.model_name, "field_name": field, "term": term}
    response = client.get(reverse("admin:autocomplete"), query)
    assert response.status_code == 200
    return sorted(int(result["id"]) for result in response.json()["results"])


def test_autocomplete_answers_only_the_operators_rows(operator_client, company, chart, two_books):
    assert autocomplete(operator_client, JournalLine, "account", "1100") == [chart["1100"].pk]
    assert autocomplete(operator_client, Account, "parent", "Assets") == [chart["1000"].pk]
    assert autocomplete(operator_client, Account, "company") == [company.pk]
    assert autocomplete(operator_client, Budget, "period") == sorted(
        Period.objects.for_company(company).values_list("pk", flat=True)
    )


def test_autocomplete_answers_every_company_for_a_superuser(admin_client, chart, two_books):
    assert autocomplete(admin_client, JournalLine, "account", "1100") == [chart["1100"].pk, two_books["1100"].pk]


def test_a_company_an_operator_adds_has_them_as_a_member(operator_client, operator):
    data = {
        "name": "Newco Ltd",
        "slug": "newco",
        "base_currency": "GBP",
        "timezone": "Europe/London",
        "fiscal_year_start_month": "1",
        "fiscal_year_start_day": "1",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
    }

    response = operator_client.post(url(Company, "add"), data)

    assert response.status_code == 302
    assert Membership.objects.filter(user=operator, company__slug="newco").exists()
