"""The ledger's API under /api/v1/ledger/: accounts, periods, journal entries, balances, the
trial balance, budgets and the GL jobs' results, each scoped to the caller's companies."""

from __future__ import annotations

import csv
import datetime
import io
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from ledger.models import Account, Budget, JournalEntry, JournalLine, Period, PeriodStatus
from ledger.services import closing, periods, posting, reports
from ledger.services.chart import load_default_chart
from ledger.subledgers import reconcile
from tests.factories import AccountFactory, MembershipFactory

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=datetime.UTC)
DAY = datetime.date(2026, 11, 10)
ACCOUNTS = "/api/v1/ledger/accounts"
PERIODS = "/api/v1/ledger/periods"
ENTRIES = "/api/v1/ledger/journal-entries"
BALANCES = "/api/v1/ledger/balances"
TRIAL_BALANCE = "/api/v1/ledger/trial-balance"
BUDGETS = "/api/v1/ledger/budgets"


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


@pytest.fixture
def client(api, owner):
    return api.as_user(owner)


@pytest.fixture
def member_of_both(api, owner, other_company):
    """The owner, also a member of the rival company: one caller who can name both."""
    MembershipFactory(user=owner, company=other_company)
    return api.as_user(owner)


@pytest.fixture
def rival_chart(other_company):
    load_default_chart(other_company)
    return {account.code: account for account in Account.objects.filter(company=other_company)}


def sale(chart, amount="100.00", debit="1100", credit="4100") -> list[dict]:
    return [
        {"account": chart[debit].pk, "debit": amount, "description": "takings"},
        {"account": chart[credit].pk, "credit": amount},
    ]


def entry_body(company, lines, **fields) -> dict:
    return {"company": company.pk, "date": DAY.isoformat(), "reference": "S-1", "lines": lines, **fields}


def post_sale(company, chart, amount="100.00", day=DAY, **fields) -> JournalEntry:
    lines = [posting.Line(chart["1100"], debit=amount), posting.Line(chart["4100"], credit=amount)]
    return posting.post(company, posting.Entry(day, lines, **fields)).entry


def draft_sale(company, chart, amount="100.00", day=DAY) -> JournalEntry:
    lines = [posting.Line(chart["1100"], debit=amount), posting.Line(chart["4100"], credit=amount)]
    return posting.create_draft(company, posting.Entry(day, lines))


def invalid(response) -> dict:
    """The fields of a 400 in the shared error shape."""
    assert response.status_code == 400, response.content
    body = response.json()["error"]
    assert (body["status"], body["code"]) == (400, "invalid")
    return body["fields"]


def close_through(company, last: datetime.date) -> None:
    periods.open_year(company, last)
    Period.objects.for_company(company).filter(end_date__lte=last).update(status=PeriodStatus.CLOSED)


# --- Accounts -------------------------------------------------------------------------------------


def test_member_lists_their_companys_accounts_by_type_role_and_activity(client, chart, rival_chart):
    Account.objects.filter(pk=chart["6300"].pk).update(is_active=False)

    everything = client.get(ACCOUNTS, {"page_size": 500}).json()["results"]
    expenses = client.get(ACCOUNTS, {"type": "expense", "is_active": "false"}).json()["results"]
    bank = client.get(ACCOUNTS, {"company": "acme", "role": "bank"}).json()["results"]

    assert len(everything) == len(chart)
    assert {row["company"] for row in everything} == {chart["1100"].company_id}
    assert [row["code"] for row in expenses] == ["6300"]
    assert [(row["code"], row["sign"]) for row in bank] == [("1100", 1)]


def test_outsider_sees_no_account_of_another_company(api, outsider, chart, rival_chart):
    client = api.as_user(outsider)

    listed = client.get(ACCOUNTS, {"page_size": 500}).json()["results"]
    opened = client.get(f"{ACCOUNTS}/{chart['1100'].pk}")
    changed = client.patch(f"{ACCOUNTS}/{chart['1100'].pk}", {"name": "Mine"}, format="json")

    assert {row["code"] for row in listed} == set(rival_chart)
    assert {row["id"] for row in listed}.isdisjoint(a.pk for a in chart.values())
    assert (opened.status_code, changed.status_code) == (404, 404)


