"""The aging engine: pure functions from normalised documents to an aged receivables
report. No database, no I/O; every source (billing's books, Xero, files) feeds it the same
``Doc`` and ``Alloc`` values.

The contract, as of report date R:

- a document, payment or allocation counts iff its own date ≤ R;
- an invoice's open amount at R is its total less the allocations to it counted at R;
- what a credit note, payment, overpayment or prepayment has not allocated by R is a credit
  on account: a negative amount, in Current (or, with ``credit_aging="date"``, aged by its
  own date);
- so a contact's total is invoices - credits counted at R: its balance, always.

An allocation counts only when both its ends count too. Sources date an allocation no
earlier than either document, so this only matters for inconsistent data — and then it
keeps the balance rule instead of counting half an allocation.

Buckets: A is the due date (``age_by="due"``) or the invoice date. A ≥ R is Current;
otherwise d = R - A days falls in period ⌈d / length⌉ (length L days, or 7·L for weeks)
when that is ≤ P, else Older. Months count whole calendar months from A to R, as Xero's
columns do: m = 0 is "< 1 Month", m = 1 "1 Month", …, m ≥ P is Older.

A report never adds two currencies: rows are per company, contact and currency, and each
amount also has its base-currency figure (amount ÷ rate, to the cent) beside it.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from math import ceil

from ledger import currencies

ZERO = Decimal(0)
CENT = Decimal("0.01")
CURRENT = "Current"
OLDER = "Older"
PERIOD_TYPES = ("day", "week", "month")
AGE_BY = ("due", "invoice")
CREDIT_AGING = ("current", "date")
MAX_PERIODS = 24
MAX_PERIOD_LENGTH = 366

INVOICE = "invoice"
CREDIT_NOTE = "credit_note"
PAYMENT = "payment"
OVERPAYMENT = "overpayment"
PREPAYMENT = "prepayment"
CREDIT_KINDS = (CREDIT_NOTE, PAYMENT, OVERPAYMENT, PREPAYMENT)
KINDS = (INVOICE, *CREDIT_KINDS)
KIND_NAMES = {
    INVOICE: "Invoice",
    CREDIT_NOTE: "Credit Note",
    PAYMENT: "Payment",
    OVERPAYMENT: "Overpayment",
    PREPAYMENT: "Prepayment",
}


@dataclass(frozen=True, slots=True)
class Doc:
    """An invoice or a credit (credit note, payment, overpayment, prepayment). ``total`` is
    positive for both; the kind says which side it is on. ``rate`` is units of ``currency``
    per unit of the company's base currency."""

    kind: str
    id: str
    company: str
    contact: str
    date: datetime.date
    total: Decimal
    currency: str
    number: str = ""
    due_date: datetime.date | None = None
    rate: Decimal = Decimal(1)
    contact_id: str = ""

    @property
    def is_invoice(self) -> bool:
        return self.kind == INVOICE


@dataclass(frozen=True, slots=True)
class Alloc:
    """``amount`` of credit ``source`` applied to invoice ``invoice`` on ``date``."""

    source: str
    invoice: str
    amount: Decimal
    date: datetime.date
    id: str = ""


@dataclass(frozen=True, slots=True)
class Options:
    as_of: datetime.date
    periods: int = 4
    period_type: str = "month"
    period_length: int = 1
    age_by: str = "due"
    credit_aging: str = "current"

    def __post_init__(self) -> None:
        errors = option_errors(self.periods, self.period_type, self.period_length, self.age_by, self.credit_aging)
        if errors:
            raise ValueError("; ".join(f"{name}: {message}" for name, message in errors.items()))

    @property
    def labels(self) -> list[str]:
        return bucket_labels(self.periods, self.period_type, self.period_length)


def option_errors(periods: int, period_type: str, period_length: int, age_by: str, credit_aging: str) -> dict:
    """Each bad option with why, for an API's 400 or a command's one line."""
    errors = {}
    if not isinstance(periods, int) or not 1 <= periods <= MAX_PERIODS:
        errors["periods"] = f"must be a whole number from 1 to {MAX_PERIODS}"
    if period_type not in PERIOD_TYPES:
        errors["period_type"] = f"choose from {', '.join(PERIOD_TYPES)}"
    if not isinstance(period_length, int) or not 1 <= period_length <= MAX_PERIOD_LENGTH:
        errors["period_length"] = f"must be a whole number from 1 to {MAX_PERIOD_LENGTH}"
    if age_by not in AGE_BY:
        errors["age_by"] = f"choose from {', '.join(AGE_BY)}"
    if credit_aging not in CREDIT_AGING:
        errors["credit_aging"] = f"choose from {', '.join(CREDIT_AGING)}"
    return errors


def default_period_length(period_type: str) -> int:
    """30 days, one week or one month: the usual columns."""
    return 30 if period_type == "day" else 1


