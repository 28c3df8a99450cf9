"""Invoices made by hand: a draft with its lines, finalised later like any other."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from billing.errors import BillingStateError
from billing.models import Customer, Invoice, InvoiceLine, InvoiceSource, InvoiceStatus
from billing.services import books as books_service
from ledger.models import Company

ZERO = Decimal(0)


def draft_invoice(
    company: Company, customer: Customer, *, issue_date, due_date, memo: str, lines: list[dict]
) -> Invoice:
    """A manual draft with its lines; each line's tax is rounded on the line, as the
    invoice shows it, and the totals are the lines' sums."""
    currency = company.base_currency
    sales = None
    rows = []
    for position, line in enumerate(lines):
        account = line["income_account"]
        if account is None:
            sales = sales or books_service.books(company).need("sales")
        tax = books_service.tax_on(line["amount"], line["tax_rate"], currency)
        rows.append(
            InvoiceLine(
                position=position,
                description=line["description"],
                amount=line["amount"],
                tax_rate=line["tax_rate"],
                tax=tax,
                total=line["amount"] + tax,
                income_account_id=account.pk if account else sales,
            )
        )
    subtotal = sum((row.amount for row in rows), ZERO)
    tax = sum((row.tax for row in rows), ZERO)
    with transaction.atomic():
        invoice = Invoice.objects.create(
            company=company,
            customer=customer,
            source=InvoiceSource.MANUAL,
            issue_date=issue_date,
            due_date=due_date,
            currency=currency,
            subtotal=subtotal,
            tax=tax,
            total=subtotal + tax,
            due=subtotal + tax,
            memo=memo,
        )
        for row in rows:
            row.invoice = invoice
        InvoiceLine.objects.bulk_create(rows)
    return invoice


def delete_draft(invoice: Invoice) -> None:
    """Delete a draft. Its row is locked first: a finaliser holding it makes this wait,
    and then find it finalised, rather than delete an invoice that was just numbered,
    posted and sent."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if invoice.status != InvoiceStatus.DRAFT:
            raise BillingStateError(
                f"Invoice {invoice.label} is {invoice.status}; only drafts are deleted. Void it instead."
            )
        invoice.delete()
