"""Billing's own invoices, payments and credit notes as the engine's documents.

Billing keeps every document in the company's base currency (rate 1). An invoice counts
from its issue date until the day it is voided (a void on V reverses it as of V, as the
ledger does); drafts never count. Ids are prefixed by kind (``invoice:42``), since billing
numbers its tables separately.

Allocations taken back in billing are deleted, not reversed, so a report as of a date
before a take-back ages the invoice as if it had never been settled by that allocation.
The balance rule (and the reconciliation to the control account) holds either way:
allocations move nothing between the two sides.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from decimal import Decimal

from django.db.models import Count, Max, Q, Sum

from billing.models import CreditNote, Invoice, InvoiceStatus, Payment
from billing.models.payments import CreditAllocation, PaymentAllocation
from billing.services.books import books
from ledger.models import Company
from ledger.services.balances import balances_as_of
from receivables import engine


def counted_invoices(company: Company, as_of: datetime.date):
    """The company's invoices that count at ``as_of``: finalised, issued by then, and not
    voided by then."""
    return Invoice.objects.filter(company=company, issue_date__lte=as_of, finalised_at__isnull=False).filter(
        Q(status__in=(InvoiceStatus.OPEN, InvoiceStatus.PAID)) | Q(status=InvoiceStatus.VOID, void_date__gt=as_of)
    )


def documents(
    company: Company, as_of: datetime.date, *, customers: Iterable[int] | None = None
) -> tuple[list[engine.Doc], list[engine.Alloc]]:
    """Every document and allocation of ``company`` dated on or before ``as_of`` (of some
    customers only, when given). Five queries whatever the number of documents."""
    label = company.name
    scope = {} if customers is None else {"customer_id__in": list(customers)}
    docs = [
        engine.Doc(
            engine.INVOICE,
            f"invoice:{pk}",
            label,
            name,
            date,
            total,
            currency,
            number=number,
            due_date=due,
            contact_id=str(customer_id),
        )
        for pk, number, date, due, total, currency, customer_id, name in counted_invoices(company, as_of)
        .filter(**scope)
        .values_list("pk", "number", "issue_date", "due_date", "total", "currency", "customer_id", "customer__name")
        .iterator(chunk_size=5000)
    ]
    for model, kind, amount, prefix in (
        (Payment, engine.PAYMENT, "amount", "payment"),
        (CreditNote, engine.CREDIT_NOTE, "total", "credit_note"),
    ):
        number = "number" if model is CreditNote else "reference"
        docs.extend(
            engine.Doc(kind, f"{prefix}:{pk}", label, name, date, total, currency, number=ref, contact_id=str(cid))
            for pk, ref, date, total, currency, cid, name in model.objects.filter(
                company=company, date__lte=as_of, **scope
            )
            .values_list("pk", number, "date", amount, "currency", "customer_id", "customer__name")
            .iterator(chunk_size=5000)
        )
    allocations = []
    for model, source, prefix in (
        (PaymentAllocation, "payment_id", "payment"),
        (CreditAllocation, "credit_note_id", "credit_note"),
    ):
        rows = model.objects.filter(company=company, date__lte=as_of)
        if customers is not None:
            rows = rows.filter(invoice__customer_id__in=scope["customer_id__in"])
        allocations.extend(
            engine.Alloc(f"{prefix}:{src}", f"invoice:{invoice}", amount, date, id=f"{prefix}-allocation:{pk}")
            for pk, src, invoice, amount, date in rows.values_list(
                "pk", source, "invoice_id", "amount", "date"
            ).iterator(chunk_size=5000)
        )
    return docs, allocations


def control_balance(company: Company, as_of: datetime.date) -> Decimal | None:
    """The receivables control account's balance at ``as_of`` (debit positive), or None
    when the company's chart has no receivables account."""
    account = books(company).receivables
    if account is None:
        return None
    return balances_as_of(company, as_of, [account]).get(account, Decimal(0))


def reconciliation(company: Company, as_of: datetime.date, report_total: Decimal) -> dict:
    """The reconciliation line: the report's total against the control account."""
    control = control_balance(company, as_of)
    currency = company.base_currency
    return {
        "company": company.name,
        "currency": currency,
        "report_total": str(engine.shown(report_total, currency)),
        "control_balance": None if control is None else str(engine.shown(control, currency)),
        "difference": None if control is None else str(engine.shown(report_total - control, currency)),
        "reconciled": control is not None and report_total == control,
    }


def fingerprint(company: Company) -> tuple:
    """Changes whenever anything that ages changes: a document or allocation added or
    taken back, an invoice finalised or voided. Cheap aggregates, for the report cache."""
    invoices = Invoice.objects.filter(company=company, finalised_at__isnull=False).aggregate(
        n=Count("pk"), last=Max("pk"), voids=Count("pk", filter=Q(status=InvoiceStatus.VOID))
    )
    parts = [tuple(invoices.values())]
    for model in (Payment, CreditNote):
        parts.append(tuple(model.objects.filter(company=company).aggregate(n=Count("pk"), last=Max("pk")).values()))
    for model in (PaymentAllocation, CreditAllocation):
        found = model.objects.filter(company=company).aggregate(n=Count("pk"), last=Max("pk"), s=Sum("amount"))
        parts.append((found["n"], found["last"], str(found["s"])))
    return tuple(parts)