def bucket_labels(periods: int, period_type: str, period_length: int = 1) -> list[str]:
    """Column labels in order, "Current" first and "Older" last."""
    if period_type == "month":
        middle = ["< 1 Month"] + [f"{m} Month" + ("s" if m > 1 else "") for m in range(1, periods)]
    else:
        unit = "Day" if period_type == "day" else "Week"
        middle = []
        for k in range(1, periods + 1):
            first, last = (k - 1) * period_length + 1, k * period_length
            span = str(last) if first == last else f"{first}-{last}"
            middle.append(f"{span} {unit}" + ("" if last == 1 else "s"))
    return [CURRENT, *middle, OLDER]


def whole_months(start: datetime.date, end: datetime.date) -> int:
    """Whole calendar months from ``start`` to ``end`` (``end`` ≥ ``start``): the month
    difference, less one when ``end``'s day of month is before ``start``'s."""
    months = (end.year - start.year) * 12 + (end.month - start.month)
    if end.day < start.day:
        months -= 1
    return months


def bucket_index(anchor: datetime.date, options: Options) -> int:
    """0 for Current, 1…P for the periods, P + 1 for Older."""
    as_of = options.as_of
    if anchor >= as_of:
        return 0
    if options.period_type == "month":
        months = whole_months(anchor, as_of)
        return months + 1 if months < options.periods else options.periods + 1
    length = options.period_length * (7 if options.period_type == "week" else 1)
    period = ceil((as_of - anchor).days / length)
    return period if period <= options.periods else options.periods + 1


def bucket_of(anchor: datetime.date, options: Options) -> str:
    return options.labels[bucket_index(anchor, options)]


@dataclass(frozen=True, slots=True)
class Item:
    """One open item in a bucket: an invoice's open amount, or a credit's unallocated rest
    (negative)."""

    kind: str
    id: str
    number: str
    amount: Decimal
    base: Decimal
    bucket: int
    date: datetime.date
    due_date: datetime.date | None

    def __reduce__(self):
        # Cached rows hold hundreds of thousands of items; the dataclass's own state pickling
        # goes through a slow path per object, a plain tuple of fields does not.
        return Item, (self.kind, self.id, self.number, self.amount, self.base, self.bucket, self.date, self.due_date)


@dataclass
class Row:
    company: str
    contact: str
    currency: str
    buckets: list[Decimal]
    base: list[Decimal]
    items: list[Item] = field(default_factory=list)
    contact_id: str = ""

    total = property(lambda self: sum(self.buckets, ZERO))
    base_total = property(lambda self: sum(self.base, ZERO))


@dataclass
class Total:
    company: str
    currency: str
    buckets: list[Decimal]
    base: list[Decimal]

    total = Row.total
    base_total = Row.base_total


@dataclass
class Report:
    options: Options
    labels: list[str]
    rows: list[Row]
    totals: list[Total]


def to_base(amount: Decimal, rate: Decimal) -> Decimal:
    return amount if rate == 1 else (amount / rate).quantize(CENT, ROUND_HALF_UP)


def open_items(docs: Iterable[Doc], allocations: Iterable[Alloc], options: Options) -> list[tuple[Doc, Item]]:
    """Every document with something open at R, with its open item."""
    as_of = options.as_of
    counted = {doc.id: doc for doc in docs if doc.date <= as_of}
    applied: dict[str, Decimal] = defaultdict(Decimal)
    for allocation in allocations:
        if allocation.date <= as_of and allocation.source in counted and allocation.invoice in counted:
            applied[allocation.invoice] += allocation.amount
            applied[allocation.source] += allocation.amount
    found = []
    for doc in counted.values():
        rest = doc.total - applied.get(doc.id, ZERO)
        if not rest:
            continue
        if doc.is_invoice:
            anchor = (doc.due_date or doc.date) if options.age_by == "due" else doc.date
            bucket = bucket_index(anchor, options)
        else:
            rest = -rest
            bucket = bucket_index(doc.date, options) if options.credit_aging == "date" else 0
        item = Item(doc.kind, doc.id, doc.number, rest, to_base(rest, doc.rate), bucket, doc.date, doc.due_date)
        found.append((doc, item))
    return found


def age(docs: Iterable[Doc], allocations: Iterable[Alloc], options: Options) -> Report:
    """The aged receivables report: a row per company, contact and currency with an open
    item, sorted by company, contact and currency, and totals per company and currency."""
    labels = options.labels
    width = len(labels)
    rows: dict[tuple[str, str, str], Row] = {}
    for doc, item in open_items(docs, allocations, options):
        key = (doc.company, doc.contact, doc.currency)
        row = rows.get(key)
        if row is None:
            row = rows[key] = Row(doc.company, doc.contact, doc.currency, [ZERO] * width, [ZERO] * width)
            row.contact_id = doc.contact_id
        row.buckets[item.bucket] += item.amount
        row.base[item.bucket] += item.base
        row.items.append(item)
    ordered = [rows[key] for key in sorted(rows, key=lambda k: (k[0].casefold(), k[1].casefold(), k))]
    for row in ordered:
        row.items.sort(key=lambda item: (item.bucket, item.date, item.number, item.id))
    return Report(options, labels, ordered, totals_of(ordered, width))