def test_filtering_by_a_company_the_caller_cannot_see_reads_as_unknown(client, other_company, chart):
    rival = client.get(ACCOUNTS, {"company": other_company.pk})
    nobody = client.get(ACCOUNTS, {"company": 999999})

    assert invalid(rival) == {"company": [f'No company "{other_company.pk}".']}
    assert invalid(nobody) == {"company": ['No company "999999".']}


def test_owner_adds_an_account_under_a_parent(client, company, chart):
    body = {"company": company.pk, "code": "6450", "name": "Travel", "type": "expense", "parent": chart["6000"].pk}

    response = client.post(ACCOUNTS, body, format="json")

    assert response.status_code == 201, response.json()
    account = Account.objects.get(company=company, code="6450")
    assert (account.parent, account.normal_balance, response.json()["sign"]) == (chart["6000"], "debit", 1)


def test_account_in_a_company_the_caller_cannot_see_is_refused(client, other_company):
    body = {"company": other_company.pk, "code": "6450", "name": "Travel", "type": "expense"}

    response = client.post(ACCOUNTS, body, format="json")

    assert list(invalid(response)) == ["company"]
    assert not Account.objects.filter(code="6450").exists()


def test_parent_of_another_company_is_refused(member_of_both, company, chart, rival_chart):
    body = {
        "company": company.pk,
        "code": "6450",
        "name": "Travel",
        "type": "expense",
        "parent": rival_chart["6000"].pk,
    }

    response = member_of_both.post(ACCOUNTS, body, format="json")

    assert invalid(response) == {"parent": ["The parent account belongs to another company."]}


def test_taken_role_and_code_are_field_errors_not_server_errors(client, company, chart):
    body = {"company": company.pk, "code": "1100", "name": "Second bank", "type": "asset", "role": "bank"}

    response = client.post(ACCOUNTS, body, format="json")

    assert invalid(response) == {
        "code": ["Account 1100 already exists in this company."],
        "role": ["Account 1100 Bank current account already has the role Bank."],
    }


