"""Settlement: payments and credit notes recorded and posted, allocated to invoices, and
invoices voided.

A payment posts Dr bank / Cr receivables (the customer's party) for its whole amount when
it is recorded; a credit note posts Dr income and tax / Cr receivables for its total.
Allocations post nothing: they say which invoices the money settles, and keep each
invoice's ``paid`` / ``credited`` / ``due`` / ``status`` and each document's ``allocated`` /
``unallocated`` in step, so the receivables control account always equals the invoices'
amounts due less what payments and credits have not allocated.

Every service is one transaction. Row locks are taken here only, in one order: the
invoices (``select_for_update().order_by("pk")``), then the payment or credit note. Two
allocations of one payment to different invoices, or of different payments to one
invoice, take turns and see each other's result, so no invoice is settled past its total
and no payment allocated past its amount.

Refusals: ``BillingError`` (400) names the fields at fault; ``BillingStateError`` (409) when
a document's state does not allow it (a draft or void invoice settled, a settled invoice
voided). A posting the ledger refuses (a closed period) raises its ``PostingError``, also a
ValidationError. Nothing is written when any of them is raised.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction

from billing.errors import BillingError, BillingStateError
from billing.models import (
    CreditAllocation,
    CreditNote,
    Customer,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    NoticeStatus,
    OverdueNotice,
    Payment,
    PaymentAllocation,
    PaymentMethod,
    Series,
)
from billing.services import books as books_service
from billing.services import numbering
from config import bulk
from ledger import currencies
from ledger.models import Account, AccountType, Company, Source
from ledger.services import posting
from ledger.services.periods import EARLIEST, LATEST

ZERO = Decimal(0)
AUTO = "auto"  # ``allocations=AUTO``: oldest due first, as ``auto_allocate``
MAX_AMOUNT = posting.MAX_AMOUNT
SETTLED = "credit it or remove its allocations first"

# Field lengths of the models, checked here so a long text is a 400, not a database error.
REFERENCE_LENGTH = 100
EXTERNAL_ID_LENGTH = 100
REASON_LENGTH = 500


@dataclass(frozen=True)
class _Side:
    """What differs between settling with a payment and with a credit note."""

    model: type[Payment] | type[CreditNote]
    allocation: type[PaymentAllocation] | type[CreditAllocation]
    link: str  # the allocation's foreign key to the document
    settles: str  # the invoice's field the allocation adds to
    noun: str


PAYMENTS = _Side(Payment, PaymentAllocation, "payment", "paid", "payment")
CREDITS = _Side(CreditNote, CreditAllocation, "credit_note", "credited", "credit note")


def _side(document: Payment | CreditNote | PaymentAllocation | CreditAllocation) -> _Side:
    return PAYMENTS if isinstance(document, Payment | PaymentAllocation) else CREDITS


@dataclass(frozen=True)
class _Wanted:
    """One allocation asked for: ``position`` is its place in the request, for messages."""

    position: int
    invoice_id: int
    amount: Decimal
    date: datetime.date | None


# --- Payments ----------------------------------------------------------------------------


def record_payment(
    company: Company,
    customer: Customer,
    *,
    date: datetime.date,
    amount: Decimal,
    currency: str | None = None,
    method: str = PaymentMethod.BANK_TRANSFER,
    reference: str = "",
    external_id: str = "",
    allocations: Sequence | str = (),
    user=None,
) -> Payment:
    """Record and post a payment, then allocate it: ``allocations`` is a list of
    ``(invoice, amount)`` or ``(invoice, amount, date)``, or ``AUTO`` (oldest due first).

    ``external_id`` is the client's key for the payment: recording it again with the same
    customer, date, amount, method and reference returns the payment already recorded
    (with ``created`` False), so a client may retry a request whose answer it lost; the
    same key with other details is refused (409), as it names another payment. The
    returned payment's ``created`` attribute says which happened."""
    errors: dict[str, list[str]] = {}
    currency = _currency(errors, company, currency)
    _check_customer(errors, company, customer)
    day = _day(errors, "date", date)
    amount = _amount(errors, "amount", amount, currency)
    if method not in PaymentMethod.values:
        errors.setdefault("method", []).append(f"Unknown method {method!r}; choose from {', '.join(PaymentMethod)}.")
    _length(errors, "reference", reference, REFERENCE_LENGTH)
    _length(errors, "external_id", external_id, EXTERNAL_ID_LENGTH)
    auto = isinstance(allocations, str)
    if auto and allocations != AUTO:
        errors.setdefault("allocations", []).append(f'Give a list of allocations or "{AUTO}".')
    wanted = [] if auto else _wanted(errors, allocations, currency)
    if errors:
        raise BillingError(errors)
    books = books_service.books(company)
    bank, receivables = books.need("bank"), books.need("receivables")
    details = {
        "customer_id": customer.pk,
        "date": day,
        "amount": amount,
        "currency": currency,
        "method": method,
        "reference": reference,
    }

    with transaction.atomic():
        if external_id:
            existing = Payment.objects.filter(company=company, external_id=external_id).first()
            if existing is not None:
                return _replayed(existing, details)
        try:
            with transaction.atomic():  # a savepoint: a concurrent retry's win rolls back only this
                payment = Payment.objects.create(
                    company=company, external_id=external_id, unallocated=amount, created_by=user, **details
                )
        except IntegrityError:
            # The same external id was recorded by a request that committed since we looked
            # (the insert waited for it): answer as a replay.
            existing = Payment.objects.filter(company=company, external_id=external_id).first()
            if not external_id or existing is None:
                raise
            return _replayed(existing, details)
        label = reference or f"Payment {payment.pk}"
        entry = posting.Entry(
            date=day,
            lines=[
                posting.Line(bank, debit=amount, description=label),
                posting.Line(receivables, credit=amount, party=customer.party, description=label),
            ],
            reference=label[:100],
            memo=f"Payment from {customer.name}"[:500],
            source=Source.BILLING,
            source_id=f"payment:{payment.pk}",
        )
        payment.journal_entry = posting.post(company, entry, user=user).entry
        payment.save(update_fields=["journal_entry"])
        if auto:
            _auto_allocate(PAYMENTS, payment)
        elif wanted:
            _allocate(PAYMENTS, payment, wanted)
        payment.refresh_from_db(fields=["allocated", "unallocated"])
    payment.created = True
    return payment


