"""Posting: the one way entries enter the books.

    post(company, Entry(date, [Line(cash, debit="100.00"), Line(sales, credit="100.00")],
                        source=Source.BILLING, source_id="invoice:42"))

An entry is refused whole, with every reason named, when its company-currency debits and
credits differ, it has fewer than two lines, an account is inactive or not the company's,
or its period is closed or locked. Posting the same (company, source, source id) again
creates nothing and returns the entry already there, also when two workers post it at
the same moment. Posted entries are never edited; ``reverse`` posts the mirror entry.

``post_many`` is the same service for a batch: one query for the accounts, one for the
periods, one insert for the entries and one for the lines, whatever the batch size.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from config import bulk
from ledger import currencies
from ledger.errors import PostingError
from ledger.models import Account, Company, EntryStatus, JournalEntry, JournalLine, Period, PeriodStatus, Source
from ledger.services import periods as periods_service
from ledger.services.periods import EARLIEST, LATEST

ZERO = Decimal(0)
MIN_LINES = 2
INSERT_BATCH = 2000
CONFLICT_ATTEMPTS = 3
MAX_AMOUNT = Decimal(10) ** 15  # what the money columns hold with room for sums


@dataclass(frozen=True)
class Line:
    """One line to post. ``debit`` / ``credit`` are in ``currency`` (the company's when
    empty); a line in another currency also gives ``base_amount``, its value in the
    company's currency, which is what must balance."""

    account: Account | int
    debit: Decimal | int | str = ZERO
    credit: Decimal | int | str = ZERO
    currency: str = ""
    base_amount: Decimal | int | str | None = None
    party: str = ""
    description: str = ""

    @property
    def account_id(self) -> int:
        return self.account.pk if isinstance(self.account, Account) else int(self.account)


@dataclass(frozen=True)
class Entry:
    date: datetime.date
    lines: Sequence[Line]
    reference: str = ""
    memo: str = ""
    source: str = Source.MANUAL
    source_id: str = ""

    @property
    def key(self) -> tuple[str, str] | None:
        return (self.source, self.source_id) if self.source_id else None


@dataclass
class Posted:
    entry: JournalEntry
    created: bool


@dataclass
class Batch:
    """Entry ids in the order given: those this call created and those already posted."""

    created: list[int] = field(default_factory=list)
    existing: list[int] = field(default_factory=list)


@dataclass
class _Prepared:
    entry: Entry
    period: Period
    lines: list[tuple[Line, str, Decimal, Decimal, Decimal]]  # line, currency, debit, credit, amount


def post(company: Company, entry: Entry, *, user=None) -> Posted:
    """Post one entry; see the module docstring."""
    batch = post_many(company, [entry], user=user)
    pk = (batch.created or batch.existing)[0]
    return Posted(JournalEntry.objects.get(pk=pk), created=bool(batch.created))


def post_many(company: Company, entries: Sequence[Entry], *, user=None) -> Batch:
    """Post a batch of entries all or nothing; entries already posted under their source
    id are skipped and reported as existing."""
    return _post(company, entries, user=user)


def create_draft(company: Company, entry: Entry, *, user=None) -> JournalEntry:
    """Save an entry to post later. A draft may be unbalanced or short of lines, but its
    accounts, amounts and period are checked now."""
    with transaction.atomic():
        prepared = _prepare(company, [entry], complete=False)[0]
        _check_periods([prepared], allow_closed=False)
        draft = _entry_row(company, prepared, status=EntryStatus.DRAFT, user=user, now=timezone.now())
        _save_keyed(draft, entry)
        JournalLine.objects.bulk_create(_line_rows(company, draft, prepared, posted=False))
    return draft


def update_draft(draft: JournalEntry, entry: Entry) -> JournalEntry:
    """Replace a draft's date, texts and lines."""
    with transaction.atomic():
        draft = _locked(draft)
        if draft.status != EntryStatus.DRAFT:
            raise PostingError({"status": [f"Entry {draft.pk} is {draft.status}; only drafts change."]})
        prepared = _prepare(draft.company, [entry], complete=False)[0]
        _check_periods([prepared], allow_closed=False)
        for name in ("date", "reference", "memo", "source", "source_id"):
            setattr(draft, name, getattr(entry, name))
        draft.period = prepared.period
        _save_keyed(draft, entry)
        draft.lines.all().delete()
        JournalLine.objects.bulk_create(_line_rows(draft.company, draft, prepared, posted=False))
    return draft