def test_an_account_keeps_its_role_when_saved_again(client, chart):
    response = client.patch(f"{ACCOUNTS}/{chart['1100'].pk}", {"role": "bank", "name": "Main bank"}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["name"] == "Main bank"


def test_changing_an_accounts_type_takes_the_new_types_normal_balance(client, company):
    account = AccountFactory(company=company, code="7000", type="expense")

    response = client.patch(f"{ACCOUNTS}/{account.pk}", {"type": "income"}, format="json")

    assert response.status_code == 200
    assert (response.json()["normal_balance"], response.json()["sign"]) == ("credit", -1)


def test_an_account_cannot_move_to_another_company(member_of_both, other_company, chart):
    response = member_of_both.patch(f"{ACCOUNTS}/{chart['6100'].pk}", {"company": other_company.pk}, format="json")

    assert invalid(response) == {"company": ["It cannot move to another company."]}


def test_an_account_with_lines_is_kept_and_an_unused_one_deleted(client, company, chart):
    post_sale(company, chart)

    used = client.delete(f"{ACCOUNTS}/{chart['1100'].pk}")
    parent = client.delete(f"{ACCOUNTS}/{chart['6000'].pk}")
    unused = client.delete(f"{ACCOUNTS}/{chart['6300'].pk}")

    assert (used.status_code, used.json()["error"]["code"]) == (409, "conflict")
    assert "deactivate it" in used.json()["error"]["message"]
    assert parent.status_code == 409
    assert unused.status_code == 204
    assert set(
        Account.objects.filter(pk__in=[chart[c].pk for c in ("1100", "6000", "6300")]).values_list("code", flat=True)
    ) == {"1100", "6000"}


def test_staff_read_every_company_but_change_only_their_own_books(api, staff, company, other_company, chart):
    draft = draft_sale(company, chart)
    january = Period.objects.get(company=company, start_date="2026-01-01")
    client = api.as_user(staff)

    listed = client.get(ENTRIES).json()["results"]
    created = client.post(ENTRIES, entry_body(company, sale(chart)), format="json")
    account = client.post(
        ACCOUNTS, {"company": company.pk, "code": "7000", "name": "X", "type": "asset"}, format="json"
    )
    changed = client.patch(f"{ACCOUNTS}/{chart['1100'].pk}", {"name": "Mine"}, format="json")
    posted = client.post(f"{ENTRIES}/{draft.pk}/post")
    closed = client.post(f"{PERIODS}/{january.pk}/close")

    assert [row["id"] for row in listed] == [draft.pk]
    refused = [created, account, changed, posted, closed]
    assert [r.status_code for r in refused] == [403] * 5
    assert created.json()["error"]["message"] == "Only members of the company change its books."
    assert JournalEntry.objects.get().status == "draft"
    assert Account.objects.get(pk=chart["1100"].pk).name == "Bank current account"


# --- Fiscal years and periods --------------------------------------------------------------------


def test_fiscal_years_and_periods_are_listed_by_company_status_and_year(client, company, other_company):
    year = periods.open_year(company, DAY)
    periods.open_year(other_company, DAY)
    close_through(company, datetime.date(2026, 2, 28))

    years = client.get("/api/v1/ledger/fiscal-years").json()["results"]
    closed = client.get(PERIODS, {"status": "closed", "fiscal_year": year.pk}).json()["results"]
    year_detail = client.get(f"/api/v1/ledger/fiscal-years/{year.pk}")

    assert [(y["name"], y["start_date"]) for y in years] == [("FY2026", "2026-01-01")]
    assert [(p["label"], p["status"]) for p in closed] == [("2026-01", "closed"), ("2026-02", "closed")]
    assert year_detail.json()["end_date"] == "2026-12-31"


def test_member_closes_a_period_and_its_balances_are_stored(client, company, chart):
    post_sale(company, chart, day=datetime.date(2026, 1, 15))
    january = Period.objects.get(company=company, start_date="2026-01-01")

    response = client.post(f"{PERIODS}/{january.pk}/close")

    assert response.status_code == 200, response.json()
    assert (response.json()["status"], response.json()["closed_by"]) == ("closed", "owner")
    assert response.json()["balances_at"] is not None


def test_closing_a_period_with_drafts_left_is_a_conflict(client, company, chart):
    draft = draft_sale(company, chart, day=datetime.date(2026, 1, 15))
    january = Period.objects.get(company=company, start_date="2026-01-01")

    response = client.post(f"{PERIODS}/{january.pk}/close")

    assert response.status_code == 409
    assert response.json()["error"] == {
        "status": 409,
        "code": "conflict",
        "message": f"2026-01 still has 1 draft entry (JE{draft.pk}); post or delete it first.",
    }
    assert Period.objects.get(pk=january.pk).status == PeriodStatus.OPEN


def test_closing_a_period_before_an_earlier_one_is_a_conflict(client, company):
    periods.open_year(company, DAY)
    march = Period.objects.get(company=company, start_date="2026-03-01")

    response = client.post(f"{PERIODS}/{march.pk}/close")

    assert response.status_code == 409
    assert "Close 2026-01 first" in response.json()["error"]["message"]


def test_only_staff_reopen_a_period(client, api, staff, company):
    close_through(company, datetime.date(2026, 1, 31))
    january = Period.objects.get(company=company, start_date="2026-01-01")

    refused = client.post(f"{PERIODS}/{january.pk}/reopen")
    reopened = api.as_user(staff).post(f"{PERIODS}/{january.pk}/reopen")

    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "permission_denied")
    assert (reopened.status_code, reopened.json()["status"]) == (200, "open")


def test_outsider_cannot_close_another_companys_period(api, outsider, company):
    periods.open_year(company, DAY)
    january = Period.objects.get(company=company, start_date="2026-01-01")

    response = api.as_user(outsider).post(f"{PERIODS}/{january.pk}/close")

    assert response.status_code == 404
    assert Period.objects.get(pk=january.pk).status == PeriodStatus.OPEN


# --- Journal entries -------------------------------------------------------------------------------


