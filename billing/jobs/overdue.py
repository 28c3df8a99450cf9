"""The overdue check and dunning, per company on the ``billing`` queue.

BILLING_OVERDUE_CHECK (seed 000; daily at 00:30) records a notice for each overdue
invoice's highest dunning level reached; SL_OVERDUE_REMINDERS (seed 004; daily at 09:00,
after the check of the same business date) sends them, charging the levels' fees and
interest. Operators change the times in the admin (the schedules) and the batch sizes in
the jobs' default parameters.

Neither runs in one transaction: each batch commits on its own, and both are idempotent
(notices are unique per invoice and level, fee invoices per billing key, notifications per
dedupe key), so a run that failed half-way is retried or re-run without doing anything
twice.
"""

from __future__ import annotations

from billing.jobs.common import BILLING_RETRY, QUEUE
from billing.services import dunning, overdue
from scheduling.calendar import Cron
from scheduling.choices import Scope
from scheduling.registry import Param, job

COMMON = {"queue": QUEUE, "scope": Scope.COMPANY, "retry": BILLING_RETRY, "atomic": False}


@job(
    "BILLING_OVERDUE_CHECK",
    title="Overdue invoice check",
    schedule=Cron(minute="30", hour="0"),
    params={
        "batch_size": Param(
            int, default=overdue.BATCH_SIZE, min=1, max=overdue.MAX_BATCH_SIZE, help="invoices per batch"
        ),
    },
    **COMMON,
)
def overdue_check(ctx) -> None:
    """Finds the open invoices due before the business date with something due, and
    records a notice of the highest dunning level each has reached, once per invoice and
    level (a company without levels: one notice per invoice)."""
    checked = overdue.check(
        ctx.company, ctx.business_date, batch_size=ctx.params["batch_size"], log=ctx.info, progress=ctx.progress
    )
    ctx.count(processed=checked.processed, created=checked.created, skipped=checked.skipped)
    ctx.result = {"date": ctx.business_date.isoformat(), "overdue": checked.processed, "notices": checked.created}


@job(
    "SL_OVERDUE_REMINDERS",
    title="Overdue reminders",
    schedule=Cron(minute="0", hour="9"),
    depends_on=["BILLING_OVERDUE_CHECK"],
    params={
        "batch_size": Param(
            int, default=dunning.BATCH_SIZE, min=1, max=dunning.MAX_BATCH_SIZE, help="notices per batch"
        ),
    },
    **COMMON,
)
def overdue_reminders(ctx) -> None:
    """Sends each pending overdue notice to the customer once, charging its level's fee
    and interest on a dunning invoice posted to the ledger; a notice whose invoice was
    settled first is cancelled."""
    sent = dunning.send_reminders(
        ctx.company, ctx.business_date, batch_size=ctx.params["batch_size"], log=ctx.info, progress=ctx.progress
    )
    ctx.count(processed=sent.processed, created=sent.sent, skipped=sent.cancelled + sent.superseded)
    ctx.result = {
        "date": ctx.business_date.isoformat(),
        "sent": sent.sent,
        "cancelled": sent.cancelled,
        "superseded": sent.superseded,
        "fee_invoices": sent.charged,
        "fees": str(sent.fees),
        "interest": str(sent.interest),
        "notified": sent.notified,
    }
