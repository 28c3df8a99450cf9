"""Posting on SQLite: any valid postings keep the books balanced, every invalid one is
refused whole, a replayed source id changes nothing; drafts and reversals."""

from __future__ import annotations

import dataclasses
import datetime
from collections import Counter
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ledger.errors import PostingError
from ledger.models import (
    Account,
    AccountType,
    EntryStatus,
    FiscalYear,
    JournalEntry,
    JournalLine,
    Period,
    PeriodBalance,
    Source,
)
from ledger.services import balances, closing, periods
from ledger.services.chart import load_default_chart
from ledger.services.posting import (
    Entry,
    Line,
    create_draft,
    post,
    post_draft,
    post_many,
    reverse,
    update_draft,
)
from tests.factories import AccountFactory
from tests.properties import clean_slate, money, properties

pytestmark = pytest.mark.django_db

PROPERTY = properties(max_examples=40)

# The books the property tests post into: FY2024 closed and locked, January 2025 closed,
# so postings go from February 2025 to the end of FY2026, across two fiscal years.
LOCKED_DAY = datetime.date(2024, 6, 15)
CLOSED_DAY = datetime.date(2025, 1, 15)
FIRST_OPEN = datetime.date(2025, 2, 1)
LAST_DAY = datetime.date(2026, 12, 31)
CODES = ("1100", "1150", "1200", "1300", "2100", "2200", "3100", "4100", "4200", "5000", "6100", "6200", "6300")
DAY = datetime.date(2026, 3, 10)


def snapshot() -> dict[str, int]:
    """Row counts of everything a posting may write."""
    return {
        "entries": JournalEntry.objects.count(),
        "lines": JournalLine.objects.count(),
        "years": FiscalYear.objects.count(),
        "periods": Period.objects.count(),
        "period balances": PeriodBalance.objects.count(),
    }


# --- Generated entries ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LineSpec:
    code: str
    debit: bool
    cents: int  # in the company's currency: what balances
    foreign: tuple[str, int] | None  # (currency, cents in it) for a line in another currency
    form: str  # how the amount is given: "decimal", "str" or "int"


@dataclasses.dataclass(frozen=True)
class EntrySpec:
    day: datetime.date
    lines: tuple[LineSpec, ...]


cents = st.integers(min_value=1, max_value=10_000_000)  # 0.01 to 100,000.00


@st.composite
def parts_of(draw, total: int, most: int = 3) -> list[int]:
    """``total`` cut into one to ``most`` positive parts."""
    count = draw(st.integers(1, min(most, total)))
    cuts = sorted(draw(st.sets(st.integers(1, total - 1), min_size=count - 1, max_size=count - 1))) if count > 1 else []
    return [b - a for a, b in pairwise([0, *cuts, total])]


@st.composite
def line_specs(draw, debit: bool, amount: int) -> LineSpec:
    foreign = draw(st.none() | st.tuples(st.sampled_from(("USD", "EUR")), cents))
    form = draw(st.sampled_from(("decimal", "str", "int") if amount % 100 == 0 else ("decimal", "str")))
    return LineSpec(draw(st.sampled_from(CODES)), debit, amount, foreign, form)


@st.composite
def entry_specs(draw, first: datetime.date = FIRST_OPEN, last: datetime.date = LAST_DAY) -> EntrySpec:
    """A balanced entry of two to six lines on a day in the range."""
    debits = draw(st.lists(cents, min_size=1, max_size=3))
    credits = draw(parts_of(sum(debits)))
    lines = [draw(line_specs(True, amount)) for amount in debits] + [draw(line_specs(False, c)) for c in credits]
    return EntrySpec(draw(st.dates(first, last)), tuple(draw(st.permutations(lines))))


def given_as(value: Decimal, form: str) -> Decimal | str | int:
    return {"decimal": value, "str": str(value), "int": int(value)}[form]


