"""generate_invoices and backfill_invoices: what they print, what they write, their errors."""

from __future__ import annotations

import datetime
import io
import re
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from billing.models import Invoice, InvoiceRun
from ledger.models import Period, PeriodStatus
from ledger.services import periods as ledger_periods
from notifications.models import Delivery, Notification
from scheduling.models import JobRun
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def run(name: str, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def school(company, fees, enrol):
    for n in range(3):
        customer = CustomerFactory(company=company, name=f"Pupil {n}")
        enrol(customer, fees["maths"])
        enrol(customer, fees["english"])
    return company


def test_generate_invoices_prints_what_it_created_and_a_progress_line(school):
    out, err = run("generate_invoices", "--period", "2026-01", "--cadence", "monthly", "--company", "acme")

    assert out.strip() == (
        "acme 2026-01 monthly: created 3 invoices for 6 enrolments (GBP 11460.00), skipped 0 already there, notified 3"
    )
    assert err.strip() == "[" + "#" * 30 + "] 1/1 acme 2026-01 monthly"
    assert Invoice.objects.count() == 3
    record = InvoiceRun.objects.get()
    assert (record.created, record.enrolments, record.notified, record.job_run) == (3, 6, 3, None)


def test_generate_invoices_twice_skips_what_is_there(school):
    run("generate_invoices", "--period", "2026-01")

    out, _ = run("generate_invoices", "--period", "2026-01")

    assert "created 0 invoices" in out and "skipped 3 already there" in out
    assert Invoice.objects.count() == 3


def test_a_dry_run_prints_what_it_would_create_and_writes_nothing(school):
    out, _ = run("generate_invoices", "--period", "2026-01", "--dry-run", "--no-consolidate")

    assert "would create 6 invoices for 6 enrolments" in out
    assert not Invoice.objects.exists()
    assert not InvoiceRun.objects.exists()


def test_draft_leaves_unnumbered_invoices(school):
    run("generate_invoices", "--period", "2026-01", "--draft")

    assert set(Invoice.objects.values_list("status", "number")) == {("draft", "")}


def test_backfill_bills_every_period_oldest_first_and_notifies_nobody(school, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        out, err = run("backfill_invoices", "--from", "2025-09", "--to", "2026-01", "--inline")

    lines = out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        f"acme {month} monthly" for month in ("2025-09", "2025-10", "2025-11", "2025-12", "2026-01")
    ]
    assert all(line.endswith("skipped 0 already there, notified 0") for line in lines)
    assert "BILLING_MONTHLY_INVOICES 2025-09-01 to 2026-01-01: created 5 run(s)" in err
    assert Invoice.objects.count() == 15
    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    assert numbers == [f"INV-{n:06d}" for n in range(1, 16)]
    first = Invoice.objects.get(number="INV-000001")
    assert first.period_start == datetime.date(2025, 9, 1)
    # the customers' notices are on record, sent to nobody
    issued = Notification.objects.filter(kind="invoice_issued")
    assert issued.count() == 15
    assert set(Delivery.objects.filter(notification__in=issued).values_list("status", flat=True)) == {"suppressed"}
    runs = JobRun.objects.filter(job__code="BILLING_MONTHLY_INVOICES").order_by("slot_at")
    assert [(r.run_key, r.trigger, r.notify) for r in runs] == [
        (month, "backfill", False) for month in ("2025-09", "2025-10", "2025-11", "2025-12", "2026-01")
    ]


def test_backfill_dry_run_lists_the_slots_and_makes_nothing(school):
    out, err = run("backfill_invoices", "--from", "2025-11", "--to", "2026-01", "--dry-run")

    assert out.strip().splitlines() == [
        f"{key} (company {school.pk}): create" for key in ("2025-11", "2025-12", "2026-01")
    ]
    assert "would create 3 run(s)" in err
    assert not Invoice.objects.exists()
    assert not JobRun.objects.exists()


def test_backfill_leaves_a_billed_period_s_run_alone(school, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run("backfill_invoices", "--from", "2025-12", "--to", "2025-12", "--inline")

        out, err = run("backfill_invoices", "--from", "2025-11", "--to", "2026-01", "--inline")

    assert [line.split(":")[0] for line in out.strip().splitlines()] == ["acme 2025-11 monthly", "acme 2026-01 monthly"]
    assert "created 2 run(s), re-ran 0 failed, left 1 succeeded" in err
    assert Invoice.objects.count() == 9


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("generate_invoices", ["--period", "2026-13"], "'2026-13' is not a monthly period"),
        ("generate_invoices", ["--period", "January"], "'January' is not a monthly period; write YYYY-MM"),
        ("generate_invoices", ["--period", "2026-01", "--cadence", "weekly"], "not a weekly period"),
        ("generate_invoices", ["--period", "2026-01", "--company", "nobody"], "no company 'nobody'"),
        ("generate_invoices", ["--period", "2026-01", "--chunk-size", "0"], "--chunk-size must be at least 1"),
        ("backfill_invoices", ["--from", "2026-02", "--to", "2026-01"], "--to 2026-01 is before --from 2026-02"),
        ("backfill_invoices", ["--from", "1900-01", "--to", "2026-01"], "is more than JOB_BACKFILL_MAX_RUNS (400)"),
        ("backfill_invoices", ["--from", "2026-01", "--to", "2026-01", "--chunk-size", "0"], "chunk_size: must be at"),
    ],
)
def test_bad_arguments_end_with_one_readable_line(school, command, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        run(command, *args)

    assert not Invoice.objects.exists()


def test_a_closed_period_refuses_the_run_without_writing(school):
    year = ledger_periods.open_year(school, datetime.date(2026, 1, 1))
    Period.objects.filter(fiscal_year=year, start_date=datetime.date(2026, 1, 1)).update(status=PeriodStatus.CLOSED)

    with pytest.raises(CommandError, match=r"acme 2026-01 monthly: refused after 0 invoices: .*closed"):
        run("generate_invoices", "--period", "2026-01")

    assert not Invoice.objects.exists()


def test_weekly_quarterly_and_annual_periods(company, fees, enrol):
    enrol(CustomerFactory(company=company), fees["club"])

    out, _ = run("generate_invoices", "--period", "2026-W03", "--cadence", "weekly")

    invoice = Invoice.objects.get()
    assert (invoice.period_start, invoice.period_end) == (datetime.date(2026, 1, 12), datetime.date(2026, 1, 18))
    assert invoice.total == Decimal("50.00")
    assert "acme 2026-W03 weekly: created 1 invoices" in out
