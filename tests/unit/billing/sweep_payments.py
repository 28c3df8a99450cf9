"""The URL sweep's objects for payments, credit notes and voiding (tests/unit/test_url_sweep.py)."""

from __future__ import annotations

import datetime
from decimal import Decimal

DAY = datetime.date(2026, 11, 21)


def _customer(company):
    from ledger.services.chart import load_default_chart
    from tests.factories import CustomerFactory

    load_default_chart(company)
    return CustomerFactory(company=company)


def open_invoice(company) -> int:
    from billing.models import Invoice, InvoiceLine
    from billing.services import finalising
    from ledger.models import Account

    customer = _customer(company)
    total = Decimal("100.00")
    invoice = Invoice.objects.create(
        company=company, customer=customer, issue_date=DAY, due_date=DAY, currency=company.base_currency,
        subtotal=total, total=total, due=total,
    )  # fmt: skip
    sales = Account.objects.get(company=company, code="4100")
    InvoiceLine.objects.create(invoice=invoice, description="Fees", amount=total, total=total, income_account=sales)
    finalising.finalise(company, [invoice.pk], notify=False)
    return invoice.pk


def payment(company) -> int:
    from billing.services import settlement

    return settlement.record_payment(company, _customer(company), date=DAY, amount=Decimal("10.00")).pk


def credit_note(company) -> int:
    from billing.services import settlement

    return settlement.record_credit_note(company, _customer(company), date=DAY, subtotal=Decimal("10.00")).pk


OWNED = {
    "api/v1/billing/payments/<pk>": payment,
    "api/v1/billing/payments/<pk>/allocate": payment,
    "api/v1/billing/payments/<pk>/unallocate": payment,
    "api/v1/billing/credit-notes/<pk>": credit_note,
    "api/v1/billing/credit-notes/<pk>/allocate": credit_note,
    "api/v1/billing/credit-notes/<pk>/unallocate": credit_note,
    "api/v1/billing/invoices/<pk>/void": open_invoice,
}
