"""The GL close on SQLite: periods close in order and reopen in reverse, the year-end
close zeroes income and expense into retained earnings, and the daily close deals with
stale drafts and records the day's totals."""

from __future__ import annotations

import datetime
from collections import Counter
from decimal import Decimal

import pytest
import time_machine
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import LedgerStateError, PostingError
from ledger.models import (
    Account,
    AccountRole,
    DailyTotal,
    EntryStatus,
    FiscalYear,
    JournalEntry,
    JournalLine,
    Period,
    PeriodBalance,
    PeriodStatus,
)
from ledger.services import balances, closing, periods
from ledger.services.posting import Entry, Line, create_draft, post, post_many
from tests.properties import clean_slate, money, properties

pytestmark = pytest.mark.django_db

PROPERTY = properties(max_examples=25)

YEAR_START, YEAR_END = datetime.date(2025, 1, 1), datetime.date(2025, 12, 31)
NEXT_MONTH_END = datetime.date(2026, 1, 31)
UTC = datetime.UTC


def period(company, day: datetime.date) -> Period:
    return Period.objects.for_company(company).containing(day).get()


def year_of(company, day: datetime.date) -> FiscalYear:
    return periods.open_year(company, day)


def transfer(debit: Account, credit: Account, amount, day: datetime.date, **fields) -> Entry:
    return Entry(day, [Line(debit, debit=amount), Line(credit, credit=amount)], **fields)


def count_rows() -> dict[str, int]:
    return {
        "entries": JournalEntry.objects.count(),
        "lines": JournalLine.objects.count(),
        "period balances": PeriodBalance.objects.count(),
    }


# --- Periods ---------------------------------------------------------------------------------


def test_posting_into_a_closed_or_locked_period_fails(company, chart):
    bank, sales = chart["1100"], chart["4100"]
    periods.open_year(company, YEAR_START)
    closing.close_periods_through(company, YEAR_END)
    closing.close_year(year_of(company, YEAR_START))
    periods.open_year(company, NEXT_MONTH_END)
    closing.close_periods_through(company, NEXT_MONTH_END)

    with pytest.raises(PostingError) as closed:
        post(company, transfer(bank, sales, "10.00", datetime.date(2026, 1, 15)))
    with pytest.raises(PostingError) as locked:
        post(company, transfer(bank, sales, "10.00", datetime.date(2025, 6, 30)))

    assert closed.value.message_dict == {"date": ["Period 2026-01 is closed; it accepts no postings."]}
    assert locked.value.message_dict == {"date": ["Period 2025-06 is locked; it accepts no postings."]}
    assert not JournalEntry.objects.exists()


def test_closing_a_period_stores_each_accounts_movement_and_closing_balance(company, chart):
    bank, sales, rent = chart["1100"], chart["4100"], chart["6200"]
    post(company, transfer(bank, sales, "500.00", datetime.date(2026, 1, 5)))
    post(company, transfer(bank, sales, "200.00", datetime.date(2026, 2, 5)))
    post(company, transfer(rent, bank, "120.00", datetime.date(2026, 2, 6)))
    closing.close_periods_through(company, datetime.date(2026, 1, 31))

    assert closing.close_periods_through(company, datetime.date(2026, 2, 28)) == [
        period(company, datetime.date(2026, 2, 1))
    ]

    stored = PeriodBalance.objects.filter(period__start_date=datetime.date(2026, 2, 1)).order_by("account__code")
    assert [(b.account.code, b.debit, b.credit, b.closing) for b in stored] == [
        ("1100", Decimal("200.00"), Decimal("120.00"), Decimal("580.00")),
        ("4100", 0, Decimal("200.00"), Decimal("-700.00")),
        ("6200", Decimal("120.00"), 0, Decimal("120.00")),
    ]
    february = period(company, datetime.date(2026, 2, 1))
    assert (february.status, february.balances_at is not None) == (PeriodStatus.CLOSED, True)


