"""The interchange format: any accounting export, as JSON Lines or CSV, aged like Xero.

One object per line (CSV: the same field names in a header row):

    {"type": "invoice", "id", "company", "contact", "number", "date", "due_date", "total", "currency", "rate"?}
    {"type": "credit_note" | "payment" | "overpayment" | "prepayment", "id", "company", "contact",
     "number"?, "date", "total", "currency", "rate"?}
    {"type": "allocation", "id", "from": <credit or payment id>, "to": <invoice id>, "amount", "date"}

Amounts are decimal strings (a JSON number is read as a decimal, never a float), dates
``YYYY-MM-DD``; ``rate`` is units of the document's currency per unit of the company's base
currency (absent: 1). ``company`` and ``contact`` are labels.

The whole file is checked before anything is kept: a bad line fails the import with its
line number and reason, and nothing is half-imported. Beyond each line's own fields, an
allocation must join a credit to an invoice of the same company, contact and currency,
dated no earlier than either, and no document may be allocated beyond its total.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import IO

from django.db import transaction

from receivables import engine
from receivables.models import Allocation, Document, DocumentSet

MAX_AMOUNT = Decimal(10) ** 15
MAX_PLACES = 3
MAX_LINES = 5_000_000
LIMITS = {"id": 100, "company": 200, "contact": 500, "number": 255, "from": 100, "to": 100}
DOCUMENT_FIELDS = {"type", "id", "company", "contact", "number", "date", "due_date", "total", "currency", "rate"}
ALLOCATION_FIELDS = {"type", "id", "from", "to", "amount", "date"}
BATCH = 5000


class FileError(ValueError):
    """The file cannot be aged: the first bad line and why."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        super().__init__(f"line {line}: {message}" if line else message)


@dataclass
class Parsed:
    docs: list[engine.Doc]
    allocations: list[engine.Alloc]
    sha256: str


def read(stream: IO[bytes], *, name: str = "") -> Parsed:
    """Parse and check a whole file (CSV when ``name`` ends in .csv or the first line looks
    like a header, else JSON Lines). Raises FileError naming the first bad line."""
    raw = stream.read()
    if isinstance(raw, str):
        raw = raw.encode()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileError("the file is not UTF-8 text") from exc
    first = text.lstrip()[:1]
    records = (
        _csv_records(text) if name.lower().endswith(".csv") or (first and first not in "{[") else _json_records(text)
    )
    docs, allocations, where = [], [], {}
    seen: dict[str, int] = {}
    for line, record in records:
        if line > MAX_LINES:
            raise FileError(f"more than {MAX_LINES:,} lines", line)
        if record.get("type") == "allocation":
            allocation = _allocation(record, line)
            key = "allocation:" + allocation.id
            if key in seen:
                raise FileError(f"allocation id {allocation.id!r} is also on line {seen[key]}", line)
            seen[key] = line
            allocations.append(allocation)
            where[id(allocation)] = line
        else:
            doc = _document(record, line)
            if doc.id in seen:
                raise FileError(f"id {doc.id!r} is also on line {seen[doc.id]}", line)
            seen[doc.id] = line
            docs.append(doc)
    _check_allocations(docs, allocations, where)
    return Parsed(docs, allocations, hashlib.sha256(raw).hexdigest())


def _json_records(text: str) -> Iterator[tuple[int, dict]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, parse_float=Decimal, parse_int=Decimal)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise FileError(f"not a JSON object ({getattr(exc, 'msg', 'nested too deep')})", number) from exc
        if not isinstance(record, dict):
            raise FileError("not a JSON object", number)
        yield number, record


def _csv_records(text: str) -> Iterator[tuple[int, dict]]:
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey="\0extra")
    if not reader.fieldnames or "type" not in reader.fieldnames:
        raise FileError("a CSV file needs a header row with a 'type' column", 1)
    unknown = set(reader.fieldnames) - DOCUMENT_FIELDS - ALLOCATION_FIELDS
    if unknown:
        raise FileError(f"unknown column {sorted(unknown)[0]!r}", 1)
    try:
        for row in reader:
            if "\0extra" in row:
                raise FileError("more values than columns", reader.line_num)
            yield reader.line_num, {key: value for key, value in row.items() if value not in ("", None)}
    except csv.Error as exc:
        raise FileError(f"not CSV ({exc})", reader.line_num) from exc


def _text(record: dict, name: str, line: int, *, required: bool = True) -> str:
    value = record.get(name)
    if value is None or value == "":
        if required:
            raise FileError(f"{name!r} is required", line)
        return ""
    if isinstance(value, Decimal) and name in ("id", "from", "to", "number"):
        value = str(value)  # an id written as a bare number
    if not isinstance(value, str):
        raise FileError(f"{name!r} must be text", line)
    value = value.strip()
    if required and not value:
        raise FileError(f"{name!r} is required", line)
    if len(value) > LIMITS.get(name, 200) or "\x00" in value:
        raise FileError(f"{name!r} is longer than {LIMITS.get(name, 200)} characters", line)
    return value


def _date(record: dict, name: str, line: int) -> datetime.date:
    value = _text(record, name, line)
    try:
        if len(value) != 10:
            raise ValueError(value)  # fromisoformat also takes 20260101 and 2026-W01-1
        return datetime.date.fromisoformat(value)
    except ValueError as exc:
        raise FileError(f"{name!r} must be a date YYYY-MM-DD, not {value[:40]!r}", line) from exc