def post_draft(draft: JournalEntry, *, user=None) -> Posted:
    """Post a saved draft after the same checks as ``post``. Posting it again is a no-op."""
    with transaction.atomic():
        draft = _locked(draft)
        if draft.status != EntryStatus.DRAFT:
            return Posted(draft, created=False)
        entry = draft_as_entry(draft)
        prepared = _prepare(draft.company, [entry], complete=True)
        _check_periods(prepared, allow_closed=False)
        now = timezone.now()
        draft.status = EntryStatus.POSTED
        draft.posted_at = now
        draft.posted_by = user
        draft.flagged_at = None
        draft.flag_reason = ""
        draft.save(update_fields=["status", "posted_at", "posted_by", "flagged_at", "flag_reason"])
        draft.lines.update(posted=True)
    return Posted(draft, created=True)


def reverse(entry: JournalEntry, *, date: datetime.date | None = None, user=None, memo: str = "") -> Posted:
    """Post the mirror of a posted entry (debits become credits) on ``date`` (default: the
    entry's own date) and mark the original reversed. Reversing again returns the first
    reversal."""
    with transaction.atomic():
        entry = _locked(entry)
        if entry.status == EntryStatus.REVERSED:
            return Posted(entry.reversed_by, created=False)
        if entry.status != EntryStatus.POSTED:
            raise PostingError({"status": [f"Entry {entry.pk} is a draft; delete it instead of reversing it."]})
        if entry.is_closing:
            # Its mirror in a later year would put a closed year's income and expense back
            # into that year's results.
            raise PostingError({"status": [f"Entry {entry.pk} is a year-end closing entry; it is not reversed."]})
        mirror = Entry(
            date=date or entry.date,
            lines=[_as_line(line, mirrored=True) for line in entry.lines.order_by("pk")],
            reference=f"Reversal of JE{entry.pk}",
            memo=memo or f"Reverses JE{entry.pk} {entry.reference}".strip(),
            source=Source.SYSTEM,
            source_id=f"reversal-of:{entry.pk}",
        )
        batch = _post(entry.company, [mirror], user=user, reverses=entry)
        reversal = JournalEntry.objects.get(pk=(batch.created or batch.existing)[0])
        if reversal.reverses_id != entry.pk:
            raise PostingError({"source_id": [f"{mirror.source} {mirror.source_id!r} is held by JE{reversal.pk}."]})
        entry.status = EntryStatus.REVERSED
        entry.save(update_fields=["status"])
    return Posted(reversal, created=bool(batch.created))


def post_closing(company: Company, entry: Entry) -> Batch:
    """The year-end closing entry: the only posting a closed (not locked) period accepts."""
    return _post(company, [entry], closing=True)


def _save_keyed(draft: JournalEntry, entry: Entry) -> None:
    try:
        with transaction.atomic():
            draft.save()
    except IntegrityError as exc:
        raise PostingError({"source_id": [f"{entry.source} {entry.source_id!r} is already used."]}) from exc


def draft_as_entry(draft: JournalEntry) -> Entry:
    return Entry(
        date=draft.date,
        reference=draft.reference,
        memo=draft.memo,
        source=draft.source,
        source_id=draft.source_id,
        lines=[_as_line(line) for line in draft.lines.order_by("pk")],
    )


def _as_line(row: JournalLine, *, mirrored: bool = False) -> Line:
    """A saved line as a Line to post again; ``mirrored`` swaps its sides, for a reversal."""
    debit, credit = (row.credit, row.debit) if mirrored else (row.debit, row.credit)
    return Line(
        account=row.account_id,
        debit=debit,
        credit=credit,
        currency=row.currency,
        base_amount=abs(row.amount),
        party=row.party,
        description=row.description,
    )


# --- The one path every posting takes -------------------------------------------------


