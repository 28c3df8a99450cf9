"""A fake Xero: a real HTTP server on 127.0.0.1 speaking the subset of Xero's API that the
official xero-python SDK uses for receivables, for tests, the demo and the benchmark.

    with FakeXero() as xero:
        client_id, client_secret = xero.add_app()
        acme = xero.add_tenant("Acme Ltd")
        pupil = acme.add_contact("Bright Pupil")
        invoice = acme.add_invoice(pupil, "120.00", date(2026, 1, 5), due_date=date(2026, 2, 4))
        acme.add_payment(invoice, "20.00", date(2026, 1, 20))
        tokens = xero.issue_tokens(client_id, [acme.tenant_id])
        ...  # point a XeroApp at xero.api_url, xero.identity_url, xero.token_url

What it speaks, as Xero does:
- ``POST /connect/token`` (refresh_token grant): client id and secret in the form or HTTP
  Basic; refresh tokens rotate (the spent one is refused with ``invalid_grant``, after an
  optional grace period); access tokens expire.
- ``GET /connections``: the tenants the bearer token's grant reaches.
- ``GET /api.xro/2.0/{Invoices,CreditNotes,Overpayments,Prepayments,Payments,Contacts,
  Organisation}`` with the ``xero-tenant-id`` header, ``page``/``pageSize`` (≤ 1000, 100 by
  default) with a ``pagination`` object, the ``If-Modified-Since`` header (records updated
  at or after it), and ``where`` filters: comparisons (``== != < <= > >=``) of fields with
  strings, numbers, ``true``/``false``, ``DateTime(y, m, d)`` and ``Guid("…")``, joined by
  ``AND``/``&&``, ``OR``/``||``, ``NOT`` and parentheses. Dates are ``/Date(ms+0000)/``.
- 401 for an unknown or expired token, 403 for a tenant the grant does not reach.

On demand: 429 with ``Retry-After`` and ``X-Rate-Limit-Problem``, 5xx, slow answers,
malformed JSON, a dead tenant; and, when ``limits`` are given, Xero's own limits enforced
(per tenant calls a minute, at once and a day; per app calls a minute), answered with 429.
Every call is recorded (``calls``) so tests can assert what was asked.

``python -m tests.fakes.xero_server --tenants 3 --documents 500`` serves demo data and
prints the URLs and a refresh token for ``manage.py xero_connect``.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import math
import random
import re
import secrets
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

API_PATH = "/api.xro/2.0"
TOKEN_PATH = "/connect/token"
DEFAULT_SCOPES = [
    "openid",
    "profile",
    "email",
    "offline_access",
    "accounting.transactions.read",
    "accounting.contacts.read",
    "accounting.settings.read",
]
ACCESS_TOKEN_SECONDS = 1800
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
ZERO = Decimal(0)
ONE = Decimal(1)
UTC = datetime.UTC

# What each accounting endpoint lists: the record kind, the collection's key, its id field.
ENDPOINTS = {
    "invoices": ("invoice", "Invoices", "InvoiceID"),
    "creditnotes": ("credit_note", "CreditNotes", "CreditNoteID"),
    "overpayments": ("overpayment", "Overpayments", "OverpaymentID"),
    "prepayments": ("prepayment", "Prepayments", "PrepaymentID"),
    "payments": ("payment", "Payments", "PaymentID"),
    "contacts": ("contact", "Contacts", "ContactID"),
}
CREDIT_KINDS = ("credit_note", "overpayment", "prepayment")
REFUND_TYPES = {
    "credit_note": "ARCREDITPAYMENT",
    "overpayment": "AROVERPAYMENTPAYMENT",
    "prepayment": "ARPREPAYMENTPAYMENT",
}
DEFAULT_TYPES = {
    "invoice": "ACCREC",
    "credit_note": "ACCRECCREDIT",
    "overpayment": "RECEIVE-OVERPAYMENT",
    "prepayment": "RECEIVE-PREPAYMENT",
}
SETTLED_STATUSES = ("AUTHORISED", "PAID")  # what payments and allocations move between


# --- Xero's JSON ---------------------------------------------------------------------------


def ms_of(moment: datetime.datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("use an aware datetime (Xero's timestamps are UTC)")
    return round(moment.timestamp() * 1000)


def ms_date(day: datetime.date | None) -> str | None:
    """A date as Xero writes it: midnight UTC in milliseconds, ``/Date(1706572800000+0000)/``."""
    if day is None:
        return None
    return f"/Date({ms_of(datetime.datetime(day.year, day.month, day.day, tzinfo=UTC))}+0000)/"


def ms_datetime(ms: int) -> str:
    return f"/Date({ms}+0000)/"


def date_string(day: datetime.date | None) -> str | None:
    return None if day is None else f"{day.isoformat()}T00:00:00"


_DECIMAL = re.compile(r'"\\u0000(-?\d+(?:\.\d+)?)"')


def dumps(value) -> bytes:
    """JSON with Decimals written as exact numbers (``120.00``), never through a float."""

    def mark(obj):
        if isinstance(obj, Decimal):
            return f"\x00{obj:f}"
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

    return _DECIMAL.sub(r"\1", json.dumps(value, default=mark, separators=(",", ":"))).encode()


def money(value) -> Decimal:
    amount = Decimal(str(value))
    return amount.quantize(Decimal("0.01")) if amount.as_tuple().exponent > -2 else amount


# --- The data --------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class Allocation:
    id: str
    invoice: str
    amount: Decimal
    date: datetime.date


@dataclass(slots=True, eq=False)
class Record:
    """One invoice, credit note, overpayment, prepayment, payment or contact. A payment's
    ``target`` is the invoice it pays, or the credit a refund pays out."""

    kind: str
    id: str
    type: str
    status: str
    updated: int  # UpdatedDateUTC, ms
    contact: str = ""
    number: str = ""
    reference: str = ""
    date: datetime.date | None = None
    due_date: datetime.date | None = None
    total: Decimal = ZERO
    currency: str = ""
    rate: Decimal = ONE
    allocations: list[Allocation] | None = None
    target: str = ""
    name: str = ""
    email: str = ""


class Tenant:
    """One organisation's data. Adding, changing, paying or allocating stamps the records
    it touches with the server's clock (or ``updated=``), as Xero's UpdatedDateUTC."""

    def __init__(self, server: FakeXero, tenant_id: str, name: str, base_currency: str) -> None:
        self.server = server
        self.tenant_id = tenant_id
        self.name = name
        self.base_currency = base_currency
        self.records: dict[str, dict[str, Record]] = {kind: {} for kind, _, _ in ENDPOINTS.values()}
        self.by_id: dict[str, Record] = {}
        self.applied_to: dict[str, Decimal] = defaultdict(Decimal)  # invoice id → paid or credited
        self.paid: dict[str, Decimal] = defaultdict(Decimal)  # invoice id → by payments
        self.applied_from: dict[str, Decimal] = defaultdict(Decimal)  # credit id → allocated or refunded
        self._numbers: dict[str, int] = defaultdict(int)

    # Adding
    def add_contact(self, name: str, *, email: str = "", contact_id: str | None = None, updated=None) -> str:
        record = Record("contact", contact_id or _uuid(), "", "ACTIVE", self._stamp(updated), name=name, email=email)
        return self._add(record)

    def add_invoice(
        self,
        contact: str,
        total,
        date: datetime.date,
        *,
        due_date: datetime.date | None = None,
        number: str | None = None,
        status: str = "AUTHORISED",
        currency: str | None = None,
        rate="1",
        type: str = "ACCREC",
        invoice_id: str | None = None,
        reference: str = "",
        updated=None,
    ) -> str:
        record = Record(
            "invoice",
            invoice_id or _uuid(),
            type,
            status,
            self._stamp(updated),
            contact=self._contact(contact),
            number=number if number is not None else self._number("INV"),
            reference=reference,
            date=date,
            due_date=due_date or date,
            total=money(total),
            currency=currency or self.base_currency,
            rate=Decimal(str(rate)),
        )
        return self._add(record)

    def add_credit_note(self, contact: str, total, date: datetime.date, **options) -> str:
        return self._add_credit("credit_note", contact, total, date, number_prefix="CN", **options)

    def add_overpayment(self, contact: str, total, date: datetime.date, **options) -> str:
        return self._add_credit("overpayment", contact, total, date, **options)

    def add_prepayment(self, contact: str, total, date: datetime.date, **options) -> str:
        return self._add_credit("prepayment", contact, total, date, **options)

    def add_payment(
        self,
        invoice: str,
        amount,
        date: datetime.date,
        *,
        rate=None,
        reference: str = "",
        payment_id: str | None = None,
        updated=None,
    ) -> str:
        """A payment received against an invoice (ACCRECPAYMENT)."""
        target = self.by_id[invoice]
        return self._add_payment("ACCRECPAYMENT", target, amount, date, rate, reference, payment_id, updated)

    def add_refund(
        self,
        credit: str,
        amount,
        date: datetime.date,
        *,
        rate=None,
        reference: str = "",
        payment_id: str | None = None,
        updated=None,
    ) -> str:
        """Cash paid back out of a credit note, overpayment or prepayment."""
        target = self.by_id[credit]
        return self._add_payment(REFUND_TYPES[target.kind], target, amount, date, rate, reference, payment_id, updated)

    def allocate(
        self,
        credit: str,
        invoice: str,
        amount,
        date: datetime.date,
        *,
        allocation_id: str | None = None,
        updated=None,
    ) -> str:
        """Apply part of a credit note, overpayment or prepayment to an invoice."""
        with self.server.lock:
            source, target = self.by_id[credit], self.by_id[invoice]
            allocation = Allocation(allocation_id or _uuid(), target.id, money(amount), date)
            source.allocations.append(allocation)
            stamp = self._stamp(updated)
            self._link(source, target, allocation.amount, stamp, paid=False)
            return allocation.id

    # Changing
    def update(self, record_id: str, *, updated=None, **changes) -> None:
        """Change fields (``status``, ``total``, ``date``, ``due_date``, ``number``, ``name``,
        ``email``, ``currency``, ``rate``, ``reference``, ``contact``) and stamp the record."""
        with self.server.lock:
            record = self.by_id[record_id]
            stamp = self._stamp(updated)
            status = changes.get("status")
            if status and status not in SETTLED_STATUSES and record.status in SETTLED_STATUSES:
                self._unlink(record, stamp)
            for name, value in changes.items():
                if not hasattr(record, name) or name in ("kind", "id", "allocations", "updated"):
                    raise ValueError(f"a fake Xero record has no changeable field {name!r}")
                if name == "total":
                    value = money(value)
                elif name == "rate":
                    value = Decimal(str(value))
                setattr(record, name, value)
            record.updated = stamp

    def void(self, record_id: str, *, updated=None) -> None:
        kind = self.by_id[record_id].kind
        self.update(record_id, status="DELETED" if kind == "payment" else "VOIDED", updated=updated)

    def delete(self, record_id: str, *, updated=None) -> None:
        self.update(record_id, status="DELETED", updated=updated)

    def populate(self, documents: int, *, seed: int = 1, contacts: int | None = None, start=None) -> dict[str, int]:
        """``documents`` records in a realistic mix, fast (the benchmark's 76 tenants of 5,000): about
        60% invoices, 25% payments, 7% credit notes, 4% overpayments and 4% prepayments, the
        credits partly allocated, over the 400 days before ``start`` (today by default).
        Returns how many of each kind it added."""
        rng = random.Random(seed)
        start = start or datetime.datetime.now(UTC).date()
        made: dict[str, int] = defaultdict(int)
        people = [
            self.add_contact(f"Customer {n:05d}", contact_id=_uuid(rng))
            for n in range(contacts or max(1, documents // 20))
        ]
        made["contact"] = len(people)
        open_invoices: list[str] = []
        for _ in range(documents):
            roll = rng.random()
            day = start - datetime.timedelta(days=rng.randrange(400))
            amount = Decimal(rng.randrange(1_000, 500_000)) / 100
            if roll < 0.60 or not open_invoices:
                invoice = self.add_invoice(
                    rng.choice(people), amount, day, due_date=day + datetime.timedelta(days=30), invoice_id=_uuid(rng)
                )
                open_invoices.append(invoice)
                made["invoice"] += 1
                continue
            invoice = open_invoices[rng.randrange(len(open_invoices))]
            target = self.by_id[invoice]
            room = target.total - self.applied_to[invoice]
            when = max(day, target.date)
            if roll < 0.85 and room > 0:
                self.add_payment(invoice, min(room, amount), when, payment_id=_uuid(rng))
                made["payment"] += 1
                continue
            kind = "credit_note" if roll < 0.92 else "overpayment" if roll < 0.96 else "prepayment"
            prefix = "CN" if kind == "credit_note" else ""
            credit = self._add_credit(kind, target.contact, amount, day, credit_id=_uuid(rng), number_prefix=prefix)
            made[kind] += 1
            if room > 0 and rng.random() < 0.7:
                self.allocate(credit, invoice, min(room, amount), max(day, target.date), allocation_id=_uuid(rng))
        return dict(made)

    # Internals
    def _add_credit(
        self,
        kind: str,
        contact: str,
        total,
        date: datetime.date,
        *,
        number: str | None = None,
        number_prefix: str = "",
        status: str = "AUTHORISED",
        currency: str | None = None,
        rate="1",
        type: str | None = None,
        credit_id: str | None = None,
        reference: str = "",
        allocations: Iterable[tuple] = (),
        updated=None,
    ) -> str:
        record = Record(
            kind,
            credit_id or _uuid(),
            type or DEFAULT_TYPES[kind],
            status,
            self._stamp(updated),
            contact=self._contact(contact),
            number=number if number is not None else (self._number(number_prefix) if number_prefix else ""),
            reference=reference,
            date=date,
            total=money(total),
            currency=currency or self.base_currency,
            rate=Decimal(str(rate)),
            allocations=[],
        )
        self._add(record)
        for allocation in allocations:
            invoice, amount, day, *rest = allocation
            self.allocate(record.id, invoice, amount, day, allocation_id=rest[0] if rest else None, updated=updated)
        return record.id

    def _add_payment(self, payment_type, target, amount, date, rate, reference, payment_id, updated) -> str:
        with self.server.lock:
            record = Record(
                "payment",
                payment_id or _uuid(),
                payment_type,
                "AUTHORISED",
                self._stamp(updated),
                contact=target.contact,
                reference=reference,
                date=date,
                total=money(amount),
                currency=target.currency,
                rate=Decimal(str(rate)) if rate is not None else target.rate,
                target=target.id,
            )
            self._add(record)
            if payment_type == "ACCRECPAYMENT":
                self._link(record, target, record.total, record.updated, paid=True)
            else:
                self._link(target, None, record.total, record.updated, paid=False)
            return record.id

    def _add(self, record: Record) -> str:
        with self.server.lock:
            if record.id in self.by_id:
                raise ValueError(f"{record.id} exists")
            self.records[record.kind][record.id] = record
            self.by_id[record.id] = record
            return record.id

    def _link(self, source: Record, invoice: Record | None, amount: Decimal, stamp: int, *, paid: bool) -> None:
        """Count ``amount`` from a payment or credit against an invoice (none: a refund),
        moving each between AUTHORISED and PAID as Xero does."""
        if source.kind != "payment":
            self.applied_from[source.id] += amount
            self._settle(source, self.applied_from[source.id], stamp)
        if invoice is not None:
            self.applied_to[invoice.id] += amount
            if paid:
                self.paid[invoice.id] += amount
            self._settle(invoice, self.applied_to[invoice.id], stamp)

    def _unlink(self, record: Record, stamp: int) -> None:
        """A payment deleted or a credit voided gives back what it applied."""
        if record.kind == "payment":
            target = self.by_id[record.target]
            if record.type == "ACCRECPAYMENT":
                self.applied_to[target.id] -= record.total
                self.paid[target.id] -= record.total
                self._settle(target, self.applied_to[target.id], stamp)
            else:
                self.applied_from[target.id] -= record.total
                self._settle(target, self.applied_from[target.id], stamp)
        elif record.kind in CREDIT_KINDS:
            for allocation in record.allocations:
                self.applied_to[allocation.invoice] -= allocation.amount
                self._settle(self.by_id[allocation.invoice], self.applied_to[allocation.invoice], stamp)
            self.applied_from[record.id] = ZERO

    @staticmethod
    def _settle(record: Record, applied: Decimal, stamp: int) -> None:
        if record.status not in SETTLED_STATUSES:
            return
        status = "PAID" if applied >= record.total else "AUTHORISED"
        record.updated = max(record.updated, stamp)
        record.status = status

    def _contact(self, contact: str) -> str:
        if contact not in self.records["contact"]:
            raise ValueError(f"add the contact first: {contact!r} is not one of this tenant's contacts")
        return contact

    def _number(self, prefix: str) -> str:
        self._numbers[prefix] += 1
        return f"{prefix}-{self._numbers[prefix]:05d}"

    def _stamp(self, updated) -> int:
        if updated is None:
            return int(self.server.clock() * 1000)
        return ms_of(updated) if isinstance(updated, datetime.datetime) else int(updated)


def _uuid(rng: random.Random | None = None) -> str:
    if rng is None:
        return str(uuid.uuid4())
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# --- Rendering ----------------------------------------------------------------------------------


def _contact_ref(tenant: Tenant, contact_id: str) -> dict:
    contact = tenant.records["contact"].get(contact_id)
    return {"ContactID": contact_id, "Name": contact.name if contact else ""}


def _render(tenant: Tenant, record: Record) -> dict:
    if record.kind == "contact":
        return {
            "ContactID": record.id,
            "ContactStatus": record.status,
            "Name": record.name,
            "EmailAddress": record.email,
            "IsCustomer": True,
            "IsSupplier": False,
            "UpdatedDateUTC": ms_datetime(record.updated),
            "HasAttachments": False,
            "HasValidationErrors": False,
        }
    if record.kind == "payment":
        return _render_payment(tenant, record)
    common = {
        "Type": record.type,
        "Contact": _contact_ref(tenant, record.contact),
        "Date": ms_date(record.date),
        "DateString": date_string(record.date),
        "Status": record.status,
        "LineAmountTypes": "Exclusive",
        "LineItems": [],
        "SubTotal": record.total,
        "TotalTax": Decimal("0.00"),
        "Total": record.total,
        "UpdatedDateUTC": ms_datetime(record.updated),
        "CurrencyCode": record.currency,
        "CurrencyRate": record.rate,
        "HasAttachments": False,
    }
    if record.kind == "invoice":
        applied = tenant.applied_to.get(record.id, ZERO)
        paid = tenant.paid.get(record.id, ZERO)
        return {
            **common,
            "InvoiceID": record.id,
            "InvoiceNumber": record.number,
            "Reference": record.reference,
            "DueDate": ms_date(record.due_date),
            "DueDateString": date_string(record.due_date),
            "AmountDue": record.total - applied,
            "AmountPaid": paid,
            "AmountCredited": applied - paid,
            "IsDiscounted": False,
            "HasErrors": False,
        }
    ids = {"credit_note": "CreditNoteID", "overpayment": "OverpaymentID", "prepayment": "PrepaymentID"}
    rendered = {
        **common,
        ids[record.kind]: record.id,
        "Reference": record.reference,
        "RemainingCredit": record.total - tenant.applied_from.get(record.id, ZERO),
        "Allocations": [
            {
                "AllocationID": allocation.id,
                "Amount": allocation.amount,
                "Date": ms_date(allocation.date),
                "Invoice": {"InvoiceID": allocation.invoice, "InvoiceNumber": tenant.by_id[allocation.invoice].number},
                "IsDeleted": False,
            }
            for allocation in record.allocations
        ],
    }
    if record.kind == "credit_note":
        rendered["CreditNoteNumber"] = record.number
    return rendered


def _render_payment(tenant: Tenant, record: Record) -> dict:
    target = tenant.by_id[record.target]
    rendered = {
        "PaymentID": record.id,
        "Date": ms_date(record.date),
        "BankAmount": record.total,
        "Amount": record.total,
        "Reference": record.reference,
        "CurrencyRate": record.rate,
        "PaymentType": record.type,
        "Status": record.status,
        "UpdatedDateUTC": ms_datetime(record.updated),
        "HasAccount": True,
        "IsReconciled": False,
        "HasValidationErrors": False,
        "Account": {"AccountID": "00000000-0000-0000-0000-000000000090", "Code": "090"},
    }
    reference = {"Type": target.type, "Contact": _contact_ref(tenant, target.contact), "CurrencyCode": target.currency}
    if target.kind == "invoice":
        rendered["Invoice"] = {**reference, "InvoiceID": target.id, "InvoiceNumber": target.number}
    elif target.kind == "credit_note":
        rendered["CreditNote"] = {**reference, "CreditNoteID": target.id, "CreditNoteNumber": target.number}
    elif target.kind == "overpayment":
        rendered["Overpayment"] = {**reference, "OverpaymentID": target.id}
    else:
        rendered["Prepayment"] = {**reference, "PrepaymentID": target.id}
    return rendered


# --- The where filter ----------------------------------------------------------------------------


class QueryError(ValueError):
    """A where filter outside the subset this fake parses (Xero answers 400)."""


_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>==|!=|>=|<=|&&|\|\||[()<>,])|(?P<number>-?\d+(?:\.\d+)?)'
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"
)


def _fields(tenant: Tenant) -> dict[str, Callable[[Record], object]]:
    contact_name = lambda r: _contact_ref(tenant, r.contact)["Name"]  # noqa: E731
    return {
        "type": lambda r: r.type,
        "paymenttype": lambda r: r.type,
        "status": lambda r: r.status,
        "contactstatus": lambda r: r.status,
        "contact.contactid": lambda r: r.contact,
        "contact.name": contact_name,
        "name": lambda r: r.name,
        "emailaddress": lambda r: r.email,
        "iscustomer": lambda r: True,
        "date": lambda r: r.date,
        "duedate": lambda r: r.due_date,
        "invoicenumber": lambda r: r.number,
        "creditnotenumber": lambda r: r.number,
        "reference": lambda r: r.reference,
        "total": lambda r: r.total,
        "amount": lambda r: r.total,
        "currencycode": lambda r: r.currency,
        "invoiceid": lambda r: r.id,
        "creditnoteid": lambda r: r.id,
        "overpaymentid": lambda r: r.id,
        "prepaymentid": lambda r: r.id,
        "paymentid": lambda r: r.id,
        "contactid": lambda r: r.id if r.kind == "contact" else r.contact,
        "invoice.invoiceid": lambda r: r.target,
    }


def parse_where(text: str, tenant: Tenant) -> Callable[[Record], bool]:
    """A predicate for Xero's ``where`` parameter, in the subset the module docstring lists."""
    tokens, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise QueryError(f"cannot parse the where filter at {text[position : position + 20]!r}")
        position = match.end()
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
    fields = _fields(tenant)
    parser = _Parser(tokens, fields)
    predicate = parser.or_expression()
    if parser.position != len(tokens):
        raise QueryError(f"unexpected {tokens[parser.position][1]!r} in the where filter")
    return predicate


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], fields: dict) -> None:
        self.tokens, self.position, self.fields = tokens, 0, fields

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise QueryError("the where filter ends too soon")
        self.position += 1
        return token

    def accept(self, *values: str) -> bool:
        token = self.peek()
        if token and token[1].upper() in values:
            self.position += 1
            return True
        return False

    def or_expression(self):
        parts = [self.and_expression()]
        while self.accept("OR", "||"):
            parts.append(self.and_expression())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def and_expression(self):
        parts = [self.unary()]
        while self.accept("AND", "&&"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def unary(self):
        if self.accept("NOT"):
            inner = self.unary()
            return lambda r: not inner(r)
        if self.accept("("):
            inner = self.or_expression()
            if not self.accept(")"):
                raise QueryError("a parenthesis is not closed in the where filter")
            return inner
        return self.comparison()

    def comparison(self):
        kind, name = self.take()
        getter = self.fields.get(name.lower()) if kind == "word" else None
        if getter is None:
            raise QueryError(f"the fake Xero cannot filter on {name!r}")
        token = self.peek()
        if token is None or token[1] not in ("==", "!=", "<", "<=", ">", ">="):
            return lambda r: bool(getter(r))
        operator = self.take()[1]
        value = self.value()
        compare = {
            "==": lambda a, b: a == b,
            "!=": lambda a, b: a != b,
            "<": lambda a, b: a is not None and a < b,
            "<=": lambda a, b: a is not None and a <= b,
            ">": lambda a, b: a is not None and a > b,
            ">=": lambda a, b: a is not None and a >= b,
        }[operator]
        return lambda r: compare(getter(r), value)

    def value(self):
        kind, text = self.take()
        if kind == "string":
            return json.loads(text)
        if kind == "number":
            return Decimal(text)
        word = text.lower()
        if word in ("true", "false"):
            return word == "true"
        if word == "null":
            return None
        if word in ("datetime", "guid"):
            if not self.accept("("):
                raise QueryError(f"{text} needs arguments")
            arguments = [self.value()]
            while self.accept(","):
                arguments.append(self.value())
            if not self.accept(")"):
                raise QueryError(f"{text}( is not closed")
            if word == "guid":
                return str(arguments[0])
            return datetime.date(*(int(a) for a in arguments[:3]))
        raise QueryError(f"unexpected {text!r} in the where filter")


# --- Limits and faults ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """Xero's limits, as the fake enforces them when asked to."""

    per_minute: int = 60
    concurrent: int = 5
    per_day: int = 5000
    app_per_minute: int = 10_000


@dataclass
class Fault:
    """What to do instead of (or before) answering, for the next ``times`` matching calls
    (None: every one). ``path`` matches a part of the path, case-insensitively."""

    status: int | None = None  # answer this status instead
    retry_after: int | None = None  # with 429
    problem: str = "minute"  # X-Rate-Limit-Problem with 429
    delay: float = 0.0  # seconds before answering (slow answers)
    malformed: bool = False  # answer 200 with broken JSON
    times: int | None = 1
    tenant: str | None = None
    path: str | None = None

    def matches(self, path: str, tenant: str | None) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.tenant is not None and self.tenant != tenant:
            return False
        return self.path is None or self.path.lower() in path.lower()


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    tenant: str | None
    params: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    status: int
    started: float  # the server's clock
    finished: float


@dataclass
class Tokens:
    access_token: str
    refresh_token: str
    expires_at: float  # the server's clock
    scopes: list[str]

    @property
    def expires_at_datetime(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.expires_at, UTC)


@dataclass
class _Grant:
    client_id: str
    tenants: list[str]
    scopes: list[str]
    refresh_token: str
    previous: str | None = None
    rotated_at: float = 0.0
    revoked: bool = False


@dataclass
class _Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


# --- The server -----------------------------------------------------------------------------------


class FakeXero:
    """The fake server. ``start()``/``stop()`` or a ``with`` block; URLs once started.

    ``clock`` (seconds, like ``time.time``) stamps records and times tokens and limits;
    ``limits`` (a ``Limits``) makes it enforce Xero's limits; ``refresh_grace`` lets a spent
    refresh token be used again for that many seconds, as Xero allows for 30 minutes."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        limits: Limits | None = None,
        access_token_seconds: int = ACCESS_TOKEN_SECONDS,
        refresh_grace: float = 0.0,
    ) -> None:
        self.host, self.port = host, port
        self.clock = clock
        self.limits = limits
        self.access_token_seconds = access_token_seconds
        self.refresh_grace = refresh_grace
        self.lock = threading.RLock()
        self.tenants: dict[str, Tenant] = {}
        self.apps: dict[str, str] = {}
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.dead: dict[str, int] = {}
        self.limit_hits: list[tuple[str, str]] = []  # (tenant or app, problem) of each 429 the limits caused
        self._grants: list[_Grant] = []
        self._refresh: dict[str, _Grant] = {}
        self._access: dict[str, tuple[_Grant, float]] = {}
        self._in_flight: dict[str, int] = defaultdict(int)
        self._max_in_flight: dict[str, int] = defaultdict(int)
        self._minute: dict[str, deque] = defaultdict(deque)
        self._day: dict[str, deque] = defaultdict(deque)
        self._app_minute: dict[str, deque] = defaultdict(deque)
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle
    def start(self) -> FakeXero:
        httpd = _Server((self.host, self.port), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), name="fake-xero", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeXero:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return self.url + API_PATH

    @property
    def identity_url(self) -> str:
        return self.url

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH

    # Apps, grants, tokens
    def add_app(self, client_id: str | None = None, client_secret: str | None = None) -> tuple[str, str]:
        client_id = client_id or secrets.token_hex(16).upper()
        client_secret = client_secret or secrets.token_urlsafe(36)
        with self.lock:
            self.apps[client_id] = client_secret
        return client_id, client_secret

    def issue_tokens(self, client_id: str, tenants: Iterable[str], *, scopes: list[str] | None = None) -> Tokens:
        """A grant of ``client_id`` reaching ``tenants``, as the authorisation flow leaves one."""
        with self.lock:
            if client_id not in self.apps:
                raise ValueError(f"add_app({client_id!r}) first")
            grant = _Grant(client_id, list(tenants), list(scopes or DEFAULT_SCOPES), secrets.token_urlsafe(32))
            self._grants.append(grant)
            self._refresh[grant.refresh_token] = grant
            return self._access_token(grant, grant.refresh_token)

    def grant_tenant(self, refresh_token: str, tenant_id: str) -> None:
        """Connect one more organisation to an existing grant."""
        with self.lock:
            self._refresh[refresh_token].tenants.append(tenant_id)

    def expire_access_tokens(self) -> None:
        with self.lock:
            self._access = {token: (grant, 0.0) for token, (grant, _) in self._access.items()}

    def revoke(self, refresh_token: str) -> None:
        """The user disconnected the app: the grant's tokens stop working."""
        with self.lock:
            grant = self._refresh.get(refresh_token)
            if grant is not None:
                grant.revoked = True
                self._refresh = {token: g for token, g in self._refresh.items() if g is not grant}

    # Data
    def add_tenant(self, name: str, *, tenant_id: str | None = None, base_currency: str = "GBP") -> Tenant:
        tenant = Tenant(self, tenant_id or _uuid(), name, base_currency)
        with self.lock:
            self.tenants[tenant.tenant_id] = tenant
        return tenant

    # Faults
    def inject(self, fault: Fault) -> Fault:
        with self.lock:
            self.faults.append(fault)
        return fault

    def fail(self, status: int = 500, *, times: int | None = 1, tenant: str | None = None, path: str | None = None):
        return self.inject(Fault(status=status, times=times, tenant=tenant, path=path))

    def rate_limit(
        self, retry_after: int = 1, *, problem: str = "minute", times: int | None = 1, tenant=None, path=None
    ):
        return self.inject(
            Fault(status=429, retry_after=retry_after, problem=problem, times=times, tenant=tenant, path=path)
        )

    def slow(self, seconds: float, *, times: int | None = None, tenant: str | None = None, path: str | None = None):
        return self.inject(Fault(delay=seconds, times=times, tenant=tenant, path=path))

    def malformed(self, *, times: int | None = 1, tenant: str | None = None, path: str | None = None):
        return self.inject(Fault(malformed=True, times=times, tenant=tenant, path=path))

    def kill_tenant(self, tenant_id: str, status: int = 500) -> None:
        """Every call for this tenant answers ``status`` (500, or 403 for a disconnected one)."""
        with self.lock:
            self.dead[tenant_id] = status

    def revive_tenant(self, tenant_id: str) -> None:
        with self.lock:
            self.dead.pop(tenant_id, None)

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()
            self.dead.clear()

    # What happened
    def calls_to(
        self, endpoint: str | None = None, *, tenant: str | None = None, method: str | None = None
    ) -> list[Call]:
        """Recorded calls, optionally to paths containing ``endpoint`` (case-insensitive)."""
        with self.lock:
            calls = list(self.calls)
        return [
            call
            for call in calls
            if (endpoint is None or endpoint.lower() in call.path.lower())
            and (tenant is None or call.tenant == tenant)
            and (method is None or call.method == method)
        ]

    def max_in_flight(self, tenant_id: str) -> int:
        return self._max_in_flight[tenant_id]

    def reset_calls(self) -> None:
        with self.lock:
            self.calls.clear()
            self.limit_hits.clear()
            self._max_in_flight.clear()

    # --- Answering -----------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[_Answer, Callable]:
        """The answer to one request, and what to run once it is sent (release its slot)."""
        parts = urlsplit(raw_path)
        path = parts.path.rstrip("/") or "/"
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        lowered = path.lower()
        done = lambda: None  # noqa: E731
        tenant_id = headers.get("xero-tenant-id")
        if method == "POST" and lowered == TOKEN_PATH:
            return self._token(headers, body), done
        if method != "GET":
            return _error(405, "Method Not Allowed", f"{method} is not supported here"), done
        if lowered == "/connections":
            grant = self._bearer(headers)
            if isinstance(grant, _Answer):
                return grant, done
            return self._connections(grant), done
        if not lowered.startswith(API_PATH.lower() + "/"):
            return _error(404, "Not Found", f"no such resource {path}"), done
        grant = self._bearer(headers)
        if isinstance(grant, _Answer):
            return grant, done
        if not tenant_id:
            return _error(400, "Bad Request", "the xero-tenant-id header is missing"), done
        with self.lock:
            if tenant_id not in grant.tenants or tenant_id not in self.tenants:
                return _error(403, "Forbidden", "AuthenticationUnsuccessful"), done
            if tenant_id in self.dead:
                status = self.dead[tenant_id]
                return _error(
                    status, "Forbidden" if status == 403 else "Internal Server Error", "the organisation is unavailable"
                ), done
            fault = next((f for f in self.faults if f.matches(path, tenant_id)), None)
            if fault is not None and fault.times is not None:
                fault.times -= 1
            limited = self._enforce(tenant_id, grant.client_id)
            if limited is not None:
                return limited, done
            self._in_flight[tenant_id] += 1
            self._max_in_flight[tenant_id] = max(self._max_in_flight[tenant_id], self._in_flight[tenant_id])

        def release() -> None:
            with self.lock:
                self._in_flight[tenant_id] -= 1

        try:
            if fault is not None and fault.delay:
                time.sleep(fault.delay)
            if fault is not None and fault.status == 429:
                retry = str(fault.retry_after or 1)
                return _Answer(429, b"", {"Retry-After": retry, "X-Rate-Limit-Problem": fault.problem}), release
            if fault is not None and fault.status:
                return _error(fault.status, "Injected failure", f"the fake answered {fault.status} on demand"), release
            if fault is not None and fault.malformed:
                return _Answer(200, b'{"Id":"broken","Status":"OK","Invoices":[{"InvoiceID":', _JSON), release
            return self._accounting(lowered[len(API_PATH) + 1 :], tenant_id, params, headers), release
        except Exception:
            release()
            raise

    def _token(self, headers: dict[str, str], body: bytes) -> _Answer:
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        authorization = headers.get("authorization", "")
        if authorization.lower().startswith("basic "):
            try:
                client_id, _, client_secret = base64.b64decode(authorization[6:]).decode().partition(":")
            except ValueError:
                return _oauth_error(401, "invalid_client")
        with self.lock:
            if not client_id or self.apps.get(client_id) != client_secret:
                return _oauth_error(401, "invalid_client")
            if form.get("grant_type") != "refresh_token":
                return _oauth_error(400, "unsupported_grant_type")
            spent = form.get("refresh_token", "")
            grant = self._refresh.get(spent)
            if grant is None or grant.client_id != client_id:
                return _oauth_error(400, "invalid_grant")
            now = self.clock()
            if spent != grant.refresh_token and not (
                spent == grant.previous and now - grant.rotated_at <= self.refresh_grace
            ):
                return _oauth_error(400, "invalid_grant")
            if spent == grant.refresh_token:
                grant.previous, grant.rotated_at = grant.refresh_token, now
                grant.refresh_token = secrets.token_urlsafe(32)
                self._refresh[grant.refresh_token] = grant
            tokens = self._access_token(grant, grant.refresh_token)
        return _Answer(
            200,
            dumps(
                {
                    "id_token": secrets.token_urlsafe(24),
                    "access_token": tokens.access_token,
                    "expires_in": self.access_token_seconds,
                    "token_type": "Bearer",
                    "refresh_token": tokens.refresh_token,
                    "scope": " ".join(grant.scopes),
                }
            ),
            _JSON,
        )

    def _access_token(self, grant: _Grant, refresh_token: str) -> Tokens:
        access = secrets.token_urlsafe(32)
        expires_at = self.clock() + self.access_token_seconds
        self._access[access] = (grant, expires_at)
        return Tokens(access, refresh_token, expires_at, list(grant.scopes))

    def _bearer(self, headers: dict[str, str]) -> _Grant | _Answer:
        authorization = headers.get("authorization", "")
        token = authorization[7:] if authorization.lower().startswith("bearer ") else ""
        with self.lock:
            found = self._access.get(token)
            if found is None:
                return _unauthorised("the access token is not one this server issued")
            grant, expires_at = found
            if expires_at <= self.clock():
                return _unauthorised("TokenExpired: the access token has expired")
            if grant.revoked:
                return _unauthorised("the grant was revoked")
            return grant

    def _connections(self, grant: _Grant) -> _Answer:
        stamp = datetime.datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
        with self.lock:
            listed = [
                {
                    "id": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{grant.refresh_token}:{tenant_id}")),
                    "authEventId": str(uuid.uuid5(uuid.NAMESPACE_OID, grant.client_id)),
                    "tenantId": tenant_id,
                    "tenantType": "ORGANISATION",
                    "tenantName": self.tenants[tenant_id].name if tenant_id in self.tenants else "",
                    "createdDateUtc": stamp,
                    "updatedDateUtc": stamp,
                }
                for tenant_id in grant.tenants
            ]
        return _Answer(200, dumps(listed), _JSON)

    def _enforce(self, tenant_id: str, client_id: str) -> _Answer | None:
        """Xero's limits (under the lock): a 429 naming the limit, or None to go ahead."""
        if self.limits is None:
            return None
        now = self.clock()
        limits = self.limits
        windows = [
            (self._minute[tenant_id], 60.0, limits.per_minute, "minute", tenant_id),
            (self._day[tenant_id], 86_400.0, limits.per_day, "day", tenant_id),
            (self._app_minute[client_id], 60.0, limits.app_per_minute, "appminute", client_id),
        ]
        for calls, window, _, _, _ in windows:
            while calls and calls[0] <= now - window:
                calls.popleft()
        if self._in_flight[tenant_id] >= limits.concurrent:
            self.limit_hits.append((tenant_id, "concurrent"))
            return _Answer(429, b"", {"Retry-After": "1", "X-Rate-Limit-Problem": "concurrent"})
        for calls, window, limit, problem, who in windows:
            if len(calls) >= limit:
                self.limit_hits.append((who, problem))
                wait = max(1, math.ceil(calls[len(calls) - limit] + window - now))
                return _Answer(429, b"", {"Retry-After": str(wait), "X-Rate-Limit-Problem": problem})
        for calls, *_ in windows:
            calls.append(now)
        return None

    def _accounting(self, resource: str, tenant_id: str, params: dict[str, str], headers: dict[str, str]) -> _Answer:
        with self.lock:
            tenant = self.tenants[tenant_id]
            if resource == "organisation":
                return _Answer(200, dumps(self._envelope({"Organisations": [self._organisation(tenant)]})), _JSON)
            if resource not in ENDPOINTS:
                return _error(404, "Not Found", f"no such resource {resource}")
            kind, key, _ = ENDPOINTS[resource]
            try:
                since = _modified_since(headers.get("if-modified-since"))
                predicate = parse_where(params["where"], tenant) if params.get("where") else None
                page, size = _paging(params)
            except QueryError as error:
                return _Answer(
                    400, dumps({"ErrorNumber": 16, "Type": "QueryParseException", "Message": str(error)}), _JSON
                )
            chosen = [
                record
                for record in tenant.records[kind].values()
                if (since is None or record.updated >= since) and (predicate is None or predicate(record))
            ]
            envelope: dict = {}
            if page is not None:
                count = len(chosen)
                envelope["pagination"] = {
                    "page": page,
                    "pageSize": size,
                    "pageCount": math.ceil(count / size),
                    "itemCount": count,
                }
                chosen = chosen[(page - 1) * size : page * size]
            envelope[key] = [_render(tenant, record) for record in chosen]
            return _Answer(200, dumps(self._envelope(envelope)), _JSON)

    def _envelope(self, content: dict) -> dict:
        return {
            "Id": str(uuid.uuid4()),
            "Status": "OK",
            "ProviderName": "Countinghouse",
            "DateTimeUTC": ms_datetime(int(self.clock() * 1000)),
            **content,
        }

    @staticmethod
    def _organisation(tenant: Tenant) -> dict:
        return {
            "OrganisationID": tenant.tenant_id,
            "Name": tenant.name,
            "LegalName": tenant.name,
            "BaseCurrency": tenant.base_currency,
            "OrganisationStatus": "ACTIVE",
            "IsDemoCompany": False,
        }

    def record(self, call: Call) -> None:
        with self.lock:
            self.calls.append(call)


_JSON = {"Content-Type": "application/json; charset=utf-8"}


def _error(status: int, title: str, detail: str) -> _Answer:
    body = {"Type": None, "Title": title, "Status": status, "Detail": detail, "Instance": str(uuid.uuid4())}
    return _Answer(status, dumps(body), _JSON)


def _unauthorised(detail: str) -> _Answer:
    answer = _error(401, "Unauthorized", detail)
    answer.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return answer


def _oauth_error(status: int, error: str) -> _Answer:
    return _Answer(status, dumps({"error": error}), _JSON)


def _modified_since(value: str | None) -> int | None:
    """If-Modified-Since as the SDK sends it (ISO 8601, UTC when naive) or as HTTP does."""
    if not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = datetime.datetime.strptime(value.strip(), "%a, %d %b %Y %H:%M:%S GMT")
        except ValueError:
            raise QueryError(f"If-Modified-Since {value!r} is not a date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return ms_of(moment)


def _paging(params: dict[str, str]) -> tuple[int | None, int]:
    if "page" not in params:
        return None, 0
    try:
        page = int(params["page"])
        size = int(params.get("pageSize") or DEFAULT_PAGE_SIZE)
    except ValueError:
        raise QueryError("page and pageSize are whole numbers") from None
    if page < 1 or size < 1:
        raise QueryError("page and pageSize start at 1")
    return page, min(size, MAX_PAGE_SIZE)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # many workers connect at once in the benchmark
    fake: FakeXero


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
    disable_nagle_algorithm = True  # headers and body leave at once, not 40 ms apart
    wbufsize = -1  # buffered: one write per answer (flushed after each request)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        fake: FakeXero = self.server.fake
        started = fake.clock()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        answer, release = fake.handle(method, self.path, headers, body)
        try:
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up waiting (a timeout): nobody to answer
        finally:
            release()
            parts = urlsplit(self.path)
            fake.record(
                Call(
                    method,
                    parts.path,
                    headers.get("xero-tenant-id"),
                    dict(parse_qsl(parts.query, keep_blank_values=True)),
                    headers,
                    answer.status,
                    started,
                    fake.clock(),
                )
            )

    def log_message(self, format: str, *args) -> None:
        """Quiet: the calls are recorded instead."""


# --- The platform's side ---------------------------------------------------------------------------


def install(
    xero: FakeXero,
    tenants: Iterable[Tenant],
    *,
    app_name: str = "Fake Xero",
    shared_grant: bool = False,
    calls_per_minute: int = 10_000,
):
    """The platform's rows for this fake (Django must be set up): a XeroApp at its URLs, a
    grant per tenant (or one ``shared_grant`` reaching them all) holding fresh tokens, and
    a connection per tenant. Returns the app."""
    from receivables.models import XeroApp, XeroConnection, XeroGrant

    tenants = list(tenants)
    client_id, client_secret = xero.add_app()
    app = XeroApp(
        name=app_name,
        client_id=client_id,
        api_url=xero.api_url,
        identity_url=xero.identity_url,
        token_url=xero.token_url,
        calls_per_minute=calls_per_minute,
    )
    app.client_secret = client_secret
    app.save()
    for group in [tenants] if shared_grant else [[tenant] for tenant in tenants]:
        tokens = xero.issue_tokens(client_id, [tenant.tenant_id for tenant in group])
        grant = XeroGrant(app=app, name=f"grant of {group[0].name}", expires_at=tokens.expires_at_datetime)
        grant.scopes = tokens.scopes
        grant.access_token, grant.refresh_token = tokens.access_token, tokens.refresh_token
        grant.save()
        XeroConnection.objects.bulk_create(
            [XeroConnection(app=app, tenant_id=t.tenant_id, tenant_name=t.name, grant=grant) for t in group]
        )
    return app


# --- Command line ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fake Xero with demo data until interrupted.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--tenants", type=int, default=3)
    parser.add_argument("--documents", type=int, default=500, help="documents per tenant")
    parser.add_argument("--client-id", default="DEMO-CLIENT-ID")
    parser.add_argument("--client-secret", default="demo-client-secret")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--enforce-limits", action="store_true", help="answer 429 past Xero's limits")
    args = parser.parse_args(argv)
    xero = FakeXero(port=args.port, limits=Limits() if args.enforce_limits else None).start()
    xero.add_app(args.client_id, args.client_secret)
    tenants = []
    for n in range(args.tenants):
        tenant = xero.add_tenant(f"Demo Company {n + 1}", tenant_id=_uuid(random.Random(args.seed * 1000 + n)))
        tenant.populate(args.documents, seed=args.seed * 1000 + n)
        tenants.append(tenant.tenant_id)
    tokens = xero.issue_tokens(args.client_id, tenants)
    summary = {
        "api_url": xero.api_url,
        "identity_url": xero.identity_url,
        "token_url": xero.token_url,
        "client_id": args.client_id,
        "client_secret": args.client_secret,
        "refresh_token": tokens.refresh_token,
        "tenants": tenants,
    }
    print(json.dumps(summary, indent=2), flush=True)  # noqa: T201 (a command-line tool)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        xero.stop()


if __name__ == "__main__":
    main()
