"""The General Ledger batch jobs (seed 004), per company, on the ``ledger`` queue.

Seed 004 schedules GL_DAILY_CLOSE daily at 23:00 and GL_PERIOD_CLOSE on the last day of
the month at 22:00; the period close waits for the daily close of the period's last day,
so in effect it runs after 23:00. The seed gives the year-end close no time and the
reports none at all; they run on the last day of the month after the period close
(year-end close, trial balance, budget variance) and nightly after the daily close
(reconciliation).

The month-end jobs are keyed by day, not by month: a run made by hand on the 10th (to
close last month late) must not take the slot of the month's own run on its last day.
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError

from ledger.errors import LedgerStateError
from ledger.models import Period
from ledger.services import closing, reports
from ledger.services.periods import EARLIEST, LATEST
from ledger.subledgers import reconcile
from scheduling.calendar import CalendarRule, Cron, RuleKind
from scheduling.choices import Scope
from scheduling.registry import JobError, Param, RetryPolicy, job

# Only what can pass is retried (a lost connection, a lock timeout): a refused posting, a
# period with drafts in it, bad data or a bug fails at once and alerts.
LEDGER_RETRY = RetryPolicy(
    max_retries=3,
    non_retryable=(
        ValidationError,
        LedgerStateError,
        IntegrityError,
        DataError,
        ArithmeticError,
        LookupError,
        TypeError,
        ValueError,
        AttributeError,
    ),
)
LAST_DAY = CalendarRule(kind=RuleKind.LAST_DAY_OF_MONTH)
COMMON = {"queue": "ledger", "scope": Scope.COMPANY, "retry": LEDGER_RETRY}


@job(
    "GL_DAILY_CLOSE",
    title="Daily GL close",
    schedule=Cron(minute="0", hour="23"),
    params={
        "stale_draft_days": Param(int, default=None, min=0, help="default: LEDGER_STALE_DRAFT_DAYS"),
        "stale_drafts": Param(
            str, default=None, choices=(closing.FLAG, closing.POST), help="default: LEDGER_STALE_DRAFT_ACTION"
        ),
    },
    atomic=False,  # each step commits on its own: drafts posted stay posted if the check then fails
    **COMMON,
)
def daily_close(ctx) -> None:
    """Checks the day's postings balance, posts or flags drafts older than a setting, and
    records the day's totals. Fails (and alerts) when a posted entry of the day does not
    balance."""
    days = ctx.params["stale_draft_days"]
    result = closing.close_day(
        ctx.company,
        ctx.business_date,
        stale_after_days=settings.LEDGER_STALE_DRAFT_DAYS if days is None else days,
        action=ctx.params["stale_drafts"] or settings.LEDGER_STALE_DRAFT_ACTION,
        log=ctx.log,
    )
    total = result.total
    ctx.count(processed=total.entries, created=len(result.posted), skipped=len(result.flagged))
    ctx.result = {
        "date": ctx.business_date.isoformat(),
        "entries": total.entries,
        "lines": total.lines,
        "debit": str(total.debit),
        "credit": str(total.credit),
        "balanced": total.balanced,
        "drafts_posted": result.posted,
        "drafts_flagged": result.flagged,
    }
    if result.unbalanced:
        raise JobError(f"posted entries that do not balance on {ctx.business_date}: {result.unbalanced[:20]}")


@job(
    "GL_PERIOD_CLOSE",
    title="GL period close",
    schedule=Cron(minute="0", hour="22"),
    rule=LAST_DAY,
    depends_on=["GL_DAILY_CLOSE"],
    **COMMON,
)
def period_close(ctx) -> None:
    """Closes, in order, every open period that ended on or before the business date and
    stores its closing balances. Refuses while drafts remain in a period."""
    closed = closing.close_periods_through(ctx.company, ctx.business_date)
    for period in closed:
        ctx.info(f"closed {period.label}")
    if not closed:
        ctx.info(f"no open period ends on or before {ctx.business_date}")
    ctx.count(processed=len(closed))
    ctx.result = {"closed": [period.label for period in closed]}


@job(
    "GL_YEAR_END_CLOSE",
    title="GL year-end close",
    schedule=Cron(minute="30", hour="23"),
    rule=LAST_DAY,
    depends_on=["GL_PERIOD_CLOSE"],
    **COMMON,
)
def year_end_close(ctx) -> None:
    """Closes every fiscal year that ended on or before the business date: income and
    expense into retained earnings with one balanced entry, then the year is locked.
    Runs monthly after that month's period close and does nothing in a month no year ends."""
    closed = closing.close_years_through(ctx.company, ctx.business_date)
    for each in closed:
        ctx.info(f"closed {each.year.name}: profit {each.profit}", entry=each.entry.pk if each.entry else None)
    ctx.count(processed=len(closed), created=sum(1 for each in closed if each.created))
    ctx.result = {
        "closed": [
            {"year": each.year.name, "entry": each.entry.pk if each.entry else None, "profit": str(each.profit)}
            for each in closed
        ]
    }


