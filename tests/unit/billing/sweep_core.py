"""The URL sweep's objects for billing's customers, fee structures, enrolments, invoices
and invoice runs (tests/unit/test_url_sweep.py): each makes one of the owner's company's
and returns its id."""

from __future__ import annotations

import datetime

JAN = datetime.date(2026, 1, 1)


def customer(company) -> int:
    from tests.factories import CustomerFactory

    return CustomerFactory(company=company).pk


def fee_structure(company) -> int:
    from tests.factories import FeeStructureFactory

    return FeeStructureFactory(company=company).pk


def enrolment(company) -> int:
    from tests.factories import EnrolmentFactory

    return EnrolmentFactory(company=company).pk


def draft_invoice(company) -> int:
    from billing.models import Invoice
    from tests.factories import CustomerFactory

    return Invoice.objects.create(
        company=company,
        customer=CustomerFactory(company=company),
        issue_date=JAN,
        due_date=JAN,
        currency=company.base_currency,
    ).pk


def job_run(company) -> int:
    from scheduling.models import JobDefinition, JobRun

    run, _ = JobRun.objects.get_or_create(
        job=JobDefinition.objects.get(code="BILLING_MONTHLY_INVOICES"),
        run_key="2026-01",
        company=company,
        defaults={"business_date": JAN, "slot_at": "2026-01-01T00:00Z", "trigger": "api"},
    )
    return run.pk


def invoice_run(company) -> int:
    from billing.models import InvoiceRun

    return InvoiceRun.objects.create(
        company=company,
        job_run_id=job_run(company),
        cadence="monthly",
        period_start=JAN,
        period_end=datetime.date(2026, 1, 31),
        issue_date=JAN,
    ).pk


OWNED = {
    "api/v1/billing/customers/<pk>": customer,
    "api/v1/billing/customers/<pk>/invoices": customer,
    "api/v1/billing/fee-structures/<pk>": fee_structure,
    "api/v1/billing/enrolments/<pk>": enrolment,
    "api/v1/billing/invoices/<pk>": draft_invoice,
    "api/v1/billing/invoices/<pk>/finalise": draft_invoice,
    "api/v1/billing/invoices/<pk>/document": draft_invoice,
    "api/v1/billing/invoice-runs/<pk>": invoice_run,
    "api/v1/billing/invoice-run-requests/<pk>": job_run,
}
