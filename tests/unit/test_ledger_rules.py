"""Rules the books keep at their edges: replays after a close, the closing entry, dates
the books accept, account and company changes once there are postings, exports that stay
data, and the GL jobs' order at a year end."""

from __future__ import annotations

import datetime
import io
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from openpyxl import load_workbook

from ledger import subledgers
from ledger.errors import PostingError
from ledger.models import AccountRole, BudgetVariance, JournalEntry, JournalLine, Period
from ledger.services import balances, closing, export, periods, reports
from ledger.services.chart import DEFAULT_CHART, load_default_chart
from ledger.services.posting import Entry, Line, post, post_many, reverse
from scheduling.choices import RunStatus
from scheduling.models import JobDefinition
from scheduling.services import runs

pytestmark = pytest.mark.django_db

JAN = datetime.date(2026, 1, 10)


def sale(chart, amount: str = "100.00", day: datetime.date = JAN, source_id: str = "") -> Entry:
    lines = [Line(chart["1200"], debit=amount, party="customer:1"), Line(chart["4100"], credit=amount)]
    return Entry(day, lines, source="billing" if source_id else "manual", source_id=source_id)


def close_through(company, day: datetime.date) -> None:
    for period in Period.objects.filter(company=company, end_date__lte=day).order_by("start_date"):
        periods.close_period(period)


def test_a_replay_after_its_period_closed_returns_the_entry_already_posted(company, chart):
    first = post(company, sale(chart, source_id="invoice:1"))
    close_through(company, datetime.date(2026, 1, 31))

    again = post(company, sale(chart, source_id="invoice:1"))
    batch = post_many(company, [sale(chart, source_id="invoice:1"), sale(chart, day=datetime.date(2026, 2, 3))])

    assert (again.entry.pk, again.created) == (first.entry.pk, False)
    assert batch.existing == [first.entry.pk] and len(batch.created) == 1
    assert JournalEntry.objects.filter(source_id="invoice:1").count() == 1


def test_a_replay_still_returns_its_entry_after_the_account_was_deactivated(company, chart):
    first = post(company, sale(chart, source_id="invoice:2"))
    chart["4100"].is_active = False
    chart["4100"].save()

    assert post(company, sale(chart, source_id="invoice:2")).entry.pk == first.entry.pk


def test_a_year_end_closing_entry_is_not_reversed(company, chart):
    post(company, sale(chart))
    close_through(company, datetime.date(2026, 12, 31))
    closed = closing.close_year(Period.objects.get(company=company, start_date=JAN.replace(day=1)).fiscal_year)

    with pytest.raises(PostingError, match="year-end closing entry"):
        reverse(closed.entry, date=datetime.date(2027, 1, 5))
    assert balances.balance(chart["4100"], datetime.date(2027, 1, 31)) == 0


@pytest.mark.parametrize("day", [datetime.date(1899, 12, 31), datetime.date(3000, 1, 1), datetime.date(9999, 12, 31)])
def test_a_date_outside_the_books_years_is_refused_and_opens_no_year(company, chart, day):
    with pytest.raises(PostingError) as refused:
        post(company, sale(chart, day=day))

    assert "outside the years the books keep" in refused.value.message_dict["date"][0]
    assert not company.fiscal_years.exists()


def test_a_trial_balance_from_the_first_day_of_the_calendar_is_a_400(api, owner, company):
    response = api.as_user(owner).get(
        "/api/v1/ledger/trial-balance", {"company": company.slug, "from": "0001-01-01", "to": "2026-01-31"}
    )

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["from"]


def test_the_trial_balance_command_refuses_a_date_outside_the_books_years(company):
    with pytest.raises(CommandError, match="--from 0001-01-01 must fall between 1900-01-01 and 2999-12-31"):
        call_command("trial_balance", "--company", company.slug, "--from", "0001-01-01", stdout=io.StringIO())


def test_a_contra_income_account_over_budget_is_unfavourable(company, chart):
    discounts = chart["4900"]  # income with a debit balance
    post(company, Entry(JAN, [Line(discounts, debit="300.00"), Line(chart["1200"], credit="300.00")]))
    january = Period.objects.get(company=company, start_date=JAN.replace(day=1))
    january.budgets.create(company=company, account=discounts, amount=Decimal("100.00"))

    reports.budget_variance(company, [january])

    row = BudgetVariance.objects.get(account=discounts)
    assert (row.actual, row.variance, row.favourable) == (Decimal("300.00"), Decimal("200.00"), False)