def to_line(spec: LineSpec, accounts) -> Line:
    value = money(spec.cents)
    side = "debit" if spec.debit else "credit"
    if spec.foreign is None:
        return Line(account=accounts[spec.code], **{side: given_as(value, spec.form)})
    currency, foreign = spec.foreign
    return Line(account=accounts[spec.code], currency=currency, base_amount=value, **{side: money(foreign)})


def to_entry(spec: EntrySpec, accounts, **fields) -> Entry:
    return Entry(date=spec.day, lines=[to_line(line, accounts) for line in spec.lines], **fields)


def expected_balances(specs, accounts, as_of: datetime.date) -> dict[int, int]:
    """The brute-force sum: each account's debit-positive balance in cents."""
    total: Counter[int] = Counter()
    for spec in specs:
        if spec.day <= as_of:
            for line in spec.lines:
                total[accounts[line.code].pk] += line.cents if line.debit else -line.cents
    return {pk: value for pk, value in total.items() if value}


def in_cents(found: dict[int, Decimal]) -> dict[int, int]:
    return {pk: int(value * 100) for pk, value in found.items() if value}


@dataclasses.dataclass(frozen=True)
class Books:
    accounts: dict[str, Account]
    inactive: Account
    foreign: Account


@pytest.fixture
def books(company, chart, other_company):
    """The chart plus a locked FY2024, a closed January 2025, an inactive account and an
    account of another company."""
    year = periods.open_year(company, LOCKED_DAY)
    closing.close_periods_through(company, year.end_date)
    closing.close_year(year)
    periods.open_year(company, CLOSED_DAY)
    closing.close_periods_through(company, datetime.date(2025, 1, 31))
    return Books(
        accounts=chart,
        inactive=AccountFactory(company=company, code="6999", type=AccountType.EXPENSE, is_active=False),
        foreign=AccountFactory(company=other_company, code="6998", type=AccountType.EXPENSE),
    )


# --- Valid postings ----------------------------------------------------------------------


# Lines whose float sum is -3.6E-12, not zero
NETS_TO_ZERO = EntrySpec(
    FIRST_OPEN,
    (
        LineSpec("1100", True, 1, None, "decimal"),
        LineSpec("1100", True, 1849685, None, "decimal"),
        LineSpec("1100", False, 1849686, None, "decimal"),
    ),
)


@PROPERTY
@example(specs=[NETS_TO_ZERO], one_by_one=0, as_of=FIRST_OPEN)
@given(
    specs=st.lists(entry_specs(), min_size=1, max_size=8),
    one_by_one=st.integers(0, 8),
    as_of=st.dates(FIRST_OPEN, LAST_DAY),
)
def test_any_sequence_of_valid_postings_keeps_the_books_balanced(company, books, specs, one_by_one, as_of):
    accounts = books.accounts
    with clean_slate():
        before = snapshot()
        # Given some entries posted one at a time and the rest as one batch
        entries = [to_entry(spec, accounts) for spec in specs]
        for entry in entries[:one_by_one]:
            assert post(company, entry).created
        batch = post_many(company, entries[one_by_one:])

        # Then every entry and line is in, the trial balance balances over the whole range
        # and any part of it, and each balance is the sum of what was posted
        after = snapshot()
        assert after["entries"] - before["entries"] == len(specs)
        assert after["lines"] - before["lines"] == sum(len(spec.lines) for spec in specs)
        assert len(batch.created) == len(entries) - min(one_by_one, len(entries))
        whole = balances.trial_balance(company, FIRST_OPEN, LAST_DAY)
        posted_debits = sum(line.cents for spec in specs for line in spec.lines if line.debit)
        assert whole.balanced
        assert whole.totals == {
            "opening": 0,
            "debit": money(posted_debits),
            "credit": money(posted_debits),
            "closing": 0,
        }
        part = balances.trial_balance(company, as_of, LAST_DAY)
        assert part.balanced
        assert part.totals["opening"] == part.totals["closing"] == 0
        assert in_cents(balances.balances_as_of(company, as_of)) == expected_balances(specs, accounts, as_of)
        assert in_cents(balances.balances_as_of(company, LAST_DAY)) == expected_balances(specs, accounts, LAST_DAY)


