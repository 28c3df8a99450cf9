"""The invoice-run jobs through the job layer: their declarations, schedules, keys and
failures."""

from __future__ import annotations

import datetime
from datetime import UTC

import pytest
from django.core.cache import cache

from billing.jobs.invoicing import JOBS
from billing.models import Invoice, InvoiceRun
from ledger.models import Period, PeriodStatus
from ledger.services import periods as ledger_periods
from scheduling.choices import RunStatus
from scheduling.models import JobDefinition, JobSchedule
from scheduling.services import execution, runs
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

RUN_JOBS = sorted(JOBS.values())


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()


@pytest.fixture
def pupils(company, fees, enrol):
    customers = [CustomerFactory(company=company) for _ in range(5)]
    for customer in customers:
        enrol(customer, fees["maths"])
        enrol(customer, fees["club"])
    return customers


def request(code: str, company, day: datetime.date, **params):
    run, created = runs.request_run(
        JobDefinition.objects.get(code=code), company=company, business_date=day, params=params or None
    )
    return run, created


def test_the_invoice_runs_are_per_company_jobs_on_the_billing_queue():
    found = JobDefinition.objects.filter(code__in=RUN_JOBS).order_by("code")

    assert [(d.code, d.scope, d.queue, d.key_by) for d in found] == [
        ("BILLING_ANNUAL_INVOICES", "company", "billing", "year"),
        ("BILLING_MONTHLY_INVOICES", "company", "billing", "month"),
        ("BILLING_QUARTERLY_INVOICES", "company", "billing", "quarter"),
        ("BILLING_WEEKLY_INVOICES", "company", "billing", "week"),
    ]


def test_the_default_schedules_follow_seed_002():
    def fires(code: str, count: int) -> list[datetime.datetime]:
        schedule = JobSchedule.objects.get(job__code=code)
        return schedule.next_fires(datetime.datetime(2026, 1, 1, 4, 0, tzinfo=UTC), count=count)

    at_three = datetime.time(3, 0, tzinfo=UTC)
    assert fires("BILLING_MONTHLY_INVOICES", 2) == [
        datetime.datetime.combine(datetime.date(2026, 2, 1), at_three),
        datetime.datetime.combine(datetime.date(2026, 3, 1), at_three),
    ]
    assert fires("BILLING_WEEKLY_INVOICES", 2) == [
        datetime.datetime.combine(datetime.date(2026, 1, 5), at_three),  # Mondays
        datetime.datetime.combine(datetime.date(2026, 1, 12), at_three),
    ]
    assert fires("BILLING_QUARTERLY_INVOICES", 2) == [
        datetime.datetime.combine(datetime.date(2026, 4, 1), at_three),
        datetime.datetime.combine(datetime.date(2026, 7, 1), at_three),
    ]
    assert fires("BILLING_ANNUAL_INVOICES", 1) == [datetime.datetime.combine(datetime.date(2027, 1, 1), at_three)]


def test_a_run_bills_the_period_its_business_date_is_in_and_is_keyed_by_it(company, pupils):
    run, _ = request("BILLING_MONTHLY_INVOICES", company, datetime.date(2026, 1, 15))
    run = execution.run_here(run)

    assert (run.status, run.run_key, run.created, run.processed) == (RunStatus.SUCCEEDED, "2026-01", 5, 5)
    record = InvoiceRun.objects.get(job_run=run)
    assert (record.period_start, record.period_end, record.created, record.notified) == (
        datetime.date(2026, 1, 1),
        datetime.date(2026, 1, 31),
        5,
        5,
    )
    assert set(Invoice.objects.values_list("cadence", flat=True)) == {"monthly"}


def test_a_second_request_for_the_period_is_the_same_run_and_a_rerun_creates_nothing(company, pupils):
    run, _ = request("BILLING_MONTHLY_INVOICES", company, datetime.date(2026, 1, 1))
    run = execution.run_here(run)

    again, created = request("BILLING_MONTHLY_INVOICES", company, datetime.date(2026, 1, 20))
    rerun = execution.run_here(runs.rerun(again))

    assert (created, again.pk) == (False, run.pk)
    assert (rerun.status, rerun.created, rerun.skipped) == (RunStatus.SUCCEEDED, 0, 5)
    assert Invoice.objects.count() == 5


def test_the_weekly_run_bills_weekly_enrolments_in_chunks(company, pupils):
    run, _ = request("BILLING_WEEKLY_INVOICES", company, datetime.date(2026, 1, 14), chunk_size=2)
    run = execution.run_here(run)

    assert (run.status, run.run_key, run.chunks_total, run.created) == (RunStatus.SUCCEEDED, "2026-W03", 3, 5)
    assert set(Invoice.objects.values_list("period_start", flat=True)) == {datetime.date(2026, 1, 12)}


def test_unconsolidated_and_draft_runs_follow_their_parameters(company, fees, enrol, customer):
    enrol(customer, fees["maths"])
    enrol(customer, fees["english"])

    run, _ = request("BILLING_MONTHLY_INVOICES", company, datetime.date(2026, 2, 1), consolidate=False, finalise=False)
    run = execution.run_here(run)

    assert run.created == 2
    assert set(Invoice.objects.values_list("status", "consolidated")) == {("draft", False)}


def test_a_closed_ledger_period_fails_the_run_at_once_and_writes_nothing(company, pupils):
    year = ledger_periods.open_year(company, datetime.date(2026, 1, 1))
    Period.objects.filter(fiscal_year=year, start_date=datetime.date(2026, 1, 1)).update(status=PeriodStatus.CLOSED)

    run, _ = request("BILLING_MONTHLY_INVOICES", company, datetime.date(2026, 1, 1))
    run = execution.run_here(run)

    assert run.status == RunStatus.FAILED
    assert "closed" in run.error
    assert run.attempts == 1  # a refused posting is not retried
    assert not Invoice.objects.exists()


def test_a_bad_parameter_is_refused_when_requested(company):
    from scheduling.registry import ParamError

    with pytest.raises(ParamError, match="chunk_size"):
        request("BILLING_MONTHLY_INVOICES", company, datetime.date(2026, 1, 1), chunk_size=0)