def test_draft_is_created_posted_and_reversed(client, company, chart):
    created = client.post(ENTRIES, entry_body(company, sale(chart)), format="json")
    pk = created.json()["id"]
    posted = client.post(f"{ENTRIES}/{pk}/post")
    reversed_ = client.post(f"{ENTRIES}/{pk}/reverse", {"date": "2026-11-20"}, format="json")
    original = client.get(f"{ENTRIES}/{pk}")

    assert (created.status_code, created.json()["status"]) == (201, "draft")
    assert [(line["debit"], line["credit"], line["amount"]) for line in created.json()["lines"]] == [
        ("100.00", "0.00", "100.00"),
        ("0.00", "100.00", "-100.00"),
    ]
    assert created.json()["created_by"] == "owner"
    assert (posted.status_code, posted.json()["status"], posted.json()["posted_by"]) == (200, "posted", "owner")
    assert reversed_.status_code == 201
    assert (reversed_.json()["reverses"], reversed_.json()["date"]) == (pk, "2026-11-20")
    assert [line["amount"] for line in reversed_.json()["lines"]] == ["-100.00", "100.00"]
    assert (original.json()["status"], original.json()["reversed_by"]) == ("reversed", reversed_.json()["id"])


def test_posting_at_once_answers_201_and_a_replay_answers_200_with_the_same_entry(client, company, chart):
    body = entry_body(company, sale(chart), post=True, source="billing", source_id="invoice:42")

    first = client.post(ENTRIES, body, format="json")
    replay = client.post(ENTRIES, body, format="json")

    assert (first.status_code, first.json()["status"]) == (201, "posted")
    assert replay.status_code == 200
    assert replay.json()["id"] == first.json()["id"]
    assert JournalEntry.objects.filter(company=company).count() == 1
    assert JournalLine.objects.filter(company=company).count() == 2


def test_a_replayed_draft_creates_nothing(client, company, chart):
    body = entry_body(company, sale(chart), source="receivables", source_id="receipt:7")

    first = client.post(ENTRIES, body, format="json")
    replay = client.post(ENTRIES, body, format="json")

    assert (first.status_code, replay.status_code) == (201, 200)
    assert replay.json()["id"] == first.json()["id"]
    assert JournalEntry.objects.filter(company=company).count() == 1


def test_an_unbalanced_posting_is_refused_whole(client, company, chart):
    lines = [{"account": chart["1100"].pk, "debit": "100.00"}, {"account": chart["4100"].pk, "credit": "99.99"}]

    response = client.post(ENTRIES, entry_body(company, lines, post=True), format="json")

    assert invalid(response) == {"lines": ["Debits 100.00 and credits 99.99 GBP differ by 0.01."]}
    assert not JournalEntry.objects.exists()
    assert not JournalLine.objects.exists()


def test_posting_into_a_closed_period_is_refused(client, company, chart):
    close_through(company, datetime.date(2026, 10, 31))

    response = client.post(ENTRIES, entry_body(company, sale(chart), date="2026-10-15", post=True), format="json")

    assert invalid(response) == {"date": ["Period 2026-10 is closed; it accepts no postings."]}
    assert not JournalEntry.objects.exists()


def test_owner_cannot_post_to_a_rivals_accounts(client, company, chart, rival_chart):
    lines = [{"account": rival_chart["1100"].pk, "debit": "100.00"}, {"account": chart["4100"].pk, "credit": "100.00"}]

    as_draft = client.post(ENTRIES, entry_body(company, lines), format="json")
    at_once = client.post(ENTRIES, entry_body(company, lines, post=True), format="json")

    message = f"line 1: account {rival_chart['1100'].pk} does not exist in this company"
    assert invalid(as_draft) == {"lines": [message]}
    assert invalid(at_once) == {"lines": [message]}
    assert not JournalEntry.objects.exists()