def _replayed(existing: Payment, details: dict) -> Payment:
    differs = sorted(name for name, value in details.items() if getattr(existing, name) != value)
    if differs:
        names = ", ".join(name.removesuffix("_id") for name in differs)
        raise BillingStateError(
            f"External id {existing.external_id!r} already records payment {existing.pk}, whose {names} differ; "
            "a new payment needs a new external id."
        )
    existing.created = False
    return existing


def allocate_payment(payment: Payment, allocations: Iterable) -> list[PaymentAllocation]:
    """Allocate part of a payment to each invoice: ``allocations`` is a list of
    ``(invoice, amount)`` or ``(invoice, amount, date)``, invoices as rows or ids."""
    return _allocate_given(PAYMENTS, payment, allocations)


# --- Credit notes -----------------------------------------------------------------------


def record_credit_note(
    company: Company,
    customer: Customer,
    *,
    date: datetime.date,
    subtotal: Decimal,
    tax: Decimal = ZERO,
    currency: str | None = None,
    reason: str = "",
    invoice: Invoice | None = None,
    income_account: Account | int | None = None,
    allocate: bool = True,
    user=None,
) -> CreditNote:
    """Record a credit note, numbered from the company's credit note series, and post
    Dr income (``income_account``, else the sales account) the subtotal, Dr tax the tax,
    Cr receivables the total. Crediting an ``invoice`` with ``allocate`` settles what it
    can of the invoice's due; the rest stays credit on the customer's account."""
    errors: dict[str, list[str]] = {}
    currency = _currency(errors, company, currency)
    _check_customer(errors, company, customer)
    day = _day(errors, "date", date)
    subtotal = _amount(errors, "subtotal", subtotal, currency, allow_zero=True)
    tax = _amount(errors, "tax", tax, currency, allow_zero=True)
    if "subtotal" not in errors and "tax" not in errors and subtotal + tax == ZERO:
        errors.setdefault("subtotal", []).append("A credit note credits something: its total must be positive.")
    _length(errors, "reason", reason, REASON_LENGTH)
    account_id = _income_account(errors, company, income_account)
    if invoice is not None and invoice.company_id != company.pk:
        errors.setdefault("invoice", []).append(f"Invoice {invoice.pk} does not exist.")
    if errors:
        raise BillingError(errors)
    books = books_service.books(company)
    receivables = books.need("receivables")
    income = account_id or (books.need("sales") if subtotal else None)
    tax_account = books.need("tax") if tax else None
    total = subtotal + tax

    with transaction.atomic():
        credited = None
        if invoice is not None:
            credited = Invoice.objects.select_for_update().get(pk=invoice.pk)  # the invoices first
            _check_credited(credited, customer, currency, day)
        note = CreditNote.objects.create(
            company=company,
            customer=customer,
            date=day,
            invoice=credited,
            reason=reason,
            currency=currency,
            subtotal=subtotal,
            tax=tax,
            total=total,
            unallocated=total,
            income_account_id=account_id,
            created_by=user,
        )
        # Numbered after the insert, as late as can be: the series' lock is held to the end.
        (note.number,) = numbering.take(company, Series.CREDIT_NOTE, 1)
        lines = []
        if subtotal:
            lines.append(posting.Line(income, debit=subtotal, description=note.number))
        if tax:
            lines.append(posting.Line(tax_account, debit=tax, description=f"Tax on {note.number}"))
        lines.append(posting.Line(receivables, credit=total, party=customer.party, description=note.number))
        memo = f"Credit note {note.number}" + (f" on invoice {credited.number}" if credited else "")
        entry = posting.Entry(
            date=day,
            lines=lines,
            reference=note.number,
            memo=(f"{memo}: {reason}" if reason else memo)[:500],
            source=Source.BILLING,
            source_id=f"credit_note:{note.pk}",
        )
        note.journal_entry = posting.post(company, entry, user=user).entry
        note.save(update_fields=["number", "journal_entry"])
        if credited is not None and allocate and credited.status == InvoiceStatus.OPEN and credited.due > 0:
            wanted = [_Wanted(1, credited.pk, min(total, credited.due), None)]
            _apply(CREDITS, note, {credited.pk: credited}, wanted)
    if invoice is not None:
        _copy_settlement(credited, invoice)
    return note


