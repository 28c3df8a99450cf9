"""A school to bill and the checks that a run billed it right, for the tests that run
invoice runs on real processes (tests/integration, and the outage scenarios' own processes,
tests/outages.py): each enrolment component on one invoice line, numbers with no gap, each
invoice posted by its own balanced entry and notified once."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from django.db.models import Sum

from billing.models import Customer, Enrolment, FeeComponent, Invoice, InvoiceLine, InvoiceStatus
from ledger.models import Company, JournalEntry, JournalLine
from ledger.services.chart import load_default_chart
from notifications.models import Notification
from tests.factories import (
    CompanyFactory,
    CustomerFactory,
    EnrolmentFactory,
    FeeComponentFactory,
    FeeStructureFactory,
)


def make_school(customers: int) -> Company:
    """A company with the default chart and ``customers`` customers, each enrolled since
    September on Maths (two components, 16 % tax), English and the school bus."""
    company = CompanyFactory()
    load_default_chart(company)
    maths = FeeStructureFactory(company=company, code="MATH", name="Maths", amount=Decimal("2000.00"), tax_rate=16)
    FeeComponentFactory(fee_structure=maths, position=0, name="Tuition", amount=Decimal("1800.00"))
    FeeComponentFactory(fee_structure=maths, position=1, name="Materials", amount=Decimal("200.00"))
    english = FeeStructureFactory(company=company, code="ENG", name="English", amount=Decimal("1500.00"))
    bus = FeeStructureFactory(company=company, code="BUS", name="School bus", amount=Decimal("300.00"))
    people = Customer.objects.bulk_create(CustomerFactory.build(company=company) for _ in range(customers))
    Enrolment.objects.bulk_create(
        EnrolmentFactory.build(company=company, customer=customer, fee_structure=fee)
        for customer in people
        for fee in (maths, english, bus)
    )
    return company


def assert_billed_once(company) -> list[Invoice]:
    """Each enrolment component on one invoice line; numbers from INV-000001 with no gap;
    each invoice open, posted by its own balanced entry, and notified once."""
    invoices = list(Invoice.objects.filter(company=company).order_by("number"))
    assert [invoice.number for invoice in invoices] == [f"INV-{n:06d}" for n in range(1, len(invoices) + 1)]
    assert {invoice.status for invoice in invoices} == {InvoiceStatus.OPEN}

    components = Counter(
        FeeComponent.objects.filter(fee_structure__company=company).values_list("fee_structure", flat=True)
    )
    expected = Counter(
        {
            (enrolment, position): 1
            for enrolment, fee in Enrolment.objects.filter(company=company).values_list("pk", "fee_structure")
            for position in range(components[fee] or 1)
        }
    )
    billed = Counter(InvoiceLine.objects.filter(invoice__company=company).values_list("enrolment", "component"))
    assert billed == expected

    entries = dict(
        JournalEntry.objects.filter(company=company, source="billing", status="posted").values_list("source_id", "pk")
    )
    assert {invoice.journal_entry_id for invoice in invoices} == set(entries.values())
    assert all(invoice.journal_entry_id == entries[f"invoice:{invoice.pk}"] for invoice in invoices)
    lines = JournalLine.objects.filter(entry__in=entries.values())
    assert not lines.values("entry").annotate(balance=Sum("amount")).exclude(balance=0).exists()
    receivable = dict(lines.filter(party__startswith="customer:").values_list("entry", "debit"))
    assert receivable == {invoice.journal_entry_id: invoice.total for invoice in invoices}

    notices = Notification.objects.filter(company=company, kind="invoice_issued")
    assert Counter(notices.values_list("dedupe_key", flat=True)) == Counter(
        f"invoice_issued:{invoice.pk}" for invoice in invoices
    )
    assert Counter(notices.values_list("recipient_key", flat=True)) == Counter(
        f"billing.customer:{invoice.customer_id}" for invoice in invoices
    )
    return invoices


def assert_one_invoice_per_customer(company, invoices: list[Invoice]) -> None:
    customers = set(Customer.objects.filter(company=company).values_list("pk", flat=True))
    assert Counter(invoice.customer_id for invoice in invoices) == Counter(customers)
    assert all(invoice.consolidated for invoice in invoices)