# --- Invalid postings ------------------------------------------------------------------------

# How an entry is broken: the field the refusal names and what its message says.
BREAKS = {
    "unbalanced by a cent": ("lines", "differ by 0.01"),
    "one line": ("lines", "at least 2 lines"),
    "inactive account": ("lines", "is inactive"),
    "another company's account": ("lines", "does not exist in this company"),
    "closed period": ("date", "Period 2025-01 is closed"),
    "locked period": ("date", "is locked"),
    "float amount": ("lines", "not a float"),
    "too many decimals": ("lines", "more decimal places"),
    "negative amount": ("lines", "cannot be negative"),
    "debit and credit": ("lines", "not both"),
}


def side_of(line: Line) -> tuple[str, Decimal]:
    """The side a line's amount is on and the amount, as a Decimal."""
    debit = Decimal(str(line.debit))
    return ("debit", debit) if debit else ("credit", Decimal(str(line.credit)))


def broken(spec: EntrySpec, how: str, books: Books) -> Entry:
    if how == "unbalanced by a cent":
        first = dataclasses.replace(spec.lines[0], cents=spec.lines[0].cents + 1)
        return to_entry(dataclasses.replace(spec, lines=(first, *spec.lines[1:])), books.accounts)
    entry = to_entry(spec, books.accounts)
    first, rest = entry.lines[0], list(entry.lines[1:])
    side, value = side_of(first)
    match how:
        case "one line":
            return dataclasses.replace(entry, lines=[first])
        case "inactive account":
            first = dataclasses.replace(first, account=books.inactive)
        case "another company's account":
            first = dataclasses.replace(first, account=books.foreign)
        case "closed period":
            return dataclasses.replace(entry, date=CLOSED_DAY.replace(day=min(spec.day.day, 31)))
        case "locked period":
            return dataclasses.replace(entry, date=LOCKED_DAY.replace(month=spec.day.month, day=min(spec.day.day, 28)))
        case "float amount":
            first = dataclasses.replace(first, **{side: float(value)})
        case "too many decimals":
            first = dataclasses.replace(first, **{side: value + Decimal("0.001")})
        case "negative amount":
            first = dataclasses.replace(first, **{side: -value})
        case "debit and credit":
            first = dataclasses.replace(first, debit=value, credit=value)
    return dataclasses.replace(entry, lines=[first, *rest])


@PROPERTY
@given(spec=entry_specs(), how=st.sampled_from(sorted(BREAKS)))
def test_every_invalid_entry_is_refused_whole_naming_the_field(company, books, spec, how):
    field, message = BREAKS[how]
    with clean_slate():
        before = snapshot()

        with pytest.raises(PostingError) as caught:
            post(company, broken(spec, how, books))

        assert set(caught.value.message_dict) == {field}
        assert any(message in text for text in caught.value.message_dict[field])
        assert snapshot() == before


@PROPERTY
@given(
    good=st.lists(entry_specs(), min_size=1, max_size=5),
    spec=entry_specs(),
    how=st.sampled_from(sorted(BREAKS)),
    at=st.integers(0, 5),
)
def test_one_bad_entry_refuses_the_whole_batch(company, books, good, spec, how, at):
    field, message = BREAKS[how]
    entries = [to_entry(each, books.accounts) for each in good]
    at = min(at, len(entries))
    entries.insert(at, broken(spec, how, books))
    with clean_slate():
        before = snapshot()

        with pytest.raises(PostingError) as caught:
            post_many(company, entries)

        assert set(caught.value.message_dict) == {field}
        # a fault in the lines says which entry of the batch it is in
        expected = f"entry {at + 1}: " if field == "lines" else ""
        assert any(text.startswith(expected) and message in text for text in caught.value.message_dict[field])
        assert snapshot() == before


# --- Replays ---------------------------------------------------------------------------------


