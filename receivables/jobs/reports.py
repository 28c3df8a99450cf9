"""Aged receivables report runs, on the ``receivables`` queue.

RECEIVABLES_AGED_REPORT makes one requested report (API or admin): it runs once per report,
keyed by the report's id, and is not scheduled. SL_AGED_DEBTORS (seed 004; weekly, Sunday
08:00) stores each company's aged debtors from its own books as an Excel report, so the
week's figures can be read later exactly as they were.
"""

from __future__ import annotations

from receivables import engine
from receivables.jobs.common import QUEUE, RECEIVABLES_RETRY
from receivables.models import AgedReport, ReportFormat, ReportSource
from receivables.services import reports
from scheduling.calendar import Cron
from scheduling.choices import Overlap, Scope
from scheduling.registry import Param, job


@job(
    "RECEIVABLES_AGED_REPORT",
    title="Aged receivables report",
    queue=QUEUE,
    params={"report": Param(int, min=1, help="the aged report to make")},
    retry=RECEIVABLES_RETRY,
    atomic=False,
    time_limit=3300,
    overlap=Overlap.QUEUE,  # each report is a run of its own: a second one waits for a slot, never skipped
    max_concurrent=2,
)
def aged_report(ctx) -> None:
    """Ages the documents a requested report covers (from the cache where nothing changed)
    and keeps its JSON or Excel output for download."""
    report = AgedReport.objects.filter(pk=ctx.params["report"]).select_related("document_set").first()
    if report is None:
        raise LookupError(f"aged report {ctx.params['report']} does not exist")
    built = reports.make(report, progress=ctx.progress)
    ctx.count(processed=len(built.report.rows), skipped=len(built.failures))
    ctx.result = {
        "report": report.pk,
        "rows": len(built.report.rows),
        "parts_from_cache": built.cached,
        "failures": len(built.failures),
    }
    for failure in built.failures:
        ctx.warning(f"{failure.get('tenant') or failure.get('company')}: {failure['error']}")


@job(
    "SL_AGED_DEBTORS",
    title="Aged debtors",
    queue=QUEUE,
    scope=Scope.COMPANY,
    schedule=Cron(minute="0", hour="8", day_of_week="0"),
    params={
        "periods": Param(int, default=4, min=1, max=24, help="aging periods"),
        "period_type": Param(str, default="month", choices=("day", "week", "month"), help="period type"),
        "period_length": Param(int, default=1, min=1, max=366, help="days or weeks a period"),
        "age_by": Param(str, default="due", choices=("due", "invoice"), help="age by due or invoice date"),
    },
    retry=RECEIVABLES_RETRY,
    atomic=False,
)
def aged_debtors(ctx) -> None:
    """Stores the company's aged debtors as of the business date from its own books, with
    the reconciliation to the receivables control account."""
    params = ctx.params
    report = AgedReport.objects.filter(job_run=ctx.run).first()
    if report is None:
        options = engine.Options(
            ctx.business_date, params["periods"], params["period_type"], params["period_length"], params["age_by"]
        )
        report = reports.create(options=options, source=ReportSource.DB, fmt=ReportFormat.XLSX, companies=[ctx.company])
        AgedReport.objects.filter(pk=report.pk).update(job_run=ctx.run)
    built = reports.make(report)
    ctx.count(processed=len(built.report.rows), created=1)
    line = built.reconciliation[0] if built.reconciliation else {}
    ctx.result = {"report": report.pk, "rows": len(built.report.rows), "reconciliation": line}
    if line and not line["reconciled"]:
        ctx.warning(
            f"aged debtors {line['report_total']} differ from the receivables control {line['control_balance']}",
            **line,
        )
