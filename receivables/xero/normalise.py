"""Xero's documents, as the SDK hands them over, in the shape of receivables' tables.

- An ACCREC invoice, an ACCRECCREDIT credit note, a RECEIVE overpayment or prepayment is a
  Document of its kind; its Allocations (credit applied to invoices) are Allocation rows,
  keyed by Xero's AllocationID (or, where Xero sends none, a key made of the credit, the
  invoice, the date and the allocation's place among those alike).
- A payment received (ACCRECPAYMENT) is a Document of kind payment and an Allocation of all
  of it to its invoice on the payment's date, both keyed by the PaymentID.
- A refund (cash paid back out of a credit note, overpayment or prepayment) raises what the
  customer is owed back to where it was: a Document of kind invoice (number "Refund …") and
  an Allocation of the credit to it on the refund's date, so the credit is used up and the
  balance rule holds at every date.
- Only AUTHORISED and PAID documents (AUTHORISED payments) are kept; anything else Xero
  sends (VOIDED, DELETED, DRAFT, SUBMITTED) is removed with its allocations.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any

from receivables.models import Document, DocumentKind, XeroContact

KEPT = ("AUTHORISED", "PAID")
RECEIPT = "ACCRECPAYMENT"
REFUNDS = ("ARCREDITPAYMENT", "AROVERPAYMENTPAYMENT", "ARPREPAYMENTPAYMENT")
PAYMENT_TYPES = (RECEIPT, *REFUNDS)
RATE_PLACES = Decimal(1).scaleb(-Document._meta.get_field("rate").decimal_places)
MONEY_PLACES = Decimal(1).scaleb(-Document._meta.get_field("total").decimal_places)
NAME_LENGTH = Document._meta.get_field("contact_name").max_length
NUMBER_LENGTH = Document._meta.get_field("number").max_length


@dataclass
class Page:
    """One page of one kind, ready to write."""

    documents: dict[str, dict] = field(default_factory=dict)  # external id → Document fields
    removed: list[str] = field(default_factory=list)  # external ids Xero voided or deleted
    allocations: dict[str, dict] = field(default_factory=dict)  # external id → Allocation fields
    replaces: list[str] = field(default_factory=list)  # credits whose allocations this page states in full
    targets: dict[str, str] = field(default_factory=dict)  # payment → the document it pays, to fill gaps from
    skipped: list[str] = field(default_factory=list)  # why documents were left out
    newest: datetime.datetime | None = None  # the latest UpdatedDateUTC seen

    def seen(self, updated: datetime.datetime | None) -> None:
        if updated is not None and (self.newest is None or updated > self.newest):
            self.newest = updated


def text(value: Any) -> str:
    if value is None:
        return ""
    return str(value.value if isinstance(value, Enum) else value)


def moment(value: datetime.datetime | None) -> datetime.datetime | None:
    """UTC, to Xero's millisecond (the SDK goes through a float on the way)."""
    if value is None:
        return None
    value = value.astimezone(datetime.UTC)
    milliseconds = round(value.microsecond / 1000)
    return value.replace(microsecond=0) + datetime.timedelta(milliseconds=milliseconds)


def rate_of(value: Any) -> Decimal:
    """Xero's CurrencyRate; absent or nonsense means 1 (the base currency)."""
    rate = Decimal(str(value)) if value is not None else Decimal(1)
    return rate.quantize(RATE_PLACES) if rate > 0 else Decimal(1)