def test_outsider_cannot_see_change_post_or_reverse_another_companys_entries(api, outsider, company, chart):
    draft = draft_sale(company, chart)
    entry = post_sale(company, chart)
    client = api.as_user(outsider)

    listed = client.get(ENTRIES).json()["results"]
    opened = client.get(f"{ENTRIES}/{draft.pk}")
    posted = client.post(f"{ENTRIES}/{draft.pk}/post")
    deleted = client.delete(f"{ENTRIES}/{draft.pk}")
    reversed_ = client.post(f"{ENTRIES}/{entry.pk}/reverse", {}, format="json")
    created = client.post(ENTRIES, entry_body(company, sale(chart)), format="json")

    assert listed == []
    assert [r.status_code for r in (opened, posted, deleted, reversed_)] == [404] * 4
    assert list(invalid(created)) == ["company"]
    assert dict(JournalEntry.objects.values_list("pk", "status")) == {draft.pk: "draft", entry.pk: "posted"}


def test_float_amounts_are_refused(client, company, chart):
    lines = [{"account": chart["1100"].pk, "debit": 100.1}, {"account": chart["4100"].pk, "credit": "100.10"}]

    response = client.post(ENTRIES, entry_body(company, lines, post=True), format="json")

    message = 'Send amounts as strings ("12.30"): a number with a fraction loses cents.'
    assert invalid(response) == {"lines": {"0": {"debit": [message]}}}
    assert not JournalEntry.objects.exists()


def test_whole_number_amounts_are_accepted(client, company, chart):
    lines = [{"account": chart["1100"].pk, "debit": 250}, {"account": chart["4100"].pk, "credit": "250"}]

    response = client.post(ENTRIES, entry_body(company, lines, post=True), format="json")

    assert response.status_code == 201, response.json()
    assert [line["amount"] for line in response.json()["lines"]] == ["250.00", "-250.00"]


def test_the_system_source_is_the_ledgers_own(client, company, chart):
    body = entry_body(company, sale(chart), source="system", source_id="reversal-of:1")

    response = client.post(ENTRIES, body, format="json")

    assert list(invalid(response)) == ["source"]


def test_a_draft_is_changed_and_deleted(client, company, chart):
    draft = draft_sale(company, chart)

    patched = client.patch(f"{ENTRIES}/{draft.pk}", {"memo": "Cash sale"}, format="json")
    put = client.put(
        f"{ENTRIES}/{draft.pk}", entry_body(company, sale(chart, "40.00"), date="2026-11-12"), format="json"
    )
    deleted = client.delete(f"{ENTRIES}/{draft.pk}")

    assert patched.status_code == 200, patched.json()
    assert (patched.json()["memo"], len(patched.json()["lines"]), patched.json()["date"]) == (
        "Cash sale",
        2,
        "2026-11-10",
    )
    assert put.status_code == 200, put.json()
    assert (put.json()["date"], put.json()["memo"], put.json()["lines"][0]["debit"]) == ("2026-11-12", "", "40.00")
    assert deleted.status_code == 204
    assert not JournalEntry.objects.exists()
    assert not JournalLine.objects.exists()


def test_a_draft_stays_in_its_company(member_of_both, company, other_company, chart):
    draft = draft_sale(company, chart)

    response = member_of_both.patch(f"{ENTRIES}/{draft.pk}", {"company": other_company.pk}, format="json")

    assert invalid(response) == {"company": ["It cannot move to another company."]}


def test_a_posted_entry_is_neither_changed_nor_deleted(client, company, chart):
    entry = post_sale(company, chart)

    patched = client.patch(f"{ENTRIES}/{entry.pk}", {"memo": "Changed"}, format="json")
    deleted = client.delete(f"{ENTRIES}/{entry.pk}")

    assert (patched.status_code, deleted.status_code) == (409, 409)
    assert deleted.json()["error"]["code"] == "conflict"
    assert JournalEntry.objects.get(pk=entry.pk).memo == ""


def test_posting_an_unbalanced_draft_is_refused_with_the_lines_at_fault(client, company, chart):
    lines = [posting.Line(chart["1100"], debit="100.00")]
    draft = posting.create_draft(company, posting.Entry(DAY, lines))

    response = client.post(f"{ENTRIES}/{draft.pk}/post")

    assert invalid(response) == {
        "lines": [
            "An entry needs at least 2 lines; this one has 1.",
            "Debits 100.00 and credits 0 GBP differ by 100.00.",
        ]
    }
    assert JournalEntry.objects.get(pk=draft.pk).status == "draft"


