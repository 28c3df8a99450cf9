"""Invoice runs: consolidation on and off, idempotency, numbering, posting, notifying."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest

from billing.models import Invoice, InvoiceLine, InvoiceRun, InvoiceStatus
from billing.services import invoicing
from billing.services.invoicing import RunSpec
from ledger.models import JournalLine
from notifications.models import Notification
from tests.factories import CustomerFactory
from tests.unit.billing.conftest import JAN

pytestmark = pytest.mark.django_db


def monthly(company, **options) -> RunSpec:
    return RunSpec.for_period(company, "monthly", JAN, **options)


def test_a_consolidated_run_makes_one_invoice_per_customer_with_a_line_per_component(company, fees, enrol, customer):
    enrol(customer, fees["maths"])
    enrol(customer, fees["english"])

    outcome = invoicing.generate(monthly(company))

    assert (outcome.created, outcome.skipped, outcome.enrolments, outcome.notified) == (1, 0, 2, 1)
    invoice = Invoice.objects.get()
    assert invoice.consolidated and invoice.status == InvoiceStatus.OPEN
    assert invoice.number == "INV-000001"
    assert (invoice.subtotal, invoice.tax, invoice.total, invoice.due) == (
        Decimal("3500.00"),
        Decimal("320.00"),
        Decimal("3820.00"),
        Decimal("3820.00"),
    )
    assert [line.description for line in invoice.lines.all()] == ["Maths: Tuition", "Maths: Materials", "English"]
    assert invoice.due_date == datetime.date(2026, 1, 15)
    assert set(invoice.enrolments.values_list("fee_structure__code", flat=True)) == {"MATH", "ENG"}


def test_a_run_posts_receivables_income_and_tax(company, fees, enrol, customer, books):
    enrol(customer, fees["maths"])

    invoicing.generate(monthly(company))

    invoice = Invoice.objects.get()
    lines = {
        (line.account.code, line.party): line.amount for line in JournalLine.objects.filter(entry=invoice.journal_entry)
    }
    assert lines == {
        ("1200", f"customer:{customer.pk}"): Decimal("2320.00"),
        ("4100", ""): Decimal("-2000.00"),
        ("2200", ""): Decimal("-320.00"),
    }


def test_without_consolidation_each_enrolment_gets_its_own_invoice(company, fees, enrol, customer):
    enrol(customer, fees["maths"])
    enrol(customer, fees["english"])

    outcome = invoicing.generate(monthly(company, consolidate=False))

    assert outcome.created == 2
    assert sorted(Invoice.objects.values_list("number", flat=True)) == ["INV-000001", "INV-000002"]
    assert not Invoice.objects.filter(consolidated=True).exists()


def test_an_enrolment_that_does_not_consolidate_is_billed_apart(company, fees, enrol, customer):
    enrol(customer, fees["maths"])
    enrol(customer, fees["english"], consolidate=False)

    invoicing.generate(monthly(company))

    assert sorted(Invoice.objects.values_list("consolidated", "subtotal")) == [
        (False, Decimal("1500.00")),
        (True, Decimal("2000.00")),
    ]


def test_rerun_creates_no_duplicate_invoices(company, fees, enrol, customer):
    enrol(customer, fees["maths"])
    invoicing.generate(monthly(company))

    again = invoicing.generate(monthly(company))
    other_mode = invoicing.generate(monthly(company, consolidate=False))

    assert (again.created, again.skipped) == (0, 1)
    assert (other_mode.created, other_mode.skipped) == (0, 1)
    assert Invoice.objects.count() == 1
    assert Notification.objects.filter(kind="invoice_issued").count() == 1


def test_a_new_enrolment_after_the_run_gets_a_supplementary_invoice(company, fees, enrol, customer):
    enrol(customer, fees["maths"])
    invoicing.generate(monthly(company))
    enrol(customer, fees["english"])

    outcome = invoicing.generate(monthly(company))

    assert outcome.created == 1
    assert Invoice.objects.count() == 2
    assert InvoiceLine.objects.filter(enrolment__fee_structure__code="ENG").count() == 1


def test_enrolments_outside_the_period_and_other_cadences_are_not_billed(company, fees, enrol, customer):
    enrol(customer, fees["maths"], start_date=datetime.date(2026, 2, 1))
    enrol(customer, fees["english"], start_date=datetime.date(2025, 9, 1), end_date=datetime.date(2025, 12, 31))
    enrol(customer, fees["club"])
    CustomerFactory(company=company, active=False)

    outcome = invoicing.generate(monthly(company))

    assert outcome.created == 0
    assert not Invoice.objects.exists()


def test_a_dry_run_writes_nothing_and_counts_what_it_would_create(company, fees, enrol, customer):
    enrol(customer, fees["maths"])
    enrol(CustomerFactory(company=company), fees["english"])

    outcome = invoicing.generate(monthly(company), dry_run=True)

    assert (outcome.created, outcome.enrolments, outcome.total) == (2, 2, Decimal("3820.00"))
    assert not Invoice.objects.exists()


def test_numbers_are_gapless_across_chunks(company, fees, enrol):
    for _ in range(7):
        enrol(CustomerFactory(company=company), fees["english"])

    invoicing.generate(monthly(company), size=3)

    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    assert numbers == [f"INV-{n:06d}" for n in range(1, 8)]


def test_drafts_are_left_when_the_run_does_not_finalise(company, fees, enrol, customer):
    enrol(customer, fees["maths"])

    outcome = invoicing.generate(monthly(company, finalise=False))

    invoice = Invoice.objects.get()
    assert (invoice.status, invoice.number, invoice.journal_entry) == (InvoiceStatus.DRAFT, "", None)
    assert outcome.notified == 0


def test_a_range_costs_the_same_number_of_queries_for_two_customers_or_thirty(company, fees, enrol):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_to_bill(count: int) -> int:
        customers = [CustomerFactory(company=company) for _ in range(count)]
        for customer in customers:
            enrol(customer, fees["maths"])
            enrol(customer, fees["english"])
        with CaptureQueriesContext(connection) as captured:
            outcome = invoicing.bill_range(monthly(company), customers[0].pk, customers[-1].pk)
        assert outcome.created == count
        return len(captured)

    queries_to_bill(1)  # the first finalising creates the number sequence and caches the content type
    assert queries_to_bill(3) == queries_to_bill(30)


def test_the_job_records_its_run(company, fees, enrol, customer):
    from scheduling.models import JobDefinition
    from scheduling.services import execution, runs

    enrol(customer, fees["maths"])
    definition = JobDefinition.objects.get(code="BILLING_MONTHLY_INVOICES")

    run, _ = runs.request_run(definition, company=company, business_date=datetime.date(2026, 1, 1))
    run = execution.run_here(run)

    record = InvoiceRun.objects.get()
    assert (record.period_start, record.created, record.notified) == (JAN, 1, 1)
    assert (run.status, run.run_key, run.created) == ("succeeded", "2026-01", 1)


def test_an_enrolment_invoiced_on_creation_is_left_out_of_the_periods_run(company, fees, enrol, customer):
    enrol(customer, fees["maths"])
    english = enrol(customer, fees["english"], start_date=datetime.date(2026, 1, 10), invoice_on_enrolment=True)

    first = invoicing.invoice_enrolment(english, on=datetime.date(2026, 1, 10))
    run = invoicing.generate(monthly(company))

    own = Invoice.objects.get(pk=first.invoices[0])
    assert (own.source, own.issue_date, own.subtotal, own.enrolment) == (
        "enrolment",
        datetime.date(2026, 1, 10),
        Decimal("1500.00"),
        english,
    )
    assert run.created == 1
    assert Invoice.objects.exclude(pk=own.pk).get().subtotal == Decimal("2000.00")


def test_the_invoice_issued_notice_carries_the_number_taken_after_it_was_written(company, fees, enrol, customer):
    enrol(customer, fees["maths"])

    invoicing.generate(monthly(company))

    invoice = Invoice.objects.get()
    notice = Notification.objects.get(kind="invoice_issued")
    assert notice.data["invoice_number"] == invoice.number == "INV-000001"
    assert (notice.dedupe_key, notice.recipient_key) == (
        f"invoice_issued:{invoice.pk}",
        f"billing.customer:{customer.pk}",
    )


def test_a_new_enrolment_after_an_earlier_one_left_the_run_still_gets_billed(company, fees, enrol, customer):
    enrol(customer, fees["maths"])
    invoicing.generate(monthly(company))
    fees["maths"].active = False  # the billed enrolment is no longer in the period's run
    fees["maths"].save()
    enrol(customer, fees["english"], start_date=datetime.date(2026, 1, 15))

    outcome = invoicing.generate(monthly(company))

    assert (outcome.created, outcome.skipped) == (1, 0)
    assert InvoiceLine.objects.filter(enrolment__fee_structure__code="ENG").count() == 1


def test_the_invoice_issued_letter_shows_the_total_in_the_currencys_places(company, fees, enrol, customer):
    enrol(customer, fees["maths"])

    invoicing.generate(monthly(company))

    assert Notification.objects.get().data["total"] == "2320.00"
