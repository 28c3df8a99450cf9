"""The GL close: the day, the period and the year."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import Round
from django.utils import timezone

from ledger.errors import LedgerStateError, PostingError
from ledger.models import (
    Account,
    AccountRole,
    Company,
    DailyTotal,
    FiscalYear,
    JournalEntry,
    JournalLine,
    Period,
    PeriodStatus,
    Source,
)
from ledger.models.accounts import PROFIT_AND_LOSS
from ledger.services import balances, periods, posting

ZERO = Decimal(0)
FLAG = "flag"
POST = "post"
Log = Callable[..., None]


def _quiet(message: str, level: str = "info", **data) -> None:
    pass


@dataclass
class DayClosed:
    total: DailyTotal
    unbalanced: list[int] = field(default_factory=list)
    posted: list[int] = field(default_factory=list)
    flagged: list[int] = field(default_factory=list)


def close_day(
    company: Company, day: datetime.date, *, stale_after_days: int, action: str = FLAG, log: Log = _quiet
) -> DayClosed:
    """Check the day's posted entries balance, deal with drafts older than
    ``stale_after_days`` (flag them, or post the valid ones and flag the rest), and record
    the day's totals. Each step commits on its own, so a failure leaves what was done."""
    result = DayClosed(total=None)  # type: ignore[arg-type]
    cutoff = timezone.now() - datetime.timedelta(days=stale_after_days)
    stale = JournalEntry.objects.for_company(company).drafts().filter(created_at__lt=cutoff, date__lte=day)
    if action == POST:
        for draft in stale.order_by("pk"):
            try:
                posting.post_draft(draft)
            except PostingError as exc:
                reason = "; ".join(message for messages in exc.message_dict.values() for message in messages)
                _flag(JournalEntry.objects.filter(pk=draft.pk), f"Could not be posted: {reason}"[:300])
                result.flagged.append(draft.pk)
                log(f"stale draft JE{draft.pk} could not be posted: {reason}", "warning")
            else:
                result.posted.append(draft.pk)
        if result.posted:
            log(f"posted {len(result.posted)} stale drafts", "info", entries=result.posted[:100])
    else:
        pending = stale.filter(flagged_at__isnull=True)
        result.flagged = list(pending.values_list("pk", flat=True))
        _flag(pending, f"Draft older than {stale_after_days} days.")
        if result.flagged:
            log(
                f"flagged {len(result.flagged)} drafts older than {stale_after_days} days",
                "warning",
                entries=result.flagged[:100],
            )

    lines = JournalLine.objects.filter(company=company, posted=True, date=day)
    # Rounded in SQL: SQLite sums decimals as floats, and -3.6E-12 is not an unbalanced entry.
    entry_totals = lines.values("entry").annotate(total=Round(Sum("amount"), company.minor_units))
    result.unbalanced = list(entry_totals.exclude(total=0).values_list("entry", flat=True))
    totals = lines.aggregate(
        entries=Count("entry", distinct=True),
        lines=Count("pk"),
        debit=Sum("amount", filter=Q(amount__gt=0)),
        credit=Sum("amount", filter=Q(amount__lt=0)),
    )
    debit = balances.in_minor_units(totals["debit"], company)
    credit = balances.in_minor_units(-(totals["credit"] or ZERO), company)
    result.total, _ = DailyTotal.objects.update_or_create(
        company=company,
        date=day,
        defaults={
            "entries": totals["entries"],
            "lines": totals["lines"],
            "debit": debit,
            "credit": credit,
            "balanced": not result.unbalanced and debit == credit,
            "stale_drafts": stale.count(),  # still drafts after this close: the ones to look at
            "recorded_at": timezone.now(),
        },
    )
    return result


def _flag(drafts, reason: str) -> None:
    drafts.update(flagged_at=timezone.now(), flag_reason=reason)


def close_periods_through(company: Company, day: datetime.date, *, user=None) -> list[Period]:
    """Close, in order, every open period that ended on or before ``day``."""
    due = Period.objects.for_company(company).open().filter(end_date__lte=day).order_by("start_date")
    closed = []
    for period in due:
        if periods.close_period(period, user=user):
            closed.append(period)
    return closed


