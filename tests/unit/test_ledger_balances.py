"""Balances and the trial balance on SQLite: closing periods (which stores their balances
as starting points) changes no answer, and the queries do not grow with the books."""

from __future__ import annotations

import datetime
from collections import Counter
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.models import AccountType, Period, PeriodBalance, PeriodStatus
from ledger.services import balances, closing, periods
from ledger.services.posting import Entry, Line, create_draft, post, post_many
from tests.properties import clean_slate, money, properties

pytestmark = pytest.mark.django_db

PROPERTY = properties(max_examples=30)

FIRST = datetime.date(2025, 1, 1)
LAST = datetime.date(2026, 3, 31)  # fifteen monthly periods over two fiscal years
CODES = ("1100", "1200", "2100", "3100", "4100", "4200", "6100", "6200")


cents = st.integers(min_value=1, max_value=5_000_000)


@st.composite
def entries(draw) -> tuple[datetime.date, list[tuple[str, int]]]:
    """A balanced entry as (day, [(account code, debit-positive cents)])."""
    debits = draw(st.lists(cents, min_size=1, max_size=2))
    total = sum(debits)
    count = draw(st.integers(1, min(2, total)))
    cuts = sorted(draw(st.sets(st.integers(1, total - 1), min_size=1, max_size=1))) if count > 1 else []
    credits = [b - a for a, b in pairwise([0, *cuts, total])]
    lines = [(draw(st.sampled_from(CODES)), c) for c in debits] + [(draw(st.sampled_from(CODES)), -c) for c in credits]
    return draw(st.dates(FIRST, LAST)), lines


def to_entry(day, lines, accounts) -> Entry:
    return Entry(
        day,
        [
            Line(accounts[code], debit=money(c)) if c > 0 else Line(accounts[code], credit=money(-c))
            for code, c in lines
        ],
    )


def brute_force(specs, accounts, as_of: datetime.date) -> dict[int, Decimal]:
    total: Counter[int] = Counter()
    for day, lines in specs:
        if day <= as_of:
            for code, c in lines:
                total[accounts[code].pk] += c
    return {pk: money(c) for pk, c in total.items() if c}


def nonzero(found: dict[int, Decimal]) -> dict[int, Decimal]:
    return {pk: value for pk, value in found.items() if value}


@pytest.fixture
def two_years(company, chart):
    """The chart, and FY2025 and FY2026 open."""
    periods.open_year(company, FIRST)
    periods.open_year(company, LAST)
    return chart


ranges = st.tuples(st.dates(FIRST, LAST), st.dates(FIRST, LAST)).map(sorted)


@PROPERTY
@given(
    specs=st.lists(entries(), min_size=1, max_size=12),
    closed=st.integers(1, 14),
    asked=st.lists(ranges, min_size=1, max_size=3),
)
def test_closing_periods_changes_no_balance_and_no_trial_balance(company, two_years, specs, closed, asked):
    chart = two_years
    with clean_slate():
        # Given postings across fifteen periods, and the answers before any period closed
        post_many(company, [to_entry(day, lines, chart) for day, lines in specs])
        days = sorted({day for pair in asked for day in pair} | {day for day, _ in specs})
        before_balances = {day: nonzero(balances.balances_as_of(company, day)) for day in days}
        before_tb = {(a, b): balances.trial_balance(company, a, b) for a, b in asked}

        # When the first ``closed`` periods close, storing their balances
        last_closed = Period.objects.for_company(company).order_by("start_date")[closed - 1]
        closing.close_periods_through(company, last_closed.end_date)

        # Then every balance and trial balance is what it was, and what the entries add up to
        assert Period.objects.for_company(company).with_balances().count() == closed
        for day in days:
            after = nonzero(balances.balances_as_of(company, day))
            assert after == before_balances[day] == brute_force(specs, chart, day)
        for (a, b), tb in before_tb.items():
            again = balances.trial_balance(company, a, b)
            assert again.rows == tb.rows
            assert again.balanced


def test_a_balance_that_nets_to_zero_is_exactly_zero(company, chart):
    # Amounts whose float sum is -3.6E-12
    day = datetime.date(2026, 2, 1)
    lines = [
        Line(chart["1100"], debit="0.01"),
        Line(chart["1100"], debit="18496.85"),
        Line(chart["1100"], credit="18496.86"),
    ]
    post(company, Entry(day, lines))

    assert balances.balance(chart["1100"], day) == 0
    assert balances.balances_as_of(company, day) == {chart["1100"].pk: 0}
    assert balances.trial_balance(company, day, day).totals["closing"] == 0


def test_a_zero_balance_reads_as_zero_not_minus_zero(company, chart):
    day = datetime.date(2026, 2, 1)
    lines = [
        Line(chart["1100"], debit="0.01"),
        Line(chart["1100"], debit="18496.85"),
        Line(chart["1100"], credit="18496.86"),
    ]
    post(company, Entry(day, lines))

    assert str(balances.balance(chart["1100"], day)) == "0.00"


