"""The outage scenarios' steps that need the platform's code, run as processes of their own
against the private PostgreSQL and Redis (tests/integration/test_outages.py sets
DATABASE_URL, CELERY_BROKER_URL and REDIS_URL for them):

    python -m tests.outages setup CUSTOMERS SLOW_SECONDS   # prints the company's id
    python -m tests.outages request COMPANY CHUNK_SIZE      # prints the invoice run's id
    python -m tests.outages probe                          # a probe run; prints its id
    python -m tests.outages verify COMPANY RUN              # exits 1 naming what is wrong

``setup`` slows each statement inserting invoices by SLOW_SECONDS (a trigger), so a run is
still under way when the test takes a service away."""

from __future__ import annotations

import datetime
import json
import sys

import django

JAN = datetime.date(2026, 1, 1)
JOB = "BILLING_MONTHLY_INVOICES"


def setup(customers: int, slow: float) -> int:
    from django.db import connection

    from billing.models import Invoice
    from tests.billing_checks import make_school

    company = make_school(customers)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            CREATE FUNCTION test_slow_invoice_insert() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_sleep({float(slow)}); RETURN NULL; END $$;
            CREATE TRIGGER test_slow_invoice_insert BEFORE INSERT ON {Invoice._meta.db_table}
                FOR EACH STATEMENT EXECUTE FUNCTION test_slow_invoice_insert();
            """
        )
    return company.pk


def request(company_id: int, chunk_size: int) -> int:
    from ledger.models import Company
    from scheduling.models import JobDefinition
    from scheduling.services import runs

    run, _ = runs.request_run(
        JobDefinition.objects.get(code=JOB),
        company=Company.objects.get(pk=company_id),
        business_date=JAN,
        params={"chunk_size": chunk_size},
    )
    return run.pk


def probe() -> int:
    from scheduling.models import JobDefinition
    from scheduling.services import runs

    run, _ = runs.request_run(JobDefinition.objects.get(code="SYS_PROBE"), business_date=JAN)
    return run.pk


def verify(company_id: int, run_id: int) -> dict:
    from billing.models import InvoiceRun
    from ledger.models import Company
    from scheduling.models import JobRun
    from tests.billing_checks import assert_billed_once, assert_one_invoice_per_customer

    company = Company.objects.get(pk=company_id)
    invoices = assert_billed_once(company)
    assert_one_invoice_per_customer(company, invoices)
    run = JobRun.objects.get(pk=run_id)
    record = InvoiceRun.objects.get(job_run=run)
    assert (record.created, record.skipped) == (len(invoices), 0), (record.created, record.skipped)
    assert (run.created, run.chunks_done) == (len(invoices), run.chunks_total), (run.created, run.chunks_done)
    return {
        "invoices": len(invoices),
        "attempts": run.attempts,
        "alerts": sorted(run.alerts.values_list("cause", flat=True)),
        "warnings": list(run.logs.filter(level__gte=30).values_list("message", flat=True)[:20]),
    }


def main(argv: list[str]) -> int:
    django.setup()
    command, *args = argv
    match command:
        case "setup":
            print(setup(int(args[0]), float(args[1])))  # noqa: T201 - the test reads it
        case "request":
            print(request(int(args[0]), int(args[1])))  # noqa: T201
        case "probe":
            print(probe())  # noqa: T201
        case "verify":
            try:
                print(json.dumps(verify(int(args[0]), int(args[1]))))  # noqa: T201
            except AssertionError as exc:
                print(f"not billed right: {exc!r}")  # noqa: T201
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