def test_reversing_a_draft_is_a_conflict(client, company, chart):
    draft = draft_sale(company, chart)

    response = client.post(f"{ENTRIES}/{draft.pk}/reverse", {}, format="json")

    assert response.status_code == 409
    assert "delete it instead" in response.json()["error"]["message"]


def test_reversing_twice_answers_the_first_reversal(client, company, chart):
    entry = post_sale(company, chart)

    first = client.post(f"{ENTRIES}/{entry.pk}/reverse", {}, format="json")
    again = client.post(f"{ENTRIES}/{entry.pk}/reverse", {}, format="json")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert first.json()["date"] == DAY.isoformat()


def test_entries_are_filtered_by_status_source_dates_and_period(client, company, chart):
    early = post_sale(company, chart, day=datetime.date(2026, 10, 5), source="billing", source_id="invoice:1")
    late = post_sale(company, chart, day=datetime.date(2026, 11, 15))
    draft = draft_sale(company, chart, day=datetime.date(2026, 11, 2))

    def ids(**params):
        response = client.get(ENTRIES, params)
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    assert ids() == [late.pk, draft.pk, early.pk]
    assert ids(status="draft") == [draft.pk]
    assert ids(source="billing") == [early.pk]
    assert ids(date_from="2026-11-01", date_to="2026-11-10") == [draft.pk]
    assert ids(period=early.period_id) == [early.pk]
    assert ids(company="acme", status="posted") == [late.pk, early.pk]


def test_entries_page_by_cursor_newest_first_with_none_missed(client, company, chart):
    made = [post_sale(company, chart, day=DAY + datetime.timedelta(days=n % 3)).pk for n in range(7)]

    seen, url = [], f"{ENTRIES}?page_size=3"
    while url:
        page = client.get(url).json()
        seen += [(row["date"], row["id"]) for row in page["results"]]
        url = page["next"]

    assert sorted(seen, reverse=True) == seen
    assert sorted(pk for _, pk in seen) == sorted(made)


def test_bad_entry_filters_are_400s_with_the_fields_named(client, chart):
    response = client.get(ENTRIES, {"date_from": "2026-13-01", "status": "lost"})

    assert response.json()["error"]["message"] == "Some fields are invalid."
    assert set(invalid(response)) == {"date_from", "status"}


def test_entry_list_queries_do_not_grow_with_its_rows(client, company, chart, django_assert_max_num_queries):
    post_sale(company, chart)
    with django_assert_max_num_queries(3):
        one = client.get(ENTRIES)

    for n in range(20):
        post_sale(company, chart, day=DAY + datetime.timedelta(days=n % 5), reference=f"S-{n}")
    draft_sale(company, chart)
    with django_assert_max_num_queries(3):
        many = client.get(ENTRIES)

    assert (len(one.json()["results"]), len(many.json()["results"])) == (1, 22)


# --- Balances ------------------------------------------------------------------------------------


def test_balances_as_of_a_date_with_natural_signs(client, company, chart):
    post_sale(company, chart, "100.00", day=datetime.date(2026, 11, 2))
    post_sale(company, chart, "50.00", day=datetime.date(2026, 11, 15))

    response = client.get(BALANCES, {"as_of": "2026-11-10"})
    today = client.get(BALANCES, {"account": chart["4100"].pk})

    body = response.json()
    by_code = {row["code"]: row for row in body["accounts"]}
    assert (body["as_of"], body["currency"], body["company"]) == ("2026-11-10", "GBP", company.pk)
    assert (by_code["1100"]["balance"], by_code["1100"]["natural_balance"]) == ("100.00", "100.00")
    assert (by_code["4100"]["balance"], by_code["4100"]["natural_balance"]) == ("-100.00", "100.00")
    assert by_code["6100"]["balance"] == "0.00"
    assert today.json()["as_of"] == "2026-11-21"
    assert [(row["code"], row["natural_balance"]) for row in today.json()["accounts"]] == [("4100", "150.00")]


def test_balances_need_a_company_when_the_caller_sees_several(api, owner, company, other_company, chart):
    MembershipFactory(user=owner, company=other_company)

    response = api.as_user(owner).get(BALANCES)

    assert invalid(response) == {"company": ["Required: you see several companies."]}


