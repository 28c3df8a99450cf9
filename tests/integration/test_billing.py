"""Invoice runs across real processes: a monthly run fanned out to workers, re-run and asked
for again, racing the command line's run of the same month (in the same mode and in the
other), and losing a worker to kill -9 mid-chunk. Whatever happens, each enrolment is billed
once, the numbers run INV-000001 to INV-N without a gap, and each invoice is posted and
notified once.

The dates are explicit (the run's business date, the enrolments' start), so nothing here
depends on the day the tests run."""

from __future__ import annotations

import datetime
import re
import subprocess
import time
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Count

from billing.models import Invoice, InvoiceLine, InvoiceRun
from ledger.models import JournalEntry
from notifications.models import Delivery, DeliveryStatus, Notification
from scheduling.choices import RunStatus
from scheduling.models import JobDefinition, JobRun
from scheduling.services import runs
from tests.billing_checks import assert_billed_once, assert_one_invoice_per_customer, make_school
from tests.helpers import wait_for
from tests.processes import ROOT, manage

pytestmark = pytest.mark.django_db(transaction=True)

JAN = datetime.date(2026, 1, 1)
JOB = "BILLING_MONTHLY_INVOICES"
COMMAND = "billing-command"
LINES = 4  # a customer's consolidated invoice: Maths' two components, English, the bus
# Short limits so Redis hands a dead worker's unacknowledged chunk on within seconds.
SHORT = {
    "CELERY_TASK_SOFT_TIME_LIMIT": "8",
    "CELERY_TASK_TIME_LIMIT": "9",
    "CELERY_VISIBILITY_TIMEOUT": "10",
    "NOTIFY_RETRY_BACKOFF_MAX": "5",  # below the visibility timeout, as the settings insist
}


@pytest.fixture
def school():
    """``school(n)``: a company with the default chart and n customers, each enrolled since
    September on Maths (two components, 16 % tax), English and the school bus."""
    return make_school