def test_closing_a_closed_period_again_does_nothing(company, chart):
    periods.open_year(company, YEAR_START)
    january = period(company, YEAR_START)

    assert periods.close_period(january) is True
    assert periods.close_period(january) is False


def test_a_period_with_drafts_left_in_it_does_not_close(company, chart):
    draft = create_draft(company, transfer(chart["1100"], chart["4100"], "10.00", datetime.date(2026, 1, 20)))

    with pytest.raises(LedgerStateError, match=rf"2026-01 still has 1 draft entry \(JE{draft.pk}\)"):
        periods.close_period(draft.period)

    assert period(company, draft.date).status == PeriodStatus.OPEN


def test_periods_close_in_order(company, chart):
    periods.open_year(company, YEAR_START)

    with pytest.raises(LedgerStateError, match="Close 2025-01 first"):
        periods.close_period(period(company, datetime.date(2025, 2, 1)))

    assert not Period.objects.exclude(status=PeriodStatus.OPEN).exists()


def test_periods_reopen_in_reverse_order_and_forget_their_stored_balances(company, chart):
    post(company, transfer(chart["1100"], chart["4100"], "10.00", datetime.date(2026, 1, 5)))
    closing.close_periods_through(company, datetime.date(2026, 2, 28))
    january, february = period(company, datetime.date(2026, 1, 1)), period(company, datetime.date(2026, 2, 1))

    with pytest.raises(LedgerStateError, match="Reopen 2026-02 first"):
        periods.reopen_period(january)
    periods.reopen_period(february)
    periods.reopen_period(january)

    january.refresh_from_db()
    assert (january.status, january.balances_at, january.closed_at) == (PeriodStatus.OPEN, None, None)
    assert not PeriodBalance.objects.exists()
    post(company, transfer(chart["1100"], chart["4100"], "5.00", datetime.date(2026, 1, 6)))  # open again
    assert balances.balance(chart["1100"], datetime.date(2026, 1, 31)) == Decimal("15.00")


def test_a_locked_period_cannot_reopen(company, chart):
    periods.open_year(company, YEAR_START)
    closing.close_periods_through(company, YEAR_END)
    closing.close_year(year_of(company, YEAR_START))

    with pytest.raises(LedgerStateError, match="2025-12 is locked"):
        periods.reopen_period(period(company, YEAR_END))


# --- Year-end close ------------------------------------------------------------------------------

PL_CODES = ("4100", "4200", "6100", "6200", "6300")
BS_CODES = ("1200", "2100", "3100")


@st.composite
def postings(draw, first: datetime.date, last: datetime.date) -> tuple[datetime.date, str, str, int]:
    """(day, debit code, credit code, cents): mostly income and expense against the bank,
    some the other way round (refunds), some between balance sheet accounts."""
    day = draw(st.dates(first, last))
    amount = draw(st.integers(1, 2_000_000))
    code = draw(st.sampled_from(PL_CODES + BS_CODES))
    earns = code.startswith(("4", "2", "3"))  # credit-natured: the bank is debited
    debit, credit = ("1100", code) if earns else (code, "1100")
    if draw(st.integers(0, 4)) == 0:
        debit, credit = credit, debit
    return day, debit, credit, amount


def sums(specs, accounts, as_of: datetime.date) -> Counter:
    total: Counter[int] = Counter()
    for day, debit, credit, amount in specs:
        if day <= as_of:
            total[accounts[debit].pk] += amount
            total[accounts[credit].pk] -= amount
    return total


@pytest.fixture
def two_years(company, chart):
    periods.open_year(company, YEAR_START)
    periods.open_year(company, NEXT_MONTH_END)
    return chart


