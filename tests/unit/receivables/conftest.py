"""Fixtures the receivables tests share: a company with books and a customer, invoices
made the way billing makes them, and a clean cache (aged rows are cached)."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.core.cache import cache

from billing.models import Invoice, InvoiceLine
from billing.services import finalising, settlement
from tests.factories import CustomerFactory

JAN = datetime.date(2026, 1, 1)


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()


@pytest.fixture
def books(company, chart):
    """The company's chart by code; invoices post to 1200, 4100 and 2200."""
    return chart


@pytest.fixture
def customer(company):
    return CustomerFactory(company=company, name="Amina Njoroge", email="amina@example.com")


@pytest.fixture
def make_invoice(company, customer, books):
    """``make_invoice(amount, *, issue=JAN, days=14, who=customer)``: a one-line invoice to
    4100, finalised (numbered and posted) as billing finalises one."""

    def make(amount="100.00", *, issue=JAN, days=14, who=None) -> Invoice:
        total = Decimal(amount)
        invoice = Invoice.objects.create(
            company=company,
            customer=who or customer,
            issue_date=issue,
            due_date=issue + datetime.timedelta(days=days),
            currency=company.base_currency,
            subtotal=total,
            tax=Decimal(0),
            total=total,
            due=total,
        )
        InvoiceLine.objects.create(
            invoice=invoice, description="Tuition", amount=total, tax=0, total=total, income_account=books["4100"]
        )
        finalising.finalise(company, [invoice.pk], notify=False)
        invoice.refresh_from_db()
        return invoice

    return make


@pytest.fixture
def owed(company, customer, make_invoice):
    """An invoice of 300.00 issued 1 January, due on the 15th, 100.00 of it paid on
    1 February: 200.00 owed, a month overdue at the end of February."""
    invoice = make_invoice("300.00", issue=JAN, days=14)
    settlement.record_payment(
        company,
        customer,
        date=datetime.date(2026, 2, 1),
        amount=Decimal("100.00"),
        allocations=[(invoice, Decimal("100.00"))],
    )
    return invoice