@pytest.fixture
def slow_inserts():
    """``slow_inserts(seconds, nth=None, application=None)``: each statement inserting
    invoices (one a range) sleeps ``seconds`` inside its transaction -- only the ``nth``, or
    only those of connections of that ``application_name``, when given. Returns how many
    such statements have begun, counted by a sequence, which no transaction hides."""
    table = Invoice._meta.db_table

    def slow(seconds: float, *, nth: int | None = None, application: str | None = None):
        which = ["true"]
        if nth is not None:
            which.append(f"n = {int(nth)}")
        if application is not None:
            which.append(f"current_setting('application_name') = '{application}'")
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                CREATE SEQUENCE test_invoice_inserts;
                CREATE FUNCTION test_slow_invoice_insert() RETURNS trigger LANGUAGE plpgsql AS $$
                DECLARE n bigint := nextval('test_invoice_inserts');
                BEGIN
                    IF {" AND ".join(which)} THEN
                        PERFORM pg_sleep({float(seconds)});
                    END IF;
                    RETURN NULL;
                END $$;
                CREATE TRIGGER test_slow_invoice_insert BEFORE INSERT ON {table}
                    FOR EACH STATEMENT EXECUTE FUNCTION test_slow_invoice_insert();
                """
            )
        return begun

    def begun() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM test_invoice_inserts")
            return cursor.fetchone()[0]

    yield slow
    with connection.cursor() as cursor:
        cursor.execute(
            f"DROP TRIGGER IF EXISTS test_slow_invoice_insert ON {table}; "
            "DROP FUNCTION IF EXISTS test_slow_invoice_insert(); DROP SEQUENCE IF EXISTS test_invoice_inserts;"
        )


def request(company, **params) -> JobRun:
    run, created = runs.request_run(
        JobDefinition.objects.get(code=JOB), company=company, business_date=JAN, params=params
    )
    assert created
    return run


def finished(run: JobRun, timeout: float = 60) -> JobRun:
    def done():
        run.refresh_from_db()
        return run.is_finished

    wait_for(done, timeout=timeout, what=f"run {run.pk} to finish")
    return run


def generate_invoices(env: dict[str, str], company, *options: str) -> subprocess.Popen:
    """The command line's run of January for the company, in a process of its own whose
    database connection is named ``COMMAND`` (libpq reads PGAPPNAME)."""
    argv = manage("generate_invoices", "--period", "2026-01", "--company", company.slug, *options)
    return subprocess.Popen(
        argv,
        cwd=ROOT,
        env={**env, "PGAPPNAME": COMMAND},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def created_by(output: tuple[str, str]) -> int:
    """Invoices a finished command created, from its report line."""
    return int(re.search(r": created (\d+) invoices", output[0]).group(1))


def snapshot(company) -> dict[str, int]:
    return {
        "invoices": Invoice.objects.filter(company=company).count(),
        "lines": InvoiceLine.objects.filter(invoice__company=company).count(),
        "entries": JournalEntry.objects.filter(company=company).count(),
        "notifications": Notification.objects.filter(company=company).count(),
        "deliveries": Delivery.objects.filter(company=company).count(),
    }


# --- One run on the workers -------------------------------------------------------------------


def test_a_monthly_run_on_a_worker_invoices_each_customer_once_numbered_posted_and_notified(start_worker, school):
    company = school(300)
    worker = start_worker(concurrency=2)

    run = finished(request(company, chunk_size=50))

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert (run.chunks_total, run.chunks_done) == (6, 6)
    assert (run.processed, run.created, run.skipped) == (900, 300, 0)
    invoices = assert_billed_once(company)
    assert_one_invoice_per_customer(company, invoices)
    assert {invoice.total for invoice in invoices} == {Decimal("4120.00")}  # 2000 + 320 tax + 1500 + 300
    record = InvoiceRun.objects.get(job_run=run)
    assert (record.created, record.enrolments, record.notified, record.total) == (
        300,
        900,
        300,
        Decimal("1236000.00"),
    )
    # the same worker delivers: one email per customer, each printed once
    emails = Delivery.objects.filter(company=company, channel="email")
    wait_for(lambda: emails.filter(status=DeliveryStatus.SENT).count() == 300, timeout=60, what="every email sent")
    assert set(emails.values_list("attempts", flat=True)) == {1}
    printed = Counter(re.findall(r"^Subject: Invoice (INV-\d{6}) from ", worker.output(), re.MULTILINE))
    assert printed == Counter(invoice.number for invoice in invoices)


def test_a_rerun_and_a_second_request_for_the_month_create_nothing(start_worker, school):
    company = school(100)
    start_worker(concurrency=2)
    run = finished(request(company, chunk_size=50))
    assert run.status == RunStatus.SUCCEEDED, run.error
    before = snapshot(company)

    again, created = runs.request_run(JobDefinition.objects.get(code=JOB), company=company, business_date=JAN)
    assert (again.pk, created, again.status) == (run.pk, False, RunStatus.SUCCEEDED)
    rerun = finished(runs.rerun(run))

    assert rerun.status == RunStatus.SUCCEEDED, rerun.error
    assert (rerun.created, rerun.skipped, rerun.processed) == (0, 100, 0)
    assert snapshot(company) == before
    record = InvoiceRun.objects.get(job_run=run)
    assert (record.created, record.skipped, record.notified) == (0, 100, 0)
    assert_one_invoice_per_customer(company, assert_billed_once(company))
    assert JobRun.objects.filter(job__code=JOB, company=company).count() == 1


# --- Two runs of the month at once ------------------------------------------------------------


def test_the_job_and_the_command_billing_the_month_at_once_make_one_invoice_per_customer(
    start_worker, platform_env, school, slow_inserts
):
    company = school(300)
    # The command bills a range every few tenths of a second, and starts first; the job, asked
    # for once the command's first range is in, catches it up with its two processes, and
    # the two race over the same ranges' billing keys.
    slow_inserts(0.3, application=COMMAND)
    start_worker(concurrency=2, queues="billing")  # deliveries wait: the race is not held up behind emails

    command = generate_invoices(platform_env, company, "--chunk-size", "15")
    wait_for(lambda: Invoice.objects.filter(company=company).exists(), timeout=30, what="the command's first range")
    run = request(company, chunk_size=15)
    output = command.communicate(timeout=120)
    run = finished(run, timeout=90)

    assert command.returncode == 0, output[1]
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert created_by(output) > 0 and run.created > 0
    assert created_by(output) + run.created == 300
    invoices = assert_billed_once(company)
    assert_one_invoice_per_customer(company, invoices)


def test_a_consolidated_and_an_unconsolidated_run_at_once_bill_each_enrolment_once(
    start_worker, platform_env, school, slow_inserts
):
    company = school(300)
    slow_inserts(0.3, application=COMMAND)  # as above: the command first and slow, the job catching it up
    start_worker(concurrency=2, queues="billing")  # deliveries wait: the race is not held up behind emails

    command = generate_invoices(platform_env, company, "--chunk-size", "15", "--no-consolidate")
    wait_for(lambda: Invoice.objects.filter(company=company).exists(), timeout=30, what="the command's first range")
    run = request(company, chunk_size=15)
    # A range both billed at once fails in the loser on the lines' unique constraint: the
    # job's chunk retries and finds it billed; the command stops and is run again, as its
    # message says.
    output, attempts = command.communicate(timeout=120), 1
    created = 0
    while command.returncode != 0:
        assert "run again to finish" in output[1], output[1]
        created += int(re.search(r"\((\d+) invoices created\)", output[1]).group(1))
        assert attempts < 5
        command = generate_invoices(platform_env, company, "--chunk-size", "15", "--no-consolidate")
        output, attempts = command.communicate(timeout=120), attempts + 1
    created += created_by(output)
    run = finished(run, timeout=120)

    assert run.status == RunStatus.SUCCEEDED, run.error
    invoices = assert_billed_once(company)
    own = [invoice for invoice in invoices if not invoice.consolidated]
    consolidated = [invoice for invoice in invoices if invoice.consolidated]
    assert len(own) == created > 0
    assert len(consolidated) == run.created > 0
    # a customer is billed one way or the other, never both
    shapes: dict[int, list[tuple[bool, int]]] = {}
    for customer, whole, lines in (
        Invoice.objects.filter(company=company).annotate(n=Count("lines")).values_list("customer", "consolidated", "n")
    ):
        shapes.setdefault(customer, []).append((whole, lines))
    assert len(shapes) == 300
    assert all(sorted(shape) in ([(True, LINES)], [(False, 1), (False, 1), (False, 2)]) for shape in shapes.values())


# --- kill -9 mid-chunk ------------------------------------------------------------------------


def test_kill_9_of_a_worker_mid_chunk_loses_nothing_and_bills_nothing_twice(start_worker, school, slow_inserts):
    company = school(400)
    begun = slow_inserts(5, nth=3)
    first = start_worker(env=SHORT)
    run = request(company, chunk_size=50)
    wait_for(lambda: begun() >= 3, timeout=30, what="the third chunk to start inserting")
    # two chunks committed; the third is asleep inside its transaction, before its invoices
    assert JobRun.objects.get(pk=run.pk).chunks_done == 2
    assert Invoice.objects.filter(company=company).count() == 100

    first.kill()
    time.sleep(11)  # past the visibility timeout: Redis hands the unacknowledged chunk on
    start_worker(env=SHORT)
    run = finished(run, timeout=90)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert (run.chunks_total, run.chunks_done) == (8, 8)
    assert (run.processed, run.created, run.skipped) == (1200, 400, 0)
    invoices = assert_billed_once(company)
    assert_one_invoice_per_customer(company, invoices)
    assert InvoiceRun.objects.get(job_run=run).created == 400