@dataclass
class YearClosed:
    year: FiscalYear
    entry: JournalEntry | None
    created: bool
    profit: Decimal


def close_year(year: FiscalYear) -> YearClosed:
    """Zero every income and expense account into retained earnings with one balanced
    closing entry on the year's last day, then lock the year and its periods.

    Idempotent: a locked year returns its closing entry, and the entry's source id
    (``year-end:<start date>``) makes a replay post nothing. Refused while an earlier
    year is unlocked, a period of this one is open, or no retained earnings account exists.
    """
    company = year.company
    source_id = f"year-end:{year.start_date.isoformat()}"
    with transaction.atomic():
        year = FiscalYear.objects.select_for_update().get(pk=year.pk)
        existing = JournalEntry.objects.filter(company=company, source=Source.SYSTEM, source_id=source_id).first()
        if year.status == PeriodStatus.LOCKED:
            return YearClosed(year, existing, created=False, profit=_profit(existing))
        earlier = FiscalYear.objects.filter(company=company, start_date__lt=year.start_date).exclude(
            status=PeriodStatus.LOCKED
        )
        first = earlier.order_by("start_date").first()
        if first is not None:
            raise LedgerStateError(f"Close {first.name} first: years close in order.")
        # Locked, so a period cannot be reopened (and posted into) while its year closes.
        year_periods = list(year.periods.select_for_update().order_by("start_date"))
        still_open = [period for period in year_periods if period.status == PeriodStatus.OPEN]
        if still_open:
            labels = ", ".join(period.label for period in still_open)
            raise LedgerStateError(f"{year.name} has open periods: {labels}. Close them first.")
        retained = Account.objects.for_company(company).with_role(AccountRole.RETAINED_EARNINGS).first()
        if retained is None:
            raise LedgerStateError("No account has the retained earnings role; give one that role first.")
        pl_accounts = list(
            Account.objects.for_company(company).filter(type__in=PROFIT_AND_LOSS).values_list("pk", flat=True)
        )
        pl = {pk: b for pk, b in balances.balances_as_of(company, year.end_date, pl_accounts).items() if b}
        created = False
        if pl and existing is None:
            lines = [
                posting.Line(account=pk, credit=b, description="Closed to retained earnings")
                if b > 0
                else posting.Line(account=pk, debit=-b, description="Closed to retained earnings")
                for pk, b in sorted(pl.items())
            ]
            net = sum(pl.values(), ZERO)  # debit-positive: a loss leaves a debit to carry
            if net:
                side = {"debit": net} if net > 0 else {"credit": -net}
                lines.append(posting.Line(account=retained, description=f"{year.name} result", **side))
            entry = posting.Entry(
                date=year.end_date,
                lines=lines,
                reference=f"Year-end close {year.name}",
                memo=f"Income and expense for {year.name} closed to retained earnings.",
                source=Source.SYSTEM,
                source_id=source_id,
            )
            batch = posting.post_closing(company, entry)
            created = bool(batch.created)
            existing = JournalEntry.objects.get(pk=(batch.created or batch.existing)[0])
            periods.restore_balances_from(year_periods[-1])
        now = timezone.now()
        year.status = PeriodStatus.LOCKED
        year.closed_at = now
        year.save(update_fields=["status", "closed_at"])
        year.periods.update(status=PeriodStatus.LOCKED)
    return YearClosed(year, existing, created=created, profit=_profit(existing))


def close_years_through(company: Company, day: datetime.date) -> list[YearClosed]:
    """Close, in order, every unlocked fiscal year that ended on or before ``day``."""
    due = FiscalYear.objects.for_company(company).exclude(status=PeriodStatus.LOCKED).filter(end_date__lte=day)
    return [close_year(year) for year in due.order_by("start_date")]


def _profit(entry: JournalEntry | None) -> Decimal:
    """The year's profit from its closing entry: what was credited to retained earnings."""
    if entry is None:
        return ZERO
    retained = entry.lines.filter(account__role=AccountRole.RETAINED_EARNINGS).aggregate(total=Sum("amount"))
    return balances.in_minor_units(-(retained["total"] or ZERO), entry.company)