@PROPERTY
@given(specs=st.lists(entry_specs(), min_size=2, max_size=6), first=st.integers(1, 5), order=st.randoms())
def test_replayed_postings_create_nothing_alone_or_mixed_into_a_batch(company, books, specs, first, order):
    entries = [
        to_entry(spec, books.accounts, source=Source.BILLING, source_id=f"invoice:{n}") for n, spec in enumerate(specs)
    ]
    first = min(first, len(entries) - 1)
    with clean_slate():
        # Given some entries posted under their source ids
        ids = dict(zip(range(first), post_many(company, entries[:first]).created, strict=True))
        before = snapshot()

        # When each is posted again
        replays = [post(company, entries[n]) for n in range(first)]

        # Then the first entry comes back each time and nothing is written
        assert [(posted.entry.pk, posted.created) for posted in replays] == [(ids[n], False) for n in range(first)]
        assert snapshot() == before

        # When a batch mixes them with new entries, in any order
        mixed = list(range(len(entries)))
        order.shuffle(mixed)
        batch = post_many(company, [entries[n] for n in mixed])

        # Then the old ones are reported as existing, in the order given, and only the new ones are written
        assert batch.existing == [ids[n] for n in mixed if n < first]
        assert len(batch.created) == len(entries) - first
        new = [n for n in mixed if n >= first]
        assert snapshot()["entries"] == before["entries"] + len(new)
        assert snapshot()["lines"] == before["lines"] + sum(len(specs[n].lines) for n in new)
        assert list(
            JournalEntry.objects.filter(pk__in=batch.created).order_by("pk").values_list("source_id", flat=True)
        ) == [f"invoice:{n}" for n in new]

        # And the whole batch again writes nothing at all
        again = snapshot()
        assert post_many(company, [entries[n] for n in mixed]).created == []
        assert snapshot() == again


def test_a_source_id_is_unique_per_company_and_source(company, chart, other_company):
    bank, sales = chart["1100"], chart["4100"]
    load_default_chart(other_company)
    rival = {a.code: a for a in Account.objects.filter(company=other_company)}
    lines = [Line(bank, debit="10.00"), Line(sales, credit="10.00")]
    rival_lines = [Line(rival["1100"], debit="10.00"), Line(rival["4100"], credit="10.00")]

    billed = post(company, Entry(DAY, lines, source=Source.BILLING, source_id="42"))
    received = post(company, Entry(DAY, lines, source=Source.RECEIVABLES, source_id="42"))
    theirs = post(other_company, Entry(DAY, rival_lines, source=Source.BILLING, source_id="42"))

    assert billed.created and received.created and theirs.created
    assert len({billed.entry.pk, received.entry.pk, theirs.entry.pk}) == 3


def test_a_batch_naming_one_source_id_twice_is_refused(company, chart):
    entry = Entry(DAY, [Line(chart["1100"], debit=5), Line(chart["4100"], credit=5)], source_id="import:7")

    with pytest.raises(PostingError) as caught:
        post_many(company, [entry, entry])

    assert caught.value.message_dict == {"source_id": ["entry 2: manual 'import:7' appears twice in this batch."]}
    assert not JournalEntry.objects.exists()


def test_a_posted_entry_records_who_posted_it_and_its_period(company, chart, owner):
    posted = post(
        company, Entry(DAY, [Line(chart["1100"], debit="12.50"), Line(chart["4100"], credit="12.50")]), user=owner
    )

    entry = posted.entry
    assert (entry.status, entry.posted_by, entry.created_by) == (EntryStatus.POSTED, owner, owner)
    assert entry.period.label == "2026-03"
    assert list(entry.lines.values_list("posted", "amount", "currency")) == [
        (True, Decimal("12.50"), "GBP"),
        (True, Decimal("-12.50"), "GBP"),
    ]