def _post(
    company: Company,
    entries: Sequence[Entry],
    *,
    user=None,
    closing: bool = False,
    reverses: JournalEntry | None = None,
) -> Batch:
    if not entries:
        return Batch()
    with transaction.atomic():
        for _attempt in range(CONFLICT_ATTEMPTS):
            # Entries already posted are looked up first: a replay returns them even when
            # their period has closed or an account gone inactive since.
            existing = _existing(company, entries)
            prepared = _prepare(company, entries, complete=True, closing=closing, skip=set(existing))
            _check_periods(prepared, allow_closed=closing)
            try:
                with transaction.atomic():  # a savepoint: a concurrent poster's win rolls back only this
                    created = _insert(company, prepared, user=user, closing=closing, reverses=reverses)
                break
            except IntegrityError:
                # Another transaction posted one of these source ids since we looked; it
                # has committed (the insert waited for it), so the next look finds it.
                continue
        else:
            raise PostingError({"source_id": ["These source ids kept colliding with concurrent postings."]})
    created_ids = iter(created)
    batch = Batch()
    for entry in entries:
        if entry.key is not None and entry.key in existing:
            batch.existing.append(existing[entry.key])
        else:
            batch.created.append(next(created_ids))
    return batch


def _insert(company: Company, prepared: list[_Prepared], *, user, closing: bool, reverses) -> list[int]:
    if not prepared:
        return []
    now = timezone.now()
    if connection.vendor == "postgresql":
        return _insert_columns(company, prepared, user=user, closing=closing, reverses=reverses, now=now)
    rows = [_entry_row(company, p, status=EntryStatus.POSTED, user=user, now=now) for p in prepared]
    for row in rows:
        row.is_closing = closing
        row.posted_at = now
        row.posted_by = user
        row.reverses = reverses
    JournalEntry.objects.bulk_create(rows, batch_size=INSERT_BATCH)
    lines = [line for row, p in zip(rows, prepared, strict=True) for line in _line_rows(company, row, p, posted=True)]
    JournalLine.objects.bulk_create(lines, batch_size=INSERT_BATCH)
    return [row.pk for row in rows]


def _insert_columns(
    company: Company, prepared: list[_Prepared], *, user, closing: bool, reverses, now: datetime.datetime
) -> list[int]:
    """PostgreSQL: entries and lines written as column arrays with ``INSERT … SELECT * FROM
    UNNEST(…)``, straight from the checked values. Building a model instance per row and
    preparing each field through the ORM was two thirds of a batch's time; this is the
    statement ``bulk_create`` itself sends, without that per-row work."""
    user_id = getattr(user, "pk", None)
    reverses_id = getattr(reverses, "pk", None)
    ids: list[int] = []
    for start in range(0, len(prepared), INSERT_BATCH):
        batch = prepared[start : start + INSERT_BATCH]
        n = len(batch)
        entry_ids = bulk.insert_columns(
            JournalEntry,
            {
                "company": [company.pk] * n,
                "date": [p.entry.date for p in batch],
                "period": [p.period.pk for p in batch],
                "reference": [p.entry.reference for p in batch],
                "memo": [p.entry.memo for p in batch],
                "source": [p.entry.source for p in batch],
                "source_id": [p.entry.source_id for p in batch],
                "status": [EntryStatus.POSTED.value] * n,
                "is_closing": [closing] * n,
                "reverses": [reverses_id] * n,
                "flag_reason": [""] * n,
                "created_by": [user_id] * n,
                "created_at": [now] * n,
                "posted_by": [user_id] * n,
                "posted_at": [now] * n,
            },
        )
        entry_ids = [entry_id for (entry_id,) in entry_ids]
        lines = [(entry_id, p, line) for entry_id, p in zip(entry_ids, batch, strict=True) for line in p.lines]
        bulk.insert_columns(
            JournalLine,
            {
                "entry": [entry_id for entry_id, _p, _line in lines],
                "company": [company.pk] * len(lines),
                "account": [line[0].account_id for _id, _p, line in lines],
                "date": [p.entry.date for _id, p, _line in lines],
                "posted": [True] * len(lines),
                "description": [line[0].description for _id, _p, line in lines],
                "debit": [line[2] for _id, _p, line in lines],
                "credit": [line[3] for _id, _p, line in lines],
                "currency": [line[1] for _id, _p, line in lines],
                "amount": [line[4] for _id, _p, line in lines],
                "party": [line[0].party for _id, _p, line in lines],
            },
            returning=(),
        )
        ids.extend(entry_ids)
    return ids


