"""The sales-ledger jobs of seed 004, per company on the ``receivables`` queue.

SL_STATEMENT_GENERATION runs on the last day of each month at 08:00 (a calendar rule:
crontab cannot say "last day") and sends each customer with a balance their statement as
of the business date. SL_CREDIT_LIMIT_CHECK runs daily at 08:00 and tells staff of each
customer newly over their credit limit (and the customer too, with ``notify_customer``).
Operators change the times in the admin (the schedules) and the settings in the jobs'
default parameters.

Both are idempotent: statements are unique per customer and date and sent under a key per
statement, breaches are one open per customer and told once; so a re-run or a retry of a
run that stopped half-way does nothing twice.
"""

from __future__ import annotations

from receivables.jobs.common import QUEUE, RECEIVABLES_RETRY
from receivables.services import credit, statements
from scheduling.calendar import CalendarRule, Cron, RuleKind
from scheduling.choices import Scope
from scheduling.registry import Param, job

COMMON = {"queue": QUEUE, "scope": Scope.COMPANY, "retry": RECEIVABLES_RETRY}


@job(
    "SL_STATEMENT_GENERATION",
    title="Customer statements",
    schedule=Cron(minute="0", hour="8"),
    rule=CalendarRule(kind=RuleKind.LAST_DAY_OF_MONTH),
    params={
        "only_with_balance": Param(
            bool, default=True, help="only customers with a balance; off: also those whose open items net to nothing"
        ),
        "batch_size": Param(
            int,
            default=statements.BATCH_SIZE,
            min=1,
            max=statements.MAX_BATCH_SIZE,
            help="statements written and sent per transaction",
        ),
    },
    atomic=False,  # each batch commits its statements with their notifications
    **COMMON,
)
def statement_generation(ctx) -> None:
    """Stores each customer's statement as of the business date — open items, aging
    summary and balance — and sends it to the customer once."""
    made = statements.generate(
        ctx.company,
        ctx.business_date,
        only_with_balance=ctx.params["only_with_balance"],
        batch_size=ctx.params["batch_size"],
        job_run=ctx.run.pk,
        log=ctx.info,
        progress=ctx.progress,
    )
    for reason in made.skipped:
        ctx.warning(reason)
    ctx.count(processed=made.customers, created=made.created, skipped=made.existing)
    ctx.result = {
        "date": ctx.business_date.isoformat(),
        "statements": made.customers,
        "created": made.created,
        "already_there": made.existing,
        "notified": made.notified,
        "balance": str(made.balance),
    }


@job(
    "SL_CREDIT_LIMIT_CHECK",
    title="Credit limit check",
    schedule=Cron(minute="0", hour="8"),
    params={
        "notify_customer": Param(bool, default=False, help="also tell the customer when they go over their limit"),
    },
    **COMMON,
)
def credit_limit_check(ctx) -> None:
    """Finds the customers whose balance at the business date is over their credit limit,
    tells staff of each newly over once (and the customer, when set), and clears the
    breaches of those back within it."""
    checked = credit.check(
        ctx.company,
        ctx.business_date,
        notify_customer=ctx.params["notify_customer"],
        job_run=ctx.run.pk,
        log=ctx.info,
    )
    ctx.count(processed=checked.limited, created=checked.opened, skipped=checked.over - checked.opened)
    ctx.result = {
        "date": ctx.business_date.isoformat(),
        "customers_with_limit": checked.limited,
        "over": checked.over,
        "opened": checked.opened,
        "cleared": checked.cleared,
        "notified": checked.notified,
    }