def _check_credited(invoice: Invoice, customer: Customer, currency: str, day: datetime.date) -> None:
    errors: dict[str, list[str]] = {}
    if invoice.customer_id != customer.pk:
        errors.setdefault("invoice", []).append(f"Invoice {invoice.label} is another customer's.")
    elif invoice.currency != currency:
        errors.setdefault("invoice", []).append(f"Invoice {invoice.label} is in {invoice.currency}, not {currency}.")
    if errors:
        raise BillingError(errors)
    if invoice.status not in (InvoiceStatus.OPEN, InvoiceStatus.PAID):
        raise BillingStateError(f"Invoice {invoice.label} is {invoice.status}; only a finalised invoice is credited.")
    if day < invoice.issue_date:
        raise BillingError(
            {"date": [f"A credit note cannot be dated before the invoice it credits (issued {invoice.issue_date})."]}
        )


def allocate_credit(credit_note: CreditNote, allocations: Iterable) -> list[CreditAllocation]:
    """Allocate part of a credit note to each invoice, as ``allocate_payment``."""
    return _allocate_given(CREDITS, credit_note, allocations)


# --- Allocation --------------------------------------------------------------------------


def auto_allocate(document: Payment | CreditNote) -> list[PaymentAllocation] | list[CreditAllocation]:
    """Allocate what is left of a payment or credit note to the customer's open invoices,
    the oldest due first (by due date, then id)."""
    with transaction.atomic():
        return _auto_allocate(_side(document), document)


def _auto_allocate(side: _Side, document) -> list:
    candidates = Invoice.objects.filter(
        company_id=document.company_id,
        customer_id=document.customer_id,
        currency=document.currency,
        status=InvoiceStatus.OPEN,
        due__gt=0,
    ).values_list("pk", flat=True)
    invoices = _lock_invoices(document.company_id, candidates)
    locked = side.model.objects.select_for_update().get(pk=document.pk)
    left = locked.unallocated
    wanted = []
    for invoice in sorted(invoices.values(), key=lambda i: (i.due_date, i.pk)):
        if left <= 0:
            break
        if invoice.status != InvoiceStatus.OPEN or invoice.due <= 0:
            continue  # settled by another transaction between the look and the lock
        amount = min(left, invoice.due)
        wanted.append(_Wanted(len(wanted) + 1, invoice.pk, amount, None))
        left -= amount
    created = _apply(side, locked, invoices, wanted)
    _copy_settlement(locked, document)
    return created