def _entry_row(company: Company, p: _Prepared, *, status: str, user, now: datetime.datetime) -> JournalEntry:
    return JournalEntry(
        company=company,
        date=p.entry.date,
        period=p.period,
        reference=p.entry.reference,
        memo=p.entry.memo,
        source=p.entry.source,
        source_id=p.entry.source_id,
        status=status,
        created_by=user,
        created_at=now,
    )


def _line_rows(company: Company, entry: JournalEntry, p: _Prepared, *, posted: bool) -> list[JournalLine]:
    return [
        JournalLine(
            entry=entry,
            company=company,
            account_id=line.account_id,
            date=p.entry.date,
            posted=posted,
            description=line.description,
            debit=debit,
            credit=credit,
            currency=currency,
            amount=amount,
            party=line.party,
        )
        for line, currency, debit, credit, amount in p.lines
    ]


def _existing(company: Company, entries: Sequence[Entry]) -> dict[tuple[str, str], int]:
    """Entries already posted under the batch's source ids. A draft holding one refuses
    the posting: returning it as "already posted" would report a draft as in the books."""
    keys = {entry.key for entry in entries if entry.key is not None}
    if not keys:
        return {}
    rows = JournalEntry.objects.filter(
        company=company, source__in={k[0] for k in keys}, source_id__in={k[1] for k in keys}
    ).values_list("source", "source_id", "pk", "status")
    found = {(source, source_id): (pk, status) for source, source_id, pk, status in rows if (source, source_id) in keys}
    drafts = [
        f"{key[0]} {key[1]!r} is held by draft JE{pk}; post or delete that draft."
        for key, (pk, status) in sorted(found.items())
        if status == EntryStatus.DRAFT
    ]
    if drafts:
        raise PostingError({"source_id": drafts})
    return {key: pk for key, (pk, _status) in found.items()}


def _locked(entry: JournalEntry) -> JournalEntry:
    return JournalEntry.objects.select_for_update().select_related("company").get(pk=entry.pk)


# --- Checks ---------------------------------------------------------------------------


def _prepare(
    company: Company,
    entries: Sequence[Entry],
    *,
    complete: bool,
    closing: bool = False,
    skip: set[tuple[str, str]] = frozenset(),
) -> list[_Prepared]:
    """Every entry checked and its amounts converted, or one PostingError naming every
    fault (prefixed "entry N:" in a batch). A closing entry may zero an inactive account."""
    errors: dict[str, list[str]] = {}
    prefix = (lambda n: f"entry {n + 1}: ") if len(entries) > 1 else (lambda n: "")

    def fail(field_name: str, n: int, message: str) -> None:
        errors.setdefault(field_name, []).append(prefix(n) + message)

    account_ids = {line.account_id for entry in entries for line in entry.lines if _is_id(line.account)}
    accounts = {
        pk: (code, name, active)
        for pk, code, name, active in Account.objects.filter(company=company, pk__in=account_ids).values_list(
            "pk", "code", "name", "is_active"
        )
    }
    base = company.base_currency
    seen_keys: set[tuple[str, str]] = set()
    prepared: list[_Prepared] = []
    for n, entry in enumerate(entries):
        if not isinstance(entry.date, datetime.date) or isinstance(entry.date, datetime.datetime):
            fail("date", n, "A date (YYYY-MM-DD) is required.")
        if entry.source not in Source.values:
            fail("source", n, f"Unknown source {entry.source!r}; choose from {', '.join(Source.values)}.")
        if entry.key is not None:
            if entry.key in seen_keys:
                fail("source_id", n, f"{entry.source} {entry.source_id!r} appears twice in this batch.")
            seen_keys.add(entry.key)
            if entry.key in skip:
                continue  # already in the books: nothing of it is written again
        if isinstance(entry.date, datetime.date) and not EARLIEST <= entry.date <= LATEST:
            fail("date", n, f"{entry.date} is outside the years the books keep ({EARLIEST.year} to {LATEST.year}).")
        if complete and len(entry.lines) < MIN_LINES:
            fail("lines", n, f"An entry needs at least {MIN_LINES} lines; this one has {len(entry.lines)}.")
        converted = []
        total_debit = total_credit = ZERO
        for i, line in enumerate(entry.lines, start=1):
            try:
                converted.append(_convert(line, base, accounts, allow_inactive=closing))
            except ValueError as exc:
                fail("lines", n, f"line {i}: {exc}")
                continue
            amount = converted[-1][4]
            if amount > 0:
                total_debit += amount
            else:
                total_credit -= amount
        if complete and total_debit != total_credit and len(converted) == len(entry.lines):
            fail(
                "lines",
                n,
                f"Debits {total_debit} and credits {total_credit} {base} differ by {abs(total_debit - total_credit)}.",
            )
        prepared.append(_Prepared(entry=entry, period=None, lines=converted))  # type: ignore[arg-type]
    if errors:
        raise PostingError(errors)
    found = periods_service.periods_for(company, {p.entry.date for p in prepared})
    for p in prepared:
        p.period = found[p.entry.date]
    return prepared