@PROPERTY
@given(
    this_year=st.lists(postings(YEAR_START, YEAR_END), max_size=10),
    next_year=st.lists(postings(datetime.date(2026, 1, 1), NEXT_MONTH_END), max_size=3),
    close_january=st.booleans(),
)
def test_the_year_end_close_zeroes_income_and_expense_into_retained_earnings(
    company, two_years, this_year, next_year, close_january
):
    accounts = two_years
    specs = this_year + next_year
    pl = [accounts[code].pk for code in PL_CODES]
    retained = accounts["3200"].pk
    with clean_slate():
        # Given a year of postings and a month of the next, its periods closed (and January's too)
        post_many(company, [transfer(accounts[d], accounts[c], money(cents), day) for day, d, c, cents in specs])
        closing.close_periods_through(company, NEXT_MONTH_END if close_january else YEAR_END)
        profit = -sum(sums(this_year, accounts, YEAR_END)[pk] for pk in pl)  # income is credit-negative
        after_year = balances.balances_as_of(company, NEXT_MONTH_END)

        # When the year closes
        result = closing.close_year(year_of(company, YEAR_START))

        # Then income and expense are zero at the year end and retained earnings moved by the profit
        at_end = balances.balances_as_of(company, YEAR_END)
        assert {pk: value for pk, value in at_end.items() if pk in pl and value} == {}
        assert at_end.get(retained, 0) == money(-profit)
        assert result.profit == money(profit)
        # with one balanced closing entry on the last day, if there was anything to close
        needed = any(sums(this_year, accounts, YEAR_END)[pk] for pk in pl)
        closing_entries = JournalEntry.objects.filter(company=company, is_closing=True)
        assert closing_entries.count() == int(needed) == int(result.created)
        if needed:
            entry = closing_entries.get()
            assert (entry.pk, entry.date, entry.status) == (result.entry.pk, YEAR_END, EntryStatus.POSTED)
            assert sum(entry.lines.values_list("amount", flat=True)) == 0
        assert balances.trial_balance(company, YEAR_START, NEXT_MONTH_END).balanced
        # and the year is locked
        year = year_of(company, YEAR_START)
        assert year.status == PeriodStatus.LOCKED
        assert set(year.periods.values_list("status", flat=True)) == {PeriodStatus.LOCKED}

        # And after the year end: balance sheet accounts carry forward unchanged, retained
        # earnings holds the profit, income and expense hold only the new year's postings
        carried = balances.balances_as_of(company, NEXT_MONTH_END)
        new_year = sums(next_year, accounts, NEXT_MONTH_END)
        for pk in set(carried) | set(after_year):
            if pk in pl:
                assert carried.get(pk, 0) == money(new_year[pk])
            elif pk == retained:
                assert carried.get(pk, 0) == after_year.get(pk, 0) - money(profit)
            else:
                assert carried.get(pk, 0) == after_year.get(pk, 0)

        # And closing it again changes nothing
        before = count_rows()
        again = closing.close_year(year)
        assert (again.created, again.profit) == (False, money(profit))
        assert (again.entry.pk if again.entry else None) == (result.entry.pk if result.entry else None)
        assert count_rows() == before


def test_a_loss_is_carried_to_retained_earnings_as_a_debit(company, chart):
    post(company, transfer(chart["1100"], chart["4100"], "300.00", datetime.date(2025, 3, 1)))
    post(company, transfer(chart["6200"], chart["1100"], "450.00", datetime.date(2025, 4, 1)))
    closing.close_periods_through(company, YEAR_END)

    result = closing.close_year(year_of(company, YEAR_START))

    lines = result.entry.lines.order_by("account__code").values_list("account__code", "debit", "credit")
    assert list(lines) == [
        ("3200", Decimal("150.00"), 0),
        ("4100", Decimal("300.00"), 0),
        ("6200", 0, Decimal("450.00")),
    ]
    assert result.profit == Decimal("-150.00")
    assert result.entry.is_closing and result.entry.source_id == "year-end:2025-01-01"


def test_a_year_without_income_or_expense_locks_without_a_closing_entry(company, chart):
    post(company, transfer(chart["1100"], chart["3100"], "1000.00", datetime.date(2025, 1, 2)))
    closing.close_periods_through(company, YEAR_END)

    result = closing.close_year(year_of(company, YEAR_START))

    assert (result.entry, result.created, result.profit) == (None, False, 0)
    assert result.year.status == PeriodStatus.LOCKED