def test_a_foreign_currency_line_needs_its_base_amount_and_balances_on_it(company, chart):
    usd = Line(chart["1100"], debit="130.00", currency="usd")

    with pytest.raises(PostingError, match="needs base_amount"):
        post(company, Entry(DAY, [usd, Line(chart["4100"], credit="100.00")]))
    with pytest.raises(PostingError, match="must equal"):
        post(company, Entry(DAY, [Line(chart["1100"], debit="5", base_amount="6"), Line(chart["4100"], credit="5")]))
    posted = post(
        company, Entry(DAY, [dataclasses.replace(usd, base_amount="100.00"), Line(chart["4100"], credit=100)])
    )

    line = posted.entry.lines.get(account=chart["1100"])
    assert (line.currency, line.debit, line.amount) == ("USD", Decimal("130.00"), Decimal("100.00"))
    assert balances.balance(chart["1100"], DAY) == Decimal("100.00")


def test_an_empty_batch_posts_nothing(company):
    batch = post_many(company, [])

    assert (batch.created, batch.existing) == ([], [])


# --- Drafts and reversals ------------------------------------------------------------------------


def sale(chart, amount="100.00", day=DAY, **fields) -> Entry:
    return Entry(day, [Line(chart["1100"], debit=amount), Line(chart["4100"], credit=amount)], **fields)


def test_a_draft_may_be_unbalanced_but_is_posted_only_once_it_balances(company, chart, owner):
    draft = create_draft(company, Entry(DAY, [Line(chart["1100"], debit="80.00")], reference="half done"), user=owner)

    with pytest.raises(PostingError) as caught:
        post_draft(draft)

    draft.refresh_from_db()
    assert set(caught.value.message_dict) == {"lines"}
    assert draft.status == EntryStatus.DRAFT
    assert balances.balance(chart["1100"], DAY) == 0  # a draft is not in the books


def test_an_updated_draft_posts_its_new_lines(company, chart, owner):
    draft = create_draft(company, Entry(DAY, [Line(chart["1100"], debit="80.00")]), user=owner)

    update_draft(draft, sale(chart, "95.00", day=datetime.date(2026, 4, 2), reference="INV-9"))
    posted = post_draft(draft, user=owner)

    entry = posted.entry
    assert posted.created
    assert (entry.status, entry.reference, entry.period.label, entry.posted_by) == (
        EntryStatus.POSTED,
        "INV-9",
        "2026-04",
        owner,
    )
    assert list(entry.lines.values_list("account__code", "amount", "posted")) == [
        ("1100", Decimal("95.00"), True),
        ("4100", Decimal("-95.00"), True),
    ]
    assert balances.balance(chart["4100"], datetime.date(2026, 4, 30)) == Decimal("-95.00")


def test_posting_a_draft_twice_is_a_no_op(company, chart):
    draft = create_draft(company, sale(chart))
    first = post_draft(draft)
    before = snapshot()

    again = post_draft(draft)

    assert (first.created, again.created) == (True, False)
    assert again.entry.pk == first.entry.pk
    assert again.entry.posted_at == first.entry.posted_at
    assert snapshot() == before


def test_a_posted_entry_cannot_be_updated(company, chart):
    entry = post(company, sale(chart)).entry

    with pytest.raises(PostingError) as caught:
        update_draft(entry, sale(chart, "1.00"))

    assert set(caught.value.message_dict) == {"status"}
    assert list(entry.lines.values_list("amount", flat=True)) == [Decimal("100.00"), Decimal("-100.00")]


def test_a_draft_is_checked_for_accounts_and_periods_when_saved(company, chart):
    inactive = AccountFactory(company=company, code="6999", type=AccountType.EXPENSE, is_active=False)
    periods.open_year(company, datetime.date(2026, 1, 1))
    closing.close_periods_through(company, datetime.date(2026, 1, 31))

    with pytest.raises(PostingError, match="inactive"):
        create_draft(company, Entry(DAY, [Line(inactive, debit=1)]))
    with pytest.raises(PostingError, match="2026-01 is closed"):
        create_draft(company, Entry(datetime.date(2026, 1, 5), [Line(chart["1100"], debit=1)]))
    assert not JournalEntry.objects.exists()