def amount_of(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(MONEY_PLACES)


def contact_of(item: Any) -> tuple[str, str]:
    contact = getattr(item, "contact", None)
    if contact is None:
        return "", ""
    return text(contact.contact_id), text(contact.name)[:NAME_LENGTH]


def _document(kind: str, item: Any, label: str, base_currency: str, number: str) -> dict:
    contact_id, contact_name = contact_of(item)
    return {
        "kind": kind,
        "company_label": label,
        "contact_id": contact_id,
        "contact_name": contact_name,
        "number": number[:NUMBER_LENGTH],
        "date": item.date,
        "due_date": getattr(item, "due_date", None) if kind == DocumentKind.INVOICE else None,
        "total": amount_of(item.total),
        "currency": text(item.currency_code) or base_currency,
        "rate": rate_of(item.currency_rate),
        "status": text(item.status),
        "updated_at": moment(item.updated_date_utc),
    }


def _keep(page: Page, external_id: str, row: dict) -> bool:
    """Whether the row is whole enough to age; what is not is left out, and said."""
    missing = [name for name in ("date", "total", "currency") if not row[name]]
    if row["total"] is not None and row["total"] < 0:
        missing.append("a positive total")
    if missing:
        page.skipped.append(f"{row['kind']} {external_id} has no {', '.join(missing)}")
        return False
    if row["kind"] == DocumentKind.INVOICE and row["due_date"] is None:
        row["due_date"] = row["date"]
    return True


# --- Per kind --------------------------------------------------------------------------------------


def invoices(items: list, label: str, base_currency: str) -> Page:
    page = Page()
    for item in items:
        page.seen(moment(item.updated_date_utc))
        if text(item.type) != "ACCREC":
            continue
        external_id = text(item.invoice_id)
        if text(item.status) not in KEPT:
            page.removed.append(external_id)
            continue
        row = _document(DocumentKind.INVOICE, item, label, base_currency, text(item.invoice_number))
        if _keep(page, external_id, row):
            page.documents[external_id] = row
    return page


CREDITS = {
    # kind: (the SDK's id attribute, Xero's types of it that are receivables, the number)
    "credit_notes": (DocumentKind.CREDIT_NOTE, "credit_note_id", ("ACCRECCREDIT",), "credit_note_number"),
    "overpayments": (DocumentKind.OVERPAYMENT, "overpayment_id", ("RECEIVE-OVERPAYMENT", "AROVERPAYMENT"), "reference"),
    "prepayments": (DocumentKind.PREPAYMENT, "prepayment_id", ("RECEIVE-PREPAYMENT", "ARPREPAYMENT"), "invoice_number"),
}


def credits(name: str, items: list, label: str, base_currency: str) -> Page:
    kind, id_attribute, types, number_attribute = CREDITS[name]
    page = Page()
    for item in items:
        page.seen(moment(item.updated_date_utc))
        if text(item.type) not in types:
            continue
        external_id = text(getattr(item, id_attribute))
        page.replaces.append(external_id)  # a removed credit's allocations go; a kept one's are these
        if text(item.status) not in KEPT:
            page.removed.append(external_id)
            continue
        number = text(getattr(item, number_attribute, None)) or text(getattr(item, "reference", None))
        row = _document(kind, item, label, base_currency, number)
        if not _keep(page, external_id, row):
            continue
        page.documents[external_id] = row
        _allocations(page, external_id, row["date"], item.allocations or [])
    return page


def _allocations(page: Page, source: str, source_date: datetime.date, allocations: list) -> None:
    alike: dict[tuple, int] = defaultdict(int)
    for allocation in allocations:
        invoice = text(getattr(getattr(allocation, "invoice", None), "invoice_id", None))
        amount = amount_of(allocation.amount)
        if allocation.is_deleted or not invoice or not amount or amount <= 0:
            continue
        day = allocation.date or source_date
        external_id = text(allocation.allocation_id)
        if not external_id:
            # Older answers carry no AllocationID: a key stable for as long as the credit's
            # allocations stay as they are (a change rewrites the credit's set anyway).
            alike[(invoice, day)] += 1
            external_id = f"{source}:{invoice}:{day:%Y%m%d}:{alike[(invoice, day)]}"
        page.allocations[external_id] = {"source_id": source, "invoice_id": invoice, "amount": amount, "date": day}


def payments(items: list, label: str, base_currency: str) -> Page:
    page = Page()
    for item in items:
        page.seen(moment(item.updated_date_utc))
        payment_type = text(item.payment_type)
        if payment_type not in PAYMENT_TYPES:
            continue
        external_id = text(item.payment_id)
        if text(item.status) != "AUTHORISED":
            page.removed.append(external_id)
            continue
        target, target_id = _target(item, payment_type)
        amount = amount_of(item.amount)
        if not target_id or not amount or amount <= 0 or item.date is None:
            page.skipped.append(f"payment {external_id} names no document or amount")
            continue
        contact_id, contact_name = contact_of(target)
        reference = text(item.reference)
        receipt = payment_type == RECEIPT
        page.documents[external_id] = {
            "kind": DocumentKind.PAYMENT if receipt else DocumentKind.INVOICE,
            "company_label": label,
            "contact_id": contact_id,
            "contact_name": contact_name,
            "number": (reference if receipt else f"Refund {reference}".strip())[:NUMBER_LENGTH],
            "date": item.date,
            "due_date": None if receipt else item.date,
            "total": amount,
            "currency": text(getattr(target, "currency_code", None)),
            "rate": rate_of(item.currency_rate),
            "status": text(item.status),
            "updated_at": moment(item.updated_date_utc),
        }
        if not (contact_id and contact_name and page.documents[external_id]["currency"]):
            page.targets[external_id] = target_id  # what Xero left out, the local copy of the target says
        page.allocations[external_id] = {
            "source_id": external_id if receipt else target_id,
            "invoice_id": target_id if receipt else external_id,
            "amount": amount,
            "date": item.date,
        }
    return page


def _target(item: Any, payment_type: str) -> tuple[Any, str]:
    """The document a payment pays (an invoice) or pays out of (a credit), and its id."""
    for attribute, id_attribute in (
        ("invoice", "invoice_id"),
        ("credit_note", "credit_note_id"),
        ("overpayment", "overpayment_id"),
        ("prepayment", "prepayment_id"),
    ):
        target = getattr(item, attribute, None)
        if target is not None and (payment_type == RECEIPT) == (attribute == "invoice"):
            found = text(getattr(target, id_attribute, None))
            if found:
                return target, found
    return None, ""


def contacts(items: list) -> tuple[dict[str, dict], datetime.datetime | None]:
    rows, newest = {}, None
    name_length = XeroContact._meta.get_field("name").max_length
    for item in items:
        updated = moment(item.updated_date_utc)
        if updated is not None and (newest is None or updated > newest):
            newest = updated
        contact_id = text(item.contact_id)
        if contact_id:
            rows[contact_id] = {
                "name": text(item.name)[:name_length],
                "email": text(item.email_address)[:255],
                "status": text(item.contact_status)[:20],
                "updated_at": updated,
            }
    return rows, newest