def totals_of(rows: Sequence[Row], width: int) -> list[Total]:
    totals: dict[tuple[str, str], Total] = {}
    for row in rows:
        total = totals.get((row.company, row.currency))
        if total is None:
            total = totals[(row.company, row.currency)] = Total(
                row.company, row.currency, [ZERO] * width, [ZERO] * width
            )
        for index in range(width):
            total.buckets[index] += row.buckets[index]
            total.base[index] += row.base[index]
    return list(totals.values())


def balances(docs: Iterable[Doc], as_of: datetime.date) -> dict[tuple[str, str, str], Decimal]:
    """Each contact's balance at R by the balance rule alone: invoices - credits dated ≤ R."""
    found: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for doc in docs:
        if doc.date <= as_of:
            found[(doc.company, doc.contact, doc.currency)] += doc.total if doc.is_invoice else -doc.total
    return dict(found)


def percentages(amounts: Sequence[Decimal], total: Decimal) -> list[Decimal | None]:
    """Each bucket's share of ``total`` in per cent, to two places; none when the total is
    nothing (credits that cancel the debts leave no meaningful share)."""
    if not total:
        return [None] * len(amounts)
    return [(amount * 100 / total).quantize(CENT, ROUND_HALF_UP) for amount in amounts]


def shown(amount: Decimal, currency: str = "") -> Decimal:
    """``amount`` at its currency's places (two when unknown), or as it is when it has finer
    digits than those: a figure is never rounded on its way out."""
    step = currencies.quantum(currencies.MINOR_UNITS.get(currency, 2))
    rounded = amount.quantize(step)
    return rounded if rounded == amount else amount.normalize()


def money(amount: Decimal, currency: str = "") -> str:
    """``1,500.00``: thousands separated, at the currency's places."""
    value = shown(amount, currency)
    places = max(0, -value.as_tuple().exponent)
    return f"{value:,.{places}f}"


def comments(row: Row, labels: Sequence[str]) -> str:
    """The row's system comments: each bucket's items, as seed 003 printed them.

    Current:
    INV-001 (Invoice, ID: 12345) = 1,500.00
    CN-002 (Credit Note, ID: 67890) = -200.00
    """
    blocks = []
    for index, label in enumerate(labels):
        lines = [
            f"{item.number or item.id} ({KIND_NAMES[item.kind]}, ID: {item.id}) = {money(item.amount, row.currency)}"
            for item in row.items
            if item.bucket == index
        ]
        if lines:
            blocks.append("\n".join([f"{label}:", *lines]))
    return "\n\n".join(blocks)


def totals_json(report: Report) -> list[dict]:
    """The report's totals per company and currency, as in its JSON form."""
    labels = report.labels
    return [
        {
            "company": total.company,
            "currency": total.currency,
            "buckets": _amounts(labels, total.buckets, total.currency),
            "total": str(shown(total.total, total.currency)),
            "percentages": _shares(labels, total.buckets, total.total),
            "base_buckets": _amounts(labels, total.base),
            "base_total": str(shown(total.base_total)),
        }
        for total in report.totals
    ]


def _amounts(labels: Sequence[str], values: Sequence[Decimal], currency: str = "") -> dict[str, str]:
    return {label: str(shown(value, currency)) for label, value in zip(labels, values, strict=True)}


def _shares(labels: Sequence[str], values: Sequence[Decimal], total: Decimal) -> dict[str, str | None]:
    return {
        label: None if share is None else str(share)
        for label, share in zip(labels, percentages(values, total), strict=True)
    }


def as_json(report: Report, *, reconciliation: Sequence[dict] = (), failures: Sequence[dict] = ()) -> dict:
    """The report's JSON form (the API's and the command's): amounts as decimal strings in
    the row's currency, base-currency figures beside them."""
    labels = report.labels
    body = {
        "as_of": report.options.as_of.isoformat(),
        "periods": report.options.periods,
        "period_type": report.options.period_type,
        "period_length": report.options.period_length,
        "age_by": report.options.age_by,
        "credit_aging": report.options.credit_aging,
        "buckets": list(labels),
        "rows": [
            {
                "company": row.company,
                "contact": row.contact,
                "currency": row.currency,
                "buckets": _amounts(labels, row.buckets, row.currency),
                "total": str(shown(row.total, row.currency)),
                "percentages": _shares(labels, row.buckets, row.total),
                "base_buckets": _amounts(labels, row.base),
                "base_total": str(shown(row.base_total)),
                "comments": comments(row, labels),
            }
            for row in report.rows
        ],
        "totals": totals_json(report),
    }
    if reconciliation:
        body["reconciliation"] = list(reconciliation)
    if failures:
        body["failures"] = list(failures)
    return body