def _allocate_given(side: _Side, document, allocations: Iterable) -> list:
    errors: dict[str, list[str]] = {}
    given = list(allocations) if isinstance(allocations, Iterable) and not isinstance(allocations, str) else allocations
    wanted = _wanted(errors, given, document.currency)
    if errors:
        raise BillingError(errors)
    if not wanted:
        return []
    with transaction.atomic():
        return _allocate(side, document, wanted, given=given)


def _allocate(side: _Side, document, wanted: list[_Wanted], *, given: Iterable = ()) -> list:
    invoices = _lock_invoices(document.company_id, [w.invoice_id for w in wanted])
    locked = side.model.objects.select_for_update().get(pk=document.pk)
    created = _apply(side, locked, invoices, wanted)
    _copy_settlement(locked, document)
    for item in given:
        if isinstance(item[0], Invoice) and item[0].pk in invoices:
            _copy_settlement(invoices[item[0].pk], item[0])
    return created


def _lock_invoices(company_id: int, ids: Iterable[int]) -> dict[int, Invoice]:
    rows = Invoice.objects.select_for_update().filter(company_id=company_id, pk__in=list(ids)).order_by("pk")
    return {invoice.pk: invoice for invoice in rows}


def _apply(side: _Side, document, invoices: dict[int, Invoice], wanted: list[_Wanted]) -> list:
    """Check and write the allocations; ``document`` and ``invoices`` are locked rows."""
    many = len(wanted) > 1
    problems: list[str] = []
    conflicts: list[str] = []
    left = document.unallocated
    due = {pk: invoice.due for pk, invoice in invoices.items()}
    rows = []
    for w in wanted:
        where = f"allocation {w.position}: " if many else ""
        invoice = invoices.get(w.invoice_id)
        if invoice is None:
            problems.append(f"{where}invoice {w.invoice_id} does not exist.")
            continue
        if invoice.customer_id != document.customer_id:
            problems.append(f"{where}invoice {invoice.label} is another customer's.")
            continue
        if invoice.currency != document.currency:
            problems.append(f"{where}invoice {invoice.label} is in {invoice.currency}, not {document.currency}.")
            continue
        if invoice.status != InvoiceStatus.OPEN:
            conflicts.append(f"{where}invoice {invoice.label} is {invoice.status}; only open invoices are settled.")
            continue
        earliest = max(document.date, invoice.issue_date)
        day = w.date or earliest
        if day < earliest:
            problems.append(
                f"{where}the date {day} is before the {side.noun} ({document.date}) or the invoice "
                f"({invoice.issue_date}); the earliest is {earliest}."
            )
        if w.amount > due[invoice.pk]:
            owed = _show(due[invoice.pk], invoice.currency)
            problems.append(f"{where}{w.amount} is more than invoice {invoice.label}'s due of {owed}.")
            continue
        due[invoice.pk] -= w.amount
        left -= w.amount
        rows.append(
            side.allocation(
                company_id=document.company_id, invoice=invoice, amount=w.amount, date=day, **{side.link: document}
            )
        )
    if not problems and not conflicts and left < 0:
        asked, held = (
            _show(document.unallocated - left, document.currency),
            _show(document.unallocated, document.currency),
        )
        problems.append(
            f"The allocations add up to {asked}, more than the {held} left unallocated of {_name(document)}."
        )
    if problems:
        raise BillingError({"allocations": problems})
    if conflicts:
        raise BillingStateError(" ".join(conflicts))
    if not rows:
        return []
    created = side.allocation.objects.bulk_create(rows)

    touched = [invoices[pk] for pk in sorted({row.invoice_id for row in rows})]
    for invoice in touched:
        settled = invoice.due - due[invoice.pk]
        setattr(invoice, side.settles, getattr(invoice, side.settles) + settled)
        invoice.due = due[invoice.pk]
        if invoice.due == 0:
            invoice.status = InvoiceStatus.PAID
    bulk.update_columns(Invoice, touched, [side.settles, "due", "status"])
    moved = document.unallocated - left
    document.allocated += moved
    document.unallocated = left
    document.save(update_fields=["allocated", "unallocated"])
    _stop_dunning([invoice.pk for invoice in touched if invoice.status == InvoiceStatus.PAID])
    return created


def _stop_dunning(invoice_ids: list[int]) -> None:
    """A settled invoice is not chased: its notices not yet sent are cancelled."""
    if invoice_ids:
        OverdueNotice.objects.filter(invoice_id__in=invoice_ids, status=NoticeStatus.PENDING).update(
            status=NoticeStatus.CANCELLED
        )