def test_an_account_with_postings_cannot_move_between_balance_sheet_and_profit_and_loss(company, chart):
    post(company, sale(chart))
    sales = chart["4100"]
    sales.type = "asset"

    with pytest.raises(ValidationError) as refused:
        sales.full_clean()
    assert "type" in refused.value.message_dict

    sales.type = "expense"  # still income and expense: its total is closed at year end either way
    sales.full_clean()
    unused = chart["4200"]
    unused.type = "asset"
    unused.full_clean()


def test_the_api_refuses_a_type_change_across_the_year_end_close(api, owner, company, chart):
    post(company, sale(chart))

    response = api.as_user(owner).patch(
        f"/api/v1/ledger/accounts/{chart['1200'].pk}", {"type": "expense"}, format="json"
    )

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["type"]


def test_a_company_with_books_keeps_its_currency_and_fiscal_start(api, staff, company, chart):
    post(company, sale(chart))

    response = api.as_user(staff).patch(
        f"/api/v1/companies/{company.pk}", {"base_currency": "JPY", "fiscal_year_start_day": 15}, format="json"
    )

    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"base_currency", "fiscal_year_start_day"}
    company.refresh_from_db()
    assert (company.base_currency, company.fiscal_year_start_day) == ("GBP", 1)
    assert (
        api.as_user(staff).patch(f"/api/v1/companies/{company.pk}", {"name": "Acme"}, format="json").status_code == 200
    )


def test_exports_keep_formula_like_names_as_text(company, chart):
    chart["4100"].name = '=HYPERLINK("http://example.com")'
    chart["4100"].save()
    post(company, sale(chart))
    tb = balances.trial_balance(company, JAN.replace(day=1), JAN)

    sheet = load_workbook(io.BytesIO(export.render(tb, "xlsx").content)).active
    csv_text = export.render(tb, "csv").content.decode()

    names = [row[1].value for row in sheet.iter_rows(min_row=4, max_row=5)]
    assert '=HYPERLINK("http://example.com")' in names
    assert all(row[1].data_type == "s" for row in sheet.iter_rows(min_row=4, max_row=5))
    assert "'=HYPERLINK" in csv_text


def test_a_workbook_in_a_currency_without_minor_units_shows_none(company, chart):
    company.base_currency = "JPY"
    company.save()
    post(company, Entry(JAN, [Line(chart["1100"], debit="1200"), Line(chart["4100"], credit="1200")]))

    tb = balances.trial_balance(company, JAN.replace(day=1), JAN)
    sheet = load_workbook(io.BytesIO(export.render(tb, "xlsx").content)).active

    assert sheet["E4"].number_format == "#,##0;-#,##0"


def test_a_sub_ledger_that_answers_in_floats_is_refused(company, chart):
    post(company, sale(chart))
    subledgers.register(AccountRole.RECEIVABLES, "float items", lambda company, as_of: {"customer:1": 100.0})
    try:
        with pytest.raises(TypeError, match="gave a float"):
            subledgers.reconcile(company, JAN)
    finally:
        subledgers.unregister(AccountRole.RECEIVABLES)


def test_the_default_chart_loads_in_a_handful_of_queries(company, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):
        loaded = load_default_chart(company)

    assert loaded.created == len(DEFAULT_CHART)
    assert company.accounts.get(code="1510").parent.code == "1500"
    assert company.accounts.get(code="1510").normal_balance == "credit"


def test_the_trial_balance_job_waits_for_the_year_end_close_of_the_same_day(company, chart):
    day = datetime.date(2026, 12, 31)
    definition = JobDefinition.objects.get(code="GL_TRIAL_BALANCE")

    run, _ = runs.request_run(definition, business_date=day, company=company)

    assert run.status == RunStatus.WAITING
    waiting_for = " ".join(run.logs.values_list("message", flat=True))
    assert "GL_PERIOD_CLOSE 2026-12-31" in waiting_for and "GL_YEAR_END_CLOSE 2026-12-31" in waiting_for
    assert not JournalLine.objects.exists()