def test_the_closing_entry_may_zero_an_inactive_account(company, chart):
    utilities = chart["6300"]
    post(company, transfer(utilities, chart["1100"], "80.00", datetime.date(2025, 5, 1)))
    Account.objects.filter(pk=utilities.pk).update(is_active=False)
    closing.close_periods_through(company, YEAR_END)

    result = closing.close_year(year_of(company, YEAR_START))

    assert result.created
    assert balances.balance(utilities, YEAR_END) == 0
    with pytest.raises(PostingError, match="inactive"):
        post(company, transfer(utilities, chart["1100"], "1.00", datetime.date(2026, 1, 5)))


def test_the_year_end_close_refuses_while_a_period_is_open(company, chart):
    periods.open_year(company, YEAR_START)
    closing.close_periods_through(company, datetime.date(2025, 11, 30))

    with pytest.raises(LedgerStateError, match="FY2025 has open periods: 2025-12"):
        closing.close_year(year_of(company, YEAR_START))

    assert year_of(company, YEAR_START).status == PeriodStatus.OPEN


def test_the_year_end_close_refuses_without_a_retained_earnings_account(company, chart):
    post(company, transfer(chart["1100"], chart["4100"], "10.00", datetime.date(2025, 3, 1)))
    Account.objects.filter(role=AccountRole.RETAINED_EARNINGS).update(role="")
    closing.close_periods_through(company, YEAR_END)

    with pytest.raises(LedgerStateError, match="retained earnings role"):
        closing.close_year(year_of(company, YEAR_START))

    assert not JournalEntry.objects.filter(is_closing=True).exists()


def test_the_year_end_close_refuses_while_an_earlier_year_is_open(company, chart):
    periods.open_year(company, YEAR_START)
    periods.open_year(company, datetime.date(2026, 1, 1))
    closing.close_periods_through(company, datetime.date(2026, 12, 31))

    with pytest.raises(LedgerStateError, match="Close FY2025 first"):
        closing.close_year(year_of(company, datetime.date(2026, 1, 1)))


def test_close_years_through_closes_every_ended_year_in_order(company, chart):
    post(company, transfer(chart["1100"], chart["4100"], "10.00", datetime.date(2025, 3, 1)))
    post(company, transfer(chart["1100"], chart["4100"], "20.00", datetime.date(2026, 3, 1)))
    periods.open_year(company, datetime.date(2027, 1, 1))
    closing.close_periods_through(company, datetime.date(2026, 12, 31))

    closed = closing.close_years_through(company, datetime.date(2027, 1, 31))

    assert [(each.year.name, each.profit) for each in closed] == [
        ("FY2025", Decimal("10.00")),
        ("FY2026", Decimal("20.00")),
    ]
    assert balances.balance(chart["3200"], datetime.date(2026, 12, 31)) == Decimal("-30.00")


# --- Daily close ---------------------------------------------------------------------------------

TODAY = datetime.date(2026, 3, 5)


def test_the_daily_close_flags_drafts_older_than_the_setting(company, chart):
    bank, sales = chart["1100"], chart["4100"]
    with time_machine.travel(datetime.datetime(2026, 3, 1, 10, 0, tzinfo=UTC), tick=False):
        old = create_draft(company, transfer(bank, sales, "10.00", datetime.date(2026, 2, 27)))
        dated_later = create_draft(company, transfer(bank, sales, "10.00", datetime.date(2026, 3, 6)))
    with time_machine.travel(datetime.datetime(2026, 3, 5, 23, 0, tzinfo=UTC), tick=False):
        fresh = create_draft(company, transfer(bank, sales, "10.00", datetime.date(2026, 3, 4)))

        first = closing.close_day(company, TODAY, stale_after_days=3)
        second = closing.close_day(company, TODAY, stale_after_days=3)

    old.refresh_from_db()
    assert first.flagged == [old.pk]
    assert (old.status, old.flag_reason) == (EntryStatus.DRAFT, "Draft older than 3 days.")
    assert old.flagged_at == datetime.datetime(2026, 3, 5, 23, 0, tzinfo=UTC)
    assert JournalEntry.objects.filter(pk__in=[dated_later.pk, fresh.pk], flagged_at__isnull=False).count() == 0
    assert second.flagged == []  # flagged once
    total = DailyTotal.objects.get(company=company, date=TODAY)  # one row per day, replaced
    assert total.stale_drafts == 1  # still a draft after the close


