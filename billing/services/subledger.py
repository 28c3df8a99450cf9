"""The receivables sub-ledger: each customer's open items as of a date, which the
ledger's reconciliation checks against the receivables control account.

A customer's balance at R is what billing posted to its party on or before R: invoices
issued on or before R (not voided by then), less payments and credit notes dated on or
before R. Allocations move nothing between the two sides — they only say which invoice
a payment settles — so this equals the invoices' amounts due less what payments and
credits have not allocated, once everything is dated on or before R.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from decimal import Decimal

from django.db.models import Q, Sum

from billing.models import CreditNote, Invoice, InvoiceStatus, Payment
from billing.models.customers import party_of
from ledger.models import Company

ZERO = Decimal(0)


def open_items_by_party(company: Company, as_of: datetime.date) -> dict[str, Decimal]:
    """``{"customer:42": balance}``, debit-positive, customers with a balance only."""
    balances: dict[int, Decimal] = defaultdict(Decimal)
    invoiced = (
        Invoice.objects.filter(company=company, issue_date__lte=as_of, finalised_at__isnull=False)
        .filter(
            Q(status__in=(InvoiceStatus.OPEN, InvoiceStatus.PAID)) | Q(status=InvoiceStatus.VOID, void_date__gt=as_of)
        )
        .values("customer_id")
        .annotate(total=Sum("total"))
        .values_list("customer_id", "total")
    )
    for customer_id, total in invoiced:
        balances[customer_id] += total
    for model in (Payment, CreditNote):
        field = "amount" if model is Payment else "total"
        rows = (
            model.objects.filter(company=company, date__lte=as_of)
            .values("customer_id")
            .annotate(total=Sum(field))
            .values_list("customer_id", "total")
        )
        for customer_id, total in rows:
            balances[customer_id] -= total
    return {party_of(customer_id): balance for customer_id, balance in balances.items() if balance}
