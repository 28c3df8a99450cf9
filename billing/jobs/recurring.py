"""Recurring templates (seed 001): RECURRING_GENERATE, hourly.

One run an hour for the whole platform, not one per company: the run reads only the
templates with something due (across companies, in keyset batches) and most hours finds
few, where a per-company job would record a run per company every hour to find nothing.
Each company's templates still generate on the company's own business date, and a company
whose books refuse its batch holds up no other (see billing.services.recurring).

A run's writes commit batch by batch, so a run stopped half-way keeps what it generated
and the next finds the rest; the history rows' unique (template, occurrence date) is what
makes a second run in the same hour, a redelivered message or two workers at once generate
nothing twice. Occurrences the books refused fail the run, after everything else is
generated, so the failure alerts and names the templates to mend.
"""

from __future__ import annotations

from billing.jobs.common import BILLING_RETRY, QUEUE
from billing.services import recurring
from scheduling.calendar import Cron
from scheduling.choices import KeyBy, Scope
from scheduling.registry import JobError, Param, job

REPORTED_ERRORS = 50  # templates named in the run's log; the count covers the rest


@job(
    "RECURRING_GENERATE",
    title="Recurring templates: generate what falls due",
    queue=QUEUE,
    schedule=Cron(minute="0"),
    key_by=KeyBy.HOUR,
    scope=Scope.GLOBAL,
    retry=BILLING_RETRY,
    atomic=False,  # batch by batch, see the module docstring
    time_limit=3300,
    params={
        "batch": Param(int, default=recurring.BATCH, min=1, max=5000, help="templates per transaction"),
        "per_template": Param(
            int, default=recurring.PER_TEMPLATE, min=1, max=1000, help="occurrences one template catches up per run"
        ),
    },
)
def generate(ctx) -> None:
    """Generates, for every active template with auto_generate, each occurrence dated up
    to its company's today plus the template's days_ahead (missed ones caught up), and
    completes templates at their end date or maximum. Paused, cancelled and completed
    templates are left alone."""
    outcome = recurring.generate_due(batch=ctx.params["batch"], per_template=ctx.params["per_template"])
    ctx.count(processed=outcome.templates, created=outcome.created, skipped=outcome.skipped, failed=outcome.failed)
    ctx.result = {
        "templates": outcome.templates,
        "created": outcome.created,
        "skipped": outcome.skipped,
        "failed": outcome.failed,
        "completed": outcome.completed,
        "invoices": len(outcome.invoices),
        "journal_entries": len(outcome.entries),
        "notified": outcome.notified,
    }
    ctx.info(
        f"generated {outcome.created} occurrences of {outcome.templates} templates",
        skipped=outcome.skipped,
        completed=outcome.completed,
    )
    for template_id, reasons in sorted(outcome.errors.items())[:REPORTED_ERRORS]:
        ctx.error(f"template {template_id} refused: {' '.join(reasons)}", template=template_id)
    if outcome.errors:
        ids = ", ".join(str(pk) for pk in sorted(outcome.errors)[:REPORTED_ERRORS])
        raise JobError(
            f"{outcome.failed} occurrences of {len(outcome.errors)} templates were refused (templates {ids})"
        )
