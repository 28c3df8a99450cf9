"""The invoice runs (seed 002), per company on the ``billing`` queue, at seed 002's times:
monthly on the 1st at 03:00, weekly on Monday at 03:00, quarterly on the 1st of January,
April, July and October, annually on 1 January.

Each run is keyed by its period (``2026-01``, ``2026-W03``, ``2026-Q1``, ``2026``), so a
second fire, a double click or an API call for the same period finds the run already
there. A run bills the period its business date falls in; asking for another period is
asking for the run whose business date is in it.
"""

from __future__ import annotations

import datetime

from billing.jobs.common import BILLING_RETRY, QUEUE
from billing.models import Cadence, InvoiceRun
from billing.services import invoicing, periods
from scheduling.calendar import Cron
from scheduling.choices import KeyBy, Scope
from scheduling.registry import Param, job

PARAMS = {
    "consolidate": Param(bool, default=True, help="one invoice per customer per period; off: one per enrolment"),
    "finalise": Param(bool, default=True, help="number, post and notify at once; off: leave drafts for review"),
    "issue_date": Param(datetime.date, default=None, help="default: the period's first day"),
    "chunk_size": Param(int, default=invoicing.CHUNK_CUSTOMERS, min=1, max=20_000, help="customers per chunk"),
}
COMMON = {"queue": QUEUE, "scope": Scope.COMPANY, "retry": BILLING_RETRY, "params": PARAMS, "time_limit": 3300}


def start(ctx, cadence: str) -> None:
    """Record the run and fan its customers out in keyset ranges."""
    params = ctx.params
    spec = invoicing.RunSpec.for_period(
        ctx.company,
        cadence,
        ctx.business_date,
        consolidate=params["consolidate"],
        finalise=params["finalise"],
        issue_date=params["issue_date"],
    )
    if spec.issue_date < spec.period_start - datetime.timedelta(days=366):
        ctx.warning(f"issue date {spec.issue_date} is over a year before the period")
    record, _ = InvoiceRun.objects.update_or_create(
        job_run_id=ctx.run.pk,
        defaults={
            "company": ctx.company,
            "cadence": cadence,
            "period_start": spec.period_start,
            "period_end": spec.period_end,
            "issue_date": spec.issue_date,
            "consolidate": spec.consolidate,
            "finalise": spec.finalise,
            "enrolments": 0,
            "created": 0,
            "skipped": 0,
            "notified": 0,
            "total": 0,
        },
    )
    ranges = list(invoicing.customer_ranges(ctx.company, params["chunk_size"]))
    ctx.result = {"period": periods.key(cadence, spec.period_start), "invoice_run": record.pk, "chunks": len(ranges)}
    ctx.info(f"billing {spec.label} for {ctx.company}: {len(ranges)} chunks", consolidate=spec.consolidate)
    ctx.fan_out({"first": first, "last": last, "record": record.pk} for first, last in ranges)


def bill_chunk(ctx, chunk: dict) -> None:
    record = InvoiceRun.objects.get(pk=chunk["record"])
    spec = invoicing.RunSpec(
        ctx.company,
        record.cadence,
        record.period_start,
        record.period_end,
        record.issue_date,
        record.consolidate,
        record.finalise,
    )
    outcome = invoicing.bill_range(spec, chunk["first"], chunk["last"])
    invoicing.record(record, outcome)
    ctx.count(processed=outcome.enrolments, created=outcome.created, skipped=outcome.skipped)


@job(
    "BILLING_MONTHLY_INVOICES",
    title="Monthly invoices",
    schedule=Cron(minute="0", hour="3", day_of_month="1"),
    key_by=KeyBy.MONTH,
    **COMMON,
)
def monthly(ctx) -> None:
    """Bills every monthly enrolment for the month of the business date."""
    start(ctx, Cadence.MONTHLY)


@job(
    "BILLING_WEEKLY_INVOICES",
    title="Weekly invoices",
    schedule=Cron(minute="0", hour="3", day_of_week="1"),
    key_by=KeyBy.WEEK,
    **COMMON,
)
def weekly(ctx) -> None:
    """Bills every weekly enrolment for the ISO week (Monday to Sunday) of the business date."""
    start(ctx, Cadence.WEEKLY)


@job(
    "BILLING_QUARTERLY_INVOICES",
    title="Quarterly invoices",
    schedule=Cron(minute="0", hour="3", day_of_month="1", month_of_year="1,4,7,10"),
    key_by=KeyBy.QUARTER,
    **COMMON,
)
def quarterly(ctx) -> None:
    """Bills every quarterly enrolment for the calendar quarter of the business date."""
    start(ctx, Cadence.QUARTERLY)


@job(
    "BILLING_ANNUAL_INVOICES",
    title="Annual invoices",
    schedule=Cron(minute="0", hour="3", day_of_month="1", month_of_year="1"),
    key_by=KeyBy.YEAR,
    **COMMON,
)
def annual(ctx) -> None:
    """Bills every annual enrolment for the calendar year of the business date."""
    start(ctx, Cadence.ANNUAL)


for spec in (monthly, weekly, quarterly, annual):
    spec.chunk(bill_chunk)

JOBS = {
    Cadence.MONTHLY: "BILLING_MONTHLY_INVOICES",
    Cadence.WEEKLY: "BILLING_WEEKLY_INVOICES",
    Cadence.QUARTERLY: "BILLING_QUARTERLY_INVOICES",
    Cadence.ANNUAL: "BILLING_ANNUAL_INVOICES",
}