def test_a_balance_is_the_sum_of_posted_lines_up_to_the_day(company, chart, other_company):
    assert not balances.balances_as_of(other_company, datetime.date(2026, 12, 31))
    bank, sales, rent = chart["1100"], chart["4100"], chart["6200"]
    post(company, Entry(datetime.date(2026, 1, 10), [Line(bank, debit="250.00"), Line(sales, credit="250.00")]))
    post(company, Entry(datetime.date(2026, 2, 3), [Line(rent, debit="75.50"), Line(bank, credit="75.50")]))
    create_draft(company, Entry(datetime.date(2026, 1, 12), [Line(bank, debit="999.00")]))  # not in the books

    assert balances.balance(bank, datetime.date(2026, 1, 9)) == 0
    assert balances.balance(bank, datetime.date(2026, 1, 10)) == Decimal("250.00")
    assert balances.balance(bank, datetime.date(2026, 2, 3)) == Decimal("174.50")
    assert balances.balances_as_of(company, datetime.date(2026, 2, 3), [sales.pk, rent.pk]) == {
        sales.pk: Decimal("-250.00"),
        rent.pk: Decimal("75.50"),
    }


def test_a_trial_balance_has_opening_movements_and_closing_per_account(company, chart):
    bank, sales, rent = chart["1100"], chart["4100"], chart["6200"]
    post(company, Entry(datetime.date(2026, 1, 10), [Line(bank, debit="250.00"), Line(sales, credit="250.00")]))
    post(company, Entry(datetime.date(2026, 2, 3), [Line(rent, debit="75.50"), Line(bank, credit="75.50")]))

    tb = balances.trial_balance(company, datetime.date(2026, 2, 1), datetime.date(2026, 2, 28))

    assert [(r.code, r.type, r.opening, r.debit, r.credit, r.closing) for r in tb.rows] == [
        ("1100", AccountType.ASSET, Decimal("250.00"), 0, Decimal("75.50"), Decimal("174.50")),
        ("4100", AccountType.INCOME, Decimal("-250.00"), 0, 0, Decimal("-250.00")),
        ("6200", AccountType.EXPENSE, 0, Decimal("75.50"), 0, Decimal("75.50")),
    ]
    assert tb.balanced
    assert tb.totals == {"opening": 0, "debit": Decimal("75.50"), "credit": Decimal("75.50"), "closing": 0}


def test_a_trial_balance_ending_before_it_starts_is_refused(company):
    with pytest.raises(ValueError, match="ends before it starts"):
        balances.trial_balance(company, datetime.date(2026, 2, 1), datetime.date(2026, 1, 31))


def test_a_reopened_period_is_read_from_its_lines_again(company, chart):
    bank, sales = chart["1100"], chart["4100"]
    post(company, Entry(datetime.date(2026, 1, 10), [Line(bank, debit="10.00"), Line(sales, credit="10.00")]))
    january = Period.objects.get(company=company, start_date=datetime.date(2026, 1, 1))
    closing.close_periods_through(company, datetime.date(2026, 1, 31))
    periods.reopen_period(january)

    post(company, Entry(datetime.date(2026, 1, 20), [Line(bank, debit="5.00"), Line(sales, credit="5.00")]))

    assert balances.balance(bank, datetime.date(2026, 1, 31)) == Decimal("15.00")
    assert not PeriodBalance.objects.filter(period=january).exists()


# --- Query counts -------------------------------------------------------------------------------


def books_with(company, chart, *, closed: int, entries_per_month: int) -> None:
    """Postings in every month of FY2025 and the first quarter of FY2026, ``closed`` periods closed."""
    bank, sales, rent = chart["1100"], chart["4100"], chart["6200"]
    batch = []
    for month in range(15):
        day = datetime.date(2025 + month // 12, month % 12 + 1, 5)
        for n in range(entries_per_month):
            amount = Decimal(100 + n)
            batch.append(Entry(day, [Line(bank, debit=amount), Line(sales, credit=amount)]))
            batch.append(Entry(day, [Line(rent, debit=amount / 4), Line(bank, credit=amount / 4)]))
    post_many(company, batch)
    last = Period.objects.for_company(company).order_by("start_date")[closed - 1]
    closing.close_periods_through(company, last.end_date)
    assert Period.objects.for_company(company).exclude(status=PeriodStatus.OPEN).count() == closed


@pytest.mark.parametrize(("closed", "entries_per_month"), [(3, 2), (12, 2), (12, 40), (14, 10)])
def test_balances_and_the_trial_balance_take_the_same_queries_however_big_the_books(
    company, chart, django_assert_num_queries, closed, entries_per_month
):
    books_with(company, chart, closed=closed, entries_per_month=entries_per_month)
    as_of = datetime.date(2026, 3, 20)

    # the last closed period, its stored balances, the lines after it
    with django_assert_num_queries(3):
        balances.balances_as_of(company, as_of)
    # the opening (3), the closed periods in the range, their stored movements, the other
    # days' lines, and the accounts
    with django_assert_num_queries(7):
        tb = balances.trial_balance(company, datetime.date(2025, 2, 1), as_of)
    assert tb.balanced