def test_the_daily_close_can_post_stale_drafts_and_flags_those_it_cannot(company, chart):
    bank, sales, utilities = chart["1100"], chart["4100"], chart["6300"]
    with time_machine.travel(datetime.datetime(2026, 3, 1, 10, 0, tzinfo=UTC), tick=False):
        valid = create_draft(company, transfer(bank, sales, "10.00", datetime.date(2026, 3, 1)))
        unbalanced = create_draft(company, Entry(datetime.date(2026, 3, 1), [Line(bank, debit="10.00")]))
        inactive = create_draft(company, transfer(utilities, bank, "5.00", datetime.date(2026, 3, 2)))
    Account.objects.filter(pk=utilities.pk).update(is_active=False)

    with time_machine.travel(datetime.datetime(2026, 3, 5, 23, 0, tzinfo=UTC), tick=False):
        result = closing.close_day(company, TODAY, stale_after_days=3, action=closing.POST)

    assert (result.posted, result.flagged) == ([valid.pk], [unbalanced.pk, inactive.pk])
    statuses = dict(JournalEntry.objects.values_list("pk", "status"))
    assert statuses == {valid.pk: EntryStatus.POSTED, unbalanced.pk: EntryStatus.DRAFT, inactive.pk: EntryStatus.DRAFT}
    reasons = dict(JournalEntry.objects.filter(status=EntryStatus.DRAFT).values_list("pk", "flag_reason"))
    assert reasons[unbalanced.pk].startswith("Could not be posted: ")
    assert "at least 2 lines" in reasons[unbalanced.pk]
    assert "6300 Utilities is inactive" in reasons[inactive.pk]
    assert result.total.stale_drafts == 2
    assert balances.balance(bank, TODAY) == Decimal("10.00")


def test_the_daily_close_records_the_days_totals(company, chart):
    bank, sales, rent = chart["1100"], chart["4100"], chart["6200"]
    post(company, transfer(bank, sales, "250.00", TODAY))
    post(company, Entry(TODAY, [Line(rent, debit="40.00"), Line(bank, credit="30.00"), Line(bank, credit="10.00")]))
    post(company, transfer(bank, sales, "999.00", TODAY - datetime.timedelta(days=1)))

    result = closing.close_day(company, TODAY, stale_after_days=3)

    total = DailyTotal.objects.get(company=company, date=TODAY)
    assert (total.entries, total.lines, total.debit, total.credit) == (2, 5, Decimal("290.00"), Decimal("290.00"))
    assert total.balanced and result.unbalanced == []


def test_the_daily_close_reports_a_posted_entry_that_does_not_balance(company, chart):
    entry = post(company, transfer(chart["1100"], chart["4100"], "100.00", TODAY)).entry
    JournalLine.objects.filter(entry=entry, amount__gt=0).update(debit="90.00", amount="90.00")  # a damaged row

    result = closing.close_day(company, TODAY, stale_after_days=3)

    assert result.unbalanced == [entry.pk]
    assert not result.total.balanced


def test_the_daily_close_does_not_report_a_balanced_entry_whose_float_sum_is_not_zero(company, chart):
    bank = chart["1100"]
    # Amounts whose float sum is -3.6E-12
    post(company, Entry(TODAY, [Line(bank, debit="0.01"), Line(bank, debit="18496.85"), Line(bank, credit="18496.86")]))

    result = closing.close_day(company, TODAY, stale_after_days=3)

    assert result.unbalanced == []
    assert result.total.balanced