def _check_periods(prepared: list[_Prepared], *, allow_closed: bool) -> None:
    statuses = periods_service.lock_for_posting(p.period.pk for p in prepared)
    refused = {
        p.period.label: statuses[p.period.pk]
        for p in prepared
        if statuses[p.period.pk] == PeriodStatus.LOCKED
        or (statuses[p.period.pk] == PeriodStatus.CLOSED and not allow_closed)
    }
    if refused:
        messages = [f"Period {label} is {status}; it accepts no postings." for label, status in sorted(refused.items())]
        raise PostingError({"date": messages})


def _convert(
    line: Line, base: str, accounts: dict, *, allow_inactive: bool = False
) -> tuple[Line, str, Decimal, Decimal, Decimal]:
    if not _is_id(line.account) or line.account_id not in accounts:
        raise ValueError(f"account {_account_label(line.account)} does not exist in this company")
    code, name, active = accounts[line.account_id]
    if not active and not allow_inactive:
        raise ValueError(f"account {code} {name} is inactive")
    currency = (line.currency or base).upper()
    if currency not in currencies.MINOR_UNITS:
        raise ValueError(f"{currency!r} is not a currency code")
    places = currencies.MINOR_UNITS[currency]
    debit = _money(line.debit, places, currency, "debit")
    credit = _money(line.credit, places, currency, "credit")
    if debit < 0 or credit < 0:
        raise ValueError("debit and credit cannot be negative")
    if (debit > 0) == (credit > 0):
        raise ValueError("give either a debit or a credit, not both or neither")
    if currency == base:
        value = debit or credit
        if line.base_amount is not None and _money(line.base_amount, places, base, "base_amount") != value:
            raise ValueError(f"base_amount must equal the {base} amount on a {base} line")
    elif line.base_amount is None:
        raise ValueError(f"a {currency} line needs base_amount, its value in {base}")
    else:
        value = _money(line.base_amount, currencies.MINOR_UNITS[base], base, "base_amount")
        if value < 0:
            raise ValueError("base_amount cannot be negative")
    if len(line.party) > 64:
        raise ValueError("party is longer than 64 characters")
    return line, currency, debit, credit, value if debit else -value


def _money(value, places: int, currency: str, name: str) -> Decimal:
    if isinstance(value, float):
        raise ValueError(f"{name} must be a decimal, not a float")
    try:
        amount = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise ValueError(f"{name} {value!r} is not a number") from None
    if not amount.is_finite():
        raise ValueError(f"{name} {value!r} is not a number")
    if abs(amount) >= MAX_AMOUNT:
        raise ValueError(f"{name} {amount} is too large")
    step = currencies.quantum(places)
    if amount != amount.quantize(step):
        raise ValueError(f"{name} {amount} has more decimal places than {currency} allows ({places})")
    return amount.quantize(step)


def _is_id(account) -> bool:
    if isinstance(account, Account):
        return account.pk is not None
    return (isinstance(account, int) and not isinstance(account, bool)) or (
        isinstance(account, str) and account.isdigit()
    )


def _account_label(account) -> str:
    return str(account.pk if isinstance(account, Account) else account)