def unallocate(allocation: PaymentAllocation | CreditAllocation) -> Invoice:
    """Take an allocation back: the invoice is due that much again (open once more) and
    the payment or credit note has it unallocated. Notices cancelled when the invoice was
    settled stay cancelled. Removing an allocation already gone changes nothing."""
    side = _side(allocation)
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=allocation.invoice_id)
        document = side.model.objects.select_for_update().get(pk=getattr(allocation, f"{side.link}_id"))
        row = side.allocation.objects.filter(pk=allocation.pk).first()
        if row is None:
            return invoice
        if invoice.status == InvoiceStatus.VOID:
            raise BillingStateError(f"Invoice {invoice.label} is void; its allocations stay as they are.")
        row.delete()
        setattr(invoice, side.settles, getattr(invoice, side.settles) - row.amount)
        invoice.due += row.amount
        if invoice.status == InvoiceStatus.PAID:
            invoice.status = InvoiceStatus.OPEN
        invoice.save(update_fields=[side.settles, "due", "status"])
        document.allocated -= row.amount
        document.unallocated += row.amount
        document.save(update_fields=["allocated", "unallocated"])
    return invoice


# --- Voiding -----------------------------------------------------------------------------


def void_invoice(invoice: Invoice, *, date: datetime.date | None = None, reason: str = "", user=None) -> Invoice:
    """Void an invoice and return it. A draft just becomes void. A finalised invoice with
    nothing paid or credited is taken out of the books by reversing its journal entry on
    ``date`` (default: the company's today, or the issue date if that is later; never
    before the issue date). Its lines are released, so the period can be billed again,
    and its pending overdue notices cancelled. Voiding a void invoice changes nothing; an
    invoice with money allocated to it is refused (409)."""
    errors: dict[str, list[str]] = {}
    day = _day(errors, "date", date) if date is not None else None
    _length(errors, "reason", reason, REASON_LENGTH)
    if errors:
        raise BillingError(errors)
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().select_related("company").get(pk=invoice.pk)
        if invoice.status == InvoiceStatus.VOID:
            return invoice
        if invoice.paid or invoice.credited:
            settled = (
                f"{_show(invoice.paid, invoice.currency)} paid and {_show(invoice.credited, invoice.currency)} credited"
            )
            raise BillingStateError(f"Invoice {invoice.label} has {settled}; {SETTLED}.")
        if invoice.status == InvoiceStatus.DRAFT:
            day = day or invoice.company.today()
        else:
            day = day or max(invoice.company.today(), invoice.issue_date)
            if day < invoice.issue_date:
                raise BillingError({"date": [f"An invoice is not voided before its issue date, {invoice.issue_date}."]})
            if invoice.journal_entry_id is not None:
                memo = f"Void of invoice {invoice.label}" + (f": {reason}" if reason else "")
                invoice.void_entry = posting.reverse(invoice.journal_entry, date=day, user=user, memo=memo[:500]).entry
        invoice.status = InvoiceStatus.VOID
        invoice.void_date = day
        invoice.void_reason = reason
        invoice.save(update_fields=["status", "void_date", "void_reason", "void_entry"])
        InvoiceLine.objects.filter(invoice=invoice).update(billed=False)
        OverdueNotice.objects.filter(invoice=invoice, status=NoticeStatus.PENDING).update(status=NoticeStatus.CANCELLED)
    return invoice


# --- Checks ------------------------------------------------------------------------------


def _currency(errors: dict, company: Company, currency: str | None) -> str:
    base = company.base_currency
    if currency is not None and currency != base:
        errors.setdefault("currency", []).append(f"The company's books are kept in {base}; {currency!r} is not.")
    return base


def _check_customer(errors: dict, company: Company, customer) -> None:
    if not isinstance(customer, Customer) or customer.company_id != company.pk:
        errors.setdefault("customer", []).append(f"Customer {getattr(customer, 'pk', customer)} does not exist.")


def _day(errors: dict, name: str, value) -> datetime.date | None:
    if not isinstance(value, datetime.date) or isinstance(value, datetime.datetime):
        errors.setdefault(name, []).append("A date (YYYY-MM-DD) is required.")
        return None
    if not EARLIEST <= value <= LATEST:
        errors.setdefault(name, []).append(
            f"{value} is outside the years the books keep ({EARLIEST.year} to {LATEST.year})."
        )
    return value