@job(
    "GL_TRIAL_BALANCE",
    title="GL trial balance snapshot",
    schedule=Cron(minute="45", hour="23"),
    rule=LAST_DAY,
    # after the year-end close too, so a year-end month's snapshot includes its closing entry
    depends_on=["GL_PERIOD_CLOSE", "GL_YEAR_END_CLOSE"],
    params={
        "date_from": Param(
            datetime.date, default=None, min=EARLIEST, max=LATEST, help="default: the start of the fiscal year"
        ),
        "date_to": Param(datetime.date, default=None, min=EARLIEST, max=LATEST, help="default: the business date"),
    },
    **COMMON,
)
def trial_balance(ctx) -> None:
    """Stores a trial balance snapshot, by default for the fiscal year to date."""
    date_to = ctx.params["date_to"] or ctx.business_date
    date_from = ctx.params["date_from"] or ctx.company.fiscal_year_containing(date_to)[0]
    if date_from > date_to:
        raise JobError(f"date_from {date_from} is after date_to {date_to}")
    snapshot = reports.snapshot_trial_balance(ctx.company, date_from, date_to, run=ctx.run)
    ctx.count(processed=len(snapshot.rows), created=1)
    ctx.result = {
        "snapshot": snapshot.pk,
        "from": date_from.isoformat(),
        "to": date_to.isoformat(),
        "debit": str(snapshot.debit),
        "credit": str(snapshot.credit),
        "balanced": snapshot.balanced,
    }
    if not snapshot.balanced:
        raise JobError(f"the trial balance {date_from}..{date_to} does not balance")


@job(
    "GL_BUDGET_VARIANCE",
    title="GL budget against actual",
    schedule=Cron(minute="45", hour="23"),
    rule=LAST_DAY,
    depends_on=["GL_PERIOD_CLOSE"],
    **COMMON,
)
def budget_variance(ctx) -> None:
    """Budget against actual per account for each period of the fiscal year up to the
    business date: variance and percentage."""
    start, _end = ctx.company.fiscal_year_containing(ctx.business_date)
    periods = list(
        Period.objects.for_company(ctx.company).filter(start_date__gte=start, start_date__lte=ctx.business_date)
    )
    rows = reports.budget_variance(ctx.company, periods)
    ctx.count(processed=len(rows))
    ctx.result = {
        "periods": [period.label for period in periods],
        "rows": len(rows),
        "unfavourable": sum(1 for row in rows if not row.favourable),
    }


@job(
    "GL_ACCOUNT_RECONCILIATION",
    title="GL control account reconciliation",
    schedule=Cron(minute="30", hour="23"),
    depends_on=["GL_DAILY_CLOSE"],
    **COMMON,
)
def account_reconciliation(ctx) -> None:
    """Each control account's balance against the total of its sub-ledger's parties, with
    the parties whose balances differ. Warns, and does not fail, on a difference: the
    difference is the finding."""
    results = reconcile(ctx.company, ctx.business_date)
    for each in results:
        if each.reconciled:
            ctx.info(f"{each.account.code} {each.account.name} reconciled with {each.subledger}")
        else:
            ctx.warning(
                f"{each.account.code} {each.account.name} differs from {each.subledger} by {each.difference}",
                parties=each.differences_count,
            )
    ctx.count(processed=len(results), failed=sum(1 for each in results if not each.reconciled))
    ctx.result = {
        each.account.code: {"difference": str(each.difference), "parties": each.differences_count} for each in results
    }