def test_bad_balance_parameters_are_field_errors(client, outsider, api, company, other_company, chart, rival_chart):
    bad_date = client.get(BALANCES, {"as_of": "2026-02-30"})
    rival_account = client.get(BALANCES, {"account": rival_chart["1100"].pk})
    rival_company = api.as_user(outsider).get(BALANCES, {"company": "acme"})

    assert list(invalid(bad_date)) == ["as_of"]
    assert invalid(rival_account) == {"account": [f"No account {rival_chart['1100'].pk} in acme."]}
    assert invalid(rival_company) == {"company": ['No company "acme".']}


# --- Trial balance --------------------------------------------------------------------------------


@pytest.fixture
def trading(company, chart):
    post_sale(company, chart, "1000.00", day=datetime.date(2026, 10, 5))
    post_sale(company, chart, "250.50", day=datetime.date(2026, 11, 3))
    lines = [posting.Line(chart["6200"], debit="400.00"), posting.Line(chart["1100"], credit="400.00")]
    posting.post(company, posting.Entry(datetime.date(2026, 11, 4), lines))
    return chart


TB_RANGE = {"company": "acme", "from": "2026-11-01", "to": "2026-11-30"}


def test_trial_balance_as_json(client, trading):
    response = client.get(TRIAL_BALANCE, TB_RANGE)

    body = response.json()
    assert response.status_code == 200
    assert (body["balanced"], body["from"], body["to"], body["company"]) == (True, "2026-11-01", "2026-11-30", "acme")
    assert body["totals"]["debit"] == body["totals"]["credit"]
    bank = next(row for row in body["rows"] if row["code"] == "1100")
    assert (Decimal(bank["opening"]), Decimal(bank["debit"]), Decimal(bank["credit"])) == (1000, Decimal("250.50"), 400)
    assert Decimal(bank["closing"]) == Decimal("850.50")


def test_trial_balance_as_csv(client, trading):
    response = client.get(TRIAL_BALANCE, {**TB_RANGE, "format": "csv"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="trial-balance-acme-2026-11-01-2026-11-30.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["code", "name", "type", "opening", "debit", "credit", "closing"]
    assert [row[0] for row in rows[1:-1]] == ["1100", "4100", "6200"]
    assert rows[-1][1] == "Total"
    assert Decimal(rows[-1][4]) == Decimal(rows[-1][5]) == Decimal("650.50")


def test_trial_balance_as_xlsx_totals_its_rows(client, trading):
    response = client.get(TRIAL_BALANCE, {**TB_RANGE, "format": "xlsx"})

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="trial-balance-acme-2026-11-01-2026-11-30.xlsx"'
    sheet = load_workbook(io.BytesIO(response.content)).active
    total = sheet.max_row
    assert sheet.cell(total, 2).value == "Total"
    assert [sheet.cell(total, col).value for col in range(4, 8)] == [f"=SUM({c}4:{c}{total - 1})" for c in "DEFG"]
    debits = sum(Decimal(str(sheet.cell(row, 5).value)) for row in range(4, total))
    credits = sum(Decimal(str(sheet.cell(row, 6).value)) for row in range(4, total))
    assert debits == credits == Decimal("650.50")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-11-30", "to": "2026-11-01"}, "from"),
        ({"from": "2026-11-31", "to": "2026-12-31"}, "from"),
        ({"from": "2026-11-01"}, "to"),
        ({"from": "2026-11-01", "to": "2026-11-30", "format": "pdf"}, "format"),
        ({"company": "nobody", "from": "2026-11-01", "to": "2026-11-30"}, "company"),
        ({"company": "rival", "from": "2026-11-01", "to": "2026-11-30"}, "company"),
    ],
)
def test_bad_trial_balance_parameters_are_field_errors(client, other_company, chart, params, field):
    response = client.get(TRIAL_BALANCE, params)

    assert list(invalid(response)) == [field]


# --- Budgets and the GL jobs' results ---------------------------------------------------------------