def _amount(errors: dict, name: str, value, currency: str, *, allow_zero: bool = False) -> Decimal:
    """A positive (or, ``allow_zero``, non-negative) amount in ``currency``'s places."""
    problem = None
    amount = ZERO
    if isinstance(value, float | bool) or not isinstance(value, Decimal | int | str):
        problem = "must be a decimal (or a string of one), not a float"
    else:
        try:
            amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
        except InvalidOperation:
            problem = f"{value!r} is not a number"
    if problem is None:
        places = currencies.MINOR_UNITS[currency]
        if not amount.is_finite():
            problem = f"{value!r} is not a number"
        elif abs(amount) >= MAX_AMOUNT:
            problem = f"{amount} is too large"
        elif amount != amount.quantize(currencies.quantum(places)):
            problem = f"{amount} has more decimal places than {currency} allows ({places})"
        elif amount < 0 or (amount == 0 and not allow_zero):
            problem = "must not be negative" if allow_zero else "must be more than zero"
        else:
            return amount.quantize(currencies.quantum(places))
    errors.setdefault(name, []).append(f"The {name.replace('_', ' ')} {problem}.")
    return ZERO


def _length(errors: dict, name: str, value, limit: int) -> None:
    if not isinstance(value, str):
        errors.setdefault(name, []).append("Text is required.")
    elif len(value) > limit:
        errors.setdefault(name, []).append(f"At most {limit} characters; this has {len(value)}.")


def _income_account(errors: dict, company: Company, account) -> int | None:
    if account is None:
        return None
    pk = account.pk if isinstance(account, Account) else account
    found = (
        Account.objects.filter(company=company, pk=pk).values_list("pk", "code", "type", "is_active").first()
        if isinstance(pk, int) and not isinstance(pk, bool)
        else None
    )
    if found is None:
        errors.setdefault("income_account", []).append(f"Account {pk} does not exist in this company.")
        return None
    pk, code, kind, active = found
    if kind != AccountType.INCOME:
        errors.setdefault("income_account", []).append(
            f"Account {code} is an {kind} account; a credit note reduces an income account."
        )
    elif not active:
        errors.setdefault("income_account", []).append(f"Account {code} is inactive.")
    return pk


def _wanted(errors: dict, allocations, currency: str) -> list[_Wanted]:
    """The allocations asked for, each checked on its own; the sums are checked under lock."""
    if isinstance(allocations, str | bytes) or not isinstance(allocations, Iterable):
        errors.setdefault("allocations", []).append("A list of (invoice, amount) or (invoice, amount, date).")
        return []
    items = list(allocations)
    many = len(items) > 1
    wanted = []
    for position, item in enumerate(items, start=1):
        where = f"allocation {position}: " if many else ""
        if not isinstance(item, tuple | list) or len(item) not in (2, 3):
            errors.setdefault("allocations", []).append(f"{where}give (invoice, amount) or (invoice, amount, date).")
            continue
        invoice, amount, day = (*item, None) if len(item) == 2 else item
        invoice_id = invoice.pk if isinstance(invoice, Invoice) else invoice
        if not isinstance(invoice_id, int) or isinstance(invoice_id, bool):
            errors.setdefault("allocations", []).append(f"{where}invoice {invoice_id!r} does not exist.")
            continue
        found: dict[str, list[str]] = {}
        amount = _amount(found, "amount", amount, currency)
        if day is not None:
            _day(found, "date", day)
        if found:
            errors.setdefault("allocations", []).extend(f"{where}{m}" for ms in found.values() for m in ms)
            continue
        wanted.append(_Wanted(position, invoice_id, amount, day))
    return wanted


def _name(document: Payment | CreditNote) -> str:
    return f"payment {document.pk}" if isinstance(document, Payment) else f"credit note {document.number}"


def _show(amount: Decimal, currency: str) -> Decimal:
    """An amount as messages show it: in the currency's places, as stored amounts are not."""
    return amount.quantize(currencies.quantum(currencies.MINOR_UNITS[currency]))


def _copy_settlement(source, target) -> None:
    """Give the caller's instance the settled amounts the service wrote."""
    if source is None or target is None or source is target:
        return
    names = ("paid", "credited", "due", "status") if isinstance(source, Invoice) else ("allocated", "unallocated")
    for name in names:
        setattr(target, name, getattr(source, name))