def _amount(record: dict, name: str, line: int, *, places: int = MAX_PLACES) -> Decimal:
    """A decimal: an allocation's amount and a rate more than 0, a total at least 0."""
    value = record.get(name)
    if value is None or value == "":
        raise FileError(f"{name!r} is required", line)
    if isinstance(value, bool) or not isinstance(value, str | Decimal):
        raise FileError(f"{name!r} must be a decimal string", line)
    try:
        amount = Decimal(value.strip()) if isinstance(value, str) else value
    except InvalidOperation as exc:
        raise FileError(f"{name!r} must be a decimal string, not {str(value)[:40]!r}", line) from exc
    if not amount.is_finite():
        raise FileError(f"{name!r} must be a finite number", line)
    if amount.as_tuple().exponent < -places:
        raise FileError(f"{name!r} has more than {places} decimal places", line)
    if abs(amount) >= MAX_AMOUNT:
        raise FileError(f"{name!r} is too large", line)
    strictly = name in ("amount", "rate")
    if amount < 0 or (strictly and amount == 0):
        raise FileError(f"{name!r} must be {'more than' if strictly else 'at least'} 0", line)
    return amount


def _unknown(record: dict, allowed: set[str], line: int) -> None:
    extra = set(record) - allowed
    if extra:
        raise FileError(f"unknown field {sorted(extra)[0]!r}", line)


def _document(record: dict, line: int) -> engine.Doc:
    kind = record.get("type")
    if kind not in engine.KINDS:
        raise FileError(f"'type' must be one of {', '.join((*engine.KINDS, 'allocation'))}", line)
    _unknown(record, DOCUMENT_FIELDS, line)
    currency = _text(record, "currency", line)
    if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
        raise FileError(f"'currency' must be a three-letter code such as GBP, not {currency[:10]!r}", line)
    rate = _amount(record, "rate", line, places=10) if record.get("rate") not in (None, "") else Decimal(1)
    date = _date(record, "date", line)
    due = _date(record, "due_date", line) if kind == engine.INVOICE else None
    if kind != engine.INVOICE and record.get("due_date"):
        raise FileError(f"a {kind} has no 'due_date'", line)
    return engine.Doc(
        kind,
        _text(record, "id", line),
        _text(record, "company", line),
        _text(record, "contact", line),
        date,
        _amount(record, "total", line),
        currency,
        number=_text(record, "number", line, required=kind == engine.INVOICE),
        due_date=due,
        rate=rate,
        contact_id=_text(record, "contact", line),
    )


def _allocation(record: dict, line: int) -> engine.Alloc:
    _unknown(record, ALLOCATION_FIELDS, line)
    return engine.Alloc(
        _text(record, "from", line),
        _text(record, "to", line),
        _amount(record, "amount", line),
        _date(record, "date", line),
        id=_text(record, "id", line),
    )


def _check_allocations(docs: list[engine.Doc], allocations: list[engine.Alloc], where: dict[int, int]) -> None:
    by_id = {doc.id: doc for doc in docs}
    applied: dict[str, Decimal] = defaultdict(Decimal)
    for allocation in allocations:
        line = where[id(allocation)]
        source, invoice = by_id.get(allocation.source), by_id.get(allocation.invoice)
        if source is None or source.is_invoice:
            raise FileError(f"'from' {allocation.source!r} is not a credit note or payment in the file", line)
        if invoice is None or not invoice.is_invoice:
            raise FileError(f"'to' {allocation.invoice!r} is not an invoice in the file", line)
        if (source.company, source.contact, source.currency) != (invoice.company, invoice.contact, invoice.currency):
            raise FileError("an allocation joins documents of one company, contact and currency", line)
        if allocation.date < max(source.date, invoice.date):
            raise FileError("an allocation is dated no earlier than both its documents", line)
        for doc in (source, invoice):
            applied[doc.id] += allocation.amount
            if applied[doc.id] > doc.total:
                raise FileError(f"allocations to or from {doc.id!r} exceed its total of {doc.total}", line)


def import_file(stream: IO[bytes], *, name: str, company=None, user=None) -> DocumentSet:
    """Parse, check and keep a file as a document set, all or nothing."""
    parsed = read(stream, name=name)
    with transaction.atomic():
        document_set = DocumentSet.objects.create(
            name=name[:200] or "upload",
            company=company,
            documents=len(parsed.docs),
            allocations=len(parsed.allocations),
            sha256=parsed.sha256,
            uploaded_by=user,
        )
        for batch in _batches(parsed.docs):
            Document.objects.bulk_create(
                Document(
                    document_set=document_set,
                    kind=doc.kind,
                    external_id=doc.id,
                    company_label=doc.company,
                    contact_id=doc.contact_id,
                    contact_name=doc.contact,
                    number=doc.number,
                    date=doc.date,
                    due_date=doc.due_date,
                    total=doc.total,
                    currency=doc.currency,
                    rate=doc.rate,
                )
                for doc in batch
            )
        for batch in _batches(parsed.allocations):
            Allocation.objects.bulk_create(
                Allocation(
                    document_set=document_set,
                    external_id=allocation.id,
                    source_id=allocation.source,
                    invoice_id=allocation.invoice,
                    amount=allocation.amount,
                    date=allocation.date,
                )
                for allocation in batch
            )
    return document_set


def _batches(items: list) -> Iterable[list]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]