def test_a_reversal_mirrors_the_lines_and_marks_the_original_reversed(company, chart):
    usd = Line(chart["1200"], debit="130.00", currency="USD", base_amount="100.00", party="customer:7")
    original = post(company, Entry(DAY, [usd, Line(chart["4100"], credit="100.00")], reference="INV-1")).entry

    reversal = reverse(original, date=datetime.date(2026, 4, 1)).entry

    original.refresh_from_db()
    assert original.status == EntryStatus.REVERSED
    assert (reversal.reverses, original.reversed_by) == (original, reversal)
    assert (reversal.status, reversal.date, reversal.source) == (
        EntryStatus.POSTED,
        datetime.date(2026, 4, 1),
        "system",
    )
    mirrored = ("account__code", "debit", "credit", "currency", "amount", "party")
    assert list(reversal.lines.order_by("pk").values_list(*mirrored)) == [
        ("1200", 0, Decimal("130.00"), "USD", Decimal("-100.00"), "customer:7"),
        ("4100", Decimal("100.00"), 0, "GBP", Decimal("100.00"), ""),
    ]
    assert balances.balances_as_of(company, datetime.date(2026, 4, 1)) == {
        chart["1200"].pk: 0,
        chart["4100"].pk: 0,
    }


def test_reversing_twice_returns_the_same_reversal(company, chart):
    original = post(company, sale(chart)).entry
    first = reverse(original)
    before = snapshot()

    again = reverse(original)

    assert (first.created, again.created) == (True, False)
    assert again.entry.pk == first.entry.pk
    assert snapshot() == before


def test_a_draft_cannot_be_reversed(company, chart):
    draft = create_draft(company, sale(chart))

    with pytest.raises(PostingError) as caught:
        reverse(draft)

    assert set(caught.value.message_dict) == {"status"}


def test_an_entry_in_a_closed_period_is_reversed_into_an_open_one(company, chart):
    original = post(company, sale(chart, day=datetime.date(2026, 1, 20))).entry
    closing.close_periods_through(company, datetime.date(2026, 1, 31))

    with pytest.raises(PostingError, match="2026-01 is closed"):
        reverse(original)
    reversal = reverse(original, date=datetime.date(2026, 2, 1)).entry

    assert reversal.period.label == "2026-02"
    assert balances.balance(chart["1100"], datetime.date(2026, 1, 31)) == Decimal("100.00")
    assert balances.balance(chart["1100"], datetime.date(2026, 2, 1)) == 0


def test_a_draft_holding_a_source_id_refuses_a_posting_under_it(company, chart):
    draft = create_draft(company, sale(chart, source=Source.BILLING, source_id="invoice:5"))

    with pytest.raises(PostingError) as caught:
        post(company, sale(chart, source=Source.BILLING, source_id="invoice:5"))

    assert caught.value.message_dict == {
        "source_id": [f"billing 'invoice:5' is held by draft JE{draft.pk}; post or delete that draft."]
    }
    assert JournalEntry.objects.count() == 1


def test_once_its_draft_is_posted_a_source_id_replays_to_it(company, chart):
    draft = create_draft(company, sale(chart, source=Source.BILLING, source_id="invoice:5"))
    post_draft(draft)

    replay = post(company, sale(chart, source=Source.BILLING, source_id="invoice:5"))

    assert (replay.entry.pk, replay.created) == (draft.pk, False)


def test_two_drafts_cannot_share_a_source_id(company, chart):
    create_draft(company, sale(chart, source_id="import:1"))
    other = create_draft(company, sale(chart, source_id="import:2"))

    with pytest.raises(PostingError) as created:
        create_draft(company, sale(chart, source_id="import:1"))
    with pytest.raises(PostingError) as updated:
        update_draft(other, sale(chart, source_id="import:1"))

    assert created.value.message_dict == {"source_id": ["manual 'import:1' is already used."]}
    assert updated.value.message_dict == {"source_id": ["manual 'import:1' is already used."]}
    other.refresh_from_db()
    assert other.source_id == "import:2"
