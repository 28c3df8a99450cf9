"""Fiscal years and their periods: opening them, closing, reopening and locking."""

from __future__ import annotations

import datetime
from calendar import monthrange
from collections.abc import Iterable

from django.db import connection, transaction
from django.utils import timezone

from ledger.errors import LedgerStateError, PostingError
from ledger.models import Company, EntryStatus, FiscalYear, JournalEntry, Period, PeriodBalance, PeriodStatus

PERIODS_PER_YEAR = 12
# The dates the books accept: wide enough for any real history and plan, narrow enough
# that a typo (2206) is refused rather than opening a fiscal year, and year arithmetic
# never runs off the calendar.
EARLIEST = datetime.date(1900, 1, 1)
LATEST = datetime.date(2999, 12, 31)
LISTED_DRAFTS = 5  # named in a refused close, so the operator can find them


def add_months(day: datetime.date, months: int, *, anchor_day: int | None = None) -> datetime.date:
    """``day`` moved by whole months, keeping ``anchor_day`` (or its own day) where the month has it."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    wanted = anchor_day or day.day
    return datetime.date(year, month + 1, min(wanted, monthrange(year, month + 1)[1]))


def year_name(start: datetime.date, end: datetime.date) -> str:
    return f"FY{start.year}" if start.year == end.year else f"FY{start.year}/{end.year % 100:02d}"


def period_bounds(year_start: datetime.date) -> list[tuple[datetime.date, datetime.date]]:
    """The twelve monthly periods of a year starting on ``year_start``; each ends the day
    before the next starts, so they tile the year with no gap."""
    starts = [add_months(year_start, n, anchor_day=year_start.day) for n in range(PERIODS_PER_YEAR + 1)]
    return [(starts[n], starts[n + 1] - datetime.timedelta(days=1)) for n in range(PERIODS_PER_YEAR)]


def open_year(company: Company, day: datetime.date) -> FiscalYear:
    """The fiscal year containing ``day`` with its periods, created when missing.

    Safe when two posters create the same year at once: rows are inserted with
    ignore-conflicts on their natural keys and read back.
    """
    start, end = company.fiscal_year_containing(day)
    year = FiscalYear.objects.filter(company=company, start_date=start).first()
    if year is not None:
        return year
    later_closed = Period.objects.for_company(company).exclude(status=PeriodStatus.OPEN).filter(start_date__gt=day)
    if later_closed.exists():
        raise PostingError({"date": [f"No fiscal year covers {day}, and later periods are already closed."]})
    FiscalYear.objects.bulk_create(
        [FiscalYear(company=company, name=year_name(start, end), start_date=start, end_date=end)],
        ignore_conflicts=True,
    )
    year = FiscalYear.objects.get(company=company, start_date=start)
    Period.objects.bulk_create(
        [
            Period(company=company, fiscal_year=year, number=n, start_date=first, end_date=last)
            for n, (first, last) in enumerate(period_bounds(start), start=1)
        ],
        ignore_conflicts=True,
    )
    return year


def periods_for(company: Company, days: Iterable[datetime.date]) -> dict[datetime.date, Period]:
    """The period of each date, opening fiscal years where none exists yet. Two queries
    when the years exist, however many dates."""
    days = set(days)
    if not days:
        return {}
    found = _periods_covering(company, min(days), max(days))
    missing = {day for day in days if _find(found, day) is None}
    if missing:
        for day in sorted(missing):
            open_year(company, day)
        found = _periods_covering(company, min(days), max(days))
    return {day: _find(found, day) for day in days}


def lock_for_posting(period_ids: Iterable[int]) -> dict[int, str]:
    """Current status of each period, share-locked on PostgreSQL so a close waits for
    postings in flight and no posting slips into a period as it closes. (SQLite runs one
    writer at a time, so the plain read is already current.)"""
    ids = sorted(set(period_ids))
    if not ids:
        return {}
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, status FROM {Period._meta.db_table} WHERE id = ANY(%s) ORDER BY id FOR SHARE", [ids]
            )
            return dict(cursor.fetchall())
    return dict(Period.objects.filter(pk__in=ids).values_list("pk", "status"))


def close_period(period: Period, *, user=None) -> bool:
    """Close an open period and store its closing balances. False when it was already closed.

    Refused while an earlier period is open (balances build on the one before) or while
    draft entries remain in it.
    """
    with transaction.atomic():
        period = Period.objects.select_for_update().select_related("fiscal_year").get(pk=period.pk)
        if period.status != PeriodStatus.OPEN:
            return False
        earlier = Period.objects.filter(company_id=period.company_id, start_date__lt=period.start_date).open()
        first_open = earlier.order_by("start_date").first()
        if first_open is not None:
            raise LedgerStateError(f"Close {first_open.label} first: periods close in order.")
        drafts = JournalEntry.objects.filter(period=period, status=EntryStatus.DRAFT)
        count = drafts.count()
        if count:
            listed = ", ".join(f"JE{pk}" for pk in drafts.order_by("pk").values_list("pk", flat=True)[:LISTED_DRAFTS])
            more = ", …" if count > LISTED_DRAFTS else ""
            noun, pronoun = ("draft entry", "it") if count == 1 else ("draft entries", "them")
            raise LedgerStateError(
                f"{period.label} still has {count} {noun} ({listed}{more}); post or delete {pronoun} first."
            )
        period.status = PeriodStatus.CLOSED
        period.closed_at = timezone.now()
        period.closed_by = user
        period.save(update_fields=["status", "closed_at", "closed_by"])
        store_balances(period)
    return True


def reopen_period(period: Period) -> None:
    """Reopen a closed (not locked) period; its stored balances go, as they may change."""
    with transaction.atomic():
        period = Period.objects.select_for_update().get(pk=period.pk)
        if period.status == PeriodStatus.LOCKED:
            raise LedgerStateError(f"{period.label} is locked: its year is closed.")
        if period.status == PeriodStatus.OPEN:
            return
        later = Period.objects.filter(company_id=period.company_id, start_date__gt=period.start_date)
        last_closed = later.exclude(status=PeriodStatus.OPEN).order_by("-start_date").first()
        if last_closed is not None:
            raise LedgerStateError(f"Reopen {last_closed.label} first: periods reopen in reverse order.")
        PeriodBalance.objects.filter(period=period).delete()
        period.status = PeriodStatus.OPEN
        period.closed_at = None
        period.closed_by = None
        period.balances_at = None
        period.save(update_fields=["status", "closed_at", "closed_by", "balances_at"])


def store_balances(period: Period) -> int:
    """Write each account's movement in ``period`` and its balance at the period's end."""
    from ledger.services import balances

    opening = balances.balances_as_of(period.company, period.start_date - datetime.timedelta(days=1))
    moved = balances.line_movements(period.company, period.start_date, period.end_date)
    PeriodBalance.objects.filter(period=period).delete()
    rows = []
    for account_id in sorted(set(opening) | set(moved)):
        debit, credit = moved.get(account_id, (0, 0))
        closing = opening.get(account_id, 0) + debit - credit
        if debit or credit or closing:
            rows.append(
                PeriodBalance(
                    company_id=period.company_id,
                    period=period,
                    account_id=account_id,
                    debit=debit,
                    credit=credit,
                    closing=closing,
                )
            )
    PeriodBalance.objects.bulk_create(rows, batch_size=1000)
    period.balances_at = timezone.now()
    Period.objects.filter(pk=period.pk).update(balances_at=period.balances_at)
    return len(rows)


def restore_balances_from(period: Period) -> None:
    """Recompute stored balances of ``period`` and every later period that has them, after
    a posting into a closed period (only the year-end closing entry does that)."""
    stored = (
        Period.objects.filter(company_id=period.company_id, start_date__gte=period.start_date)
        .with_balances()
        .order_by("start_date")
    )
    for each in stored:
        store_balances(each)


def _periods_covering(company: Company, first: datetime.date, last: datetime.date) -> list[Period]:
    return list(
        Period.objects.for_company(company)
        .filter(start_date__lte=last, end_date__gte=first)
        .select_related("fiscal_year")
        .order_by("start_date")
    )


def _find(periods: list[Period], day: datetime.date) -> Period | None:
    for period in periods:
        if period.start_date <= day <= period.end_date:
            return period
    return None