def test_owner_budgets_an_account_for_a_period(client, company, chart):
    periods.open_year(company, DAY)
    november = Period.objects.get(company=company, start_date="2026-11-01")
    body = {"company": company.pk, "account": chart["6200"].pk, "period": november.pk, "amount": "1200.00"}

    created = client.post(BUDGETS, body, format="json")
    changed = client.patch(f"{BUDGETS}/{created.json()['id']}", {"amount": "1300"}, format="json")
    listed = client.get(BUDGETS, {"period": november.pk}).json()["results"]
    twice = client.post(BUDGETS, body, format="json")

    assert created.status_code == 201, created.json()
    assert changed.json()["amount"] == "1300.00"
    assert [(row["account"], row["amount"]) for row in listed] == [(chart["6200"].pk, "1300.00")]
    assert invalid(twice) == {"period": [f"{chart['6200']} has a budget for 2026-11."]}


def test_a_budget_names_its_own_companys_account_and_period(member_of_both, company, other_company, chart, rival_chart):
    periods.open_year(other_company, DAY)
    rival_november = Period.objects.get(company=other_company, start_date="2026-11-01")
    body = {"company": company.pk, "account": rival_chart["6200"].pk, "period": rival_november.pk, "amount": "1"}

    response = member_of_both.post(BUDGETS, body, format="json")

    assert set(invalid(response)) == {"account", "period"}
    assert not Budget.objects.exists()


def test_owner_cannot_budget_a_rivals_account(client, company, chart, rival_chart):
    periods.open_year(company, DAY)
    november = Period.objects.get(company=company, start_date="2026-11-01")
    body = {"company": company.pk, "account": rival_chart["6200"].pk, "period": november.pk, "amount": "1"}

    response = client.post(BUDGETS, body, format="json")

    assert list(invalid(response)) == ["account"]


def test_the_gl_jobs_results_are_listed_for_the_callers_company(client, api, outsider, company, trading):
    november = Period.objects.get(company=company, start_date="2026-11-01")
    Budget.objects.create(company=company, account=trading["6200"], period=november, amount=Decimal("300"))
    reports.budget_variance(company, [november])
    closing.close_day(company, datetime.date(2026, 11, 3), stale_after_days=7)
    snapshot = reports.snapshot_trial_balance(company, datetime.date(2026, 11, 1), datetime.date(2026, 11, 30))
    [reconciliation, *_] = reconcile(company, datetime.date(2026, 11, 30))

    variances = client.get("/api/v1/ledger/budget-variances", {"account": trading["6200"].pk}).json()["results"]
    totals = client.get("/api/v1/ledger/daily-totals", {"date_from": "2026-11-01"}).json()["results"]
    snapshots = client.get("/api/v1/ledger/trial-balance-snapshots").json()["results"]
    snapshot_detail = client.get(f"/api/v1/ledger/trial-balance-snapshots/{snapshot.pk}").json()
    reconciliations = client.get("/api/v1/ledger/reconciliations").json()["results"]
    reconciliation_detail = client.get(f"/api/v1/ledger/reconciliations/{reconciliation.pk}").json()

    assert [(v["period_label"], v["budget"], v["actual"], v["variance"]) for v in variances] == [
        ("2026-11", "300.00", "400.00", "100.00")
    ]
    assert [(t["date"], t["debit"], t["balanced"]) for t in totals] == [("2026-11-03", "250.50", True)]
    assert [(s["date_to"], s["debit"], "rows" in s) for s in snapshots] == [("2026-11-30", "650.50", False)]
    assert [row["code"] for row in snapshot_detail["rows"]] == ["1100", "4100", "6200"]
    assert {r["account_code"] for r in reconciliations} == {"1200", "2100"}
    assert (reconciliation_detail["difference"], reconciliation_detail["reconciled"]) == ("0.00", True)

    stranger = api.as_user(outsider)
    for route in ("budget-variances", "daily-totals", "trial-balance-snapshots", "reconciliations"):
        assert stranger.get(f"/api/v1/ledger/{route}").json()["results"] == [], route
    assert stranger.get(f"/api/v1/ledger/trial-balance-snapshots/{snapshot.pk}").status_code == 404
