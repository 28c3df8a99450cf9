"""Billing periods of each cadence, and how commands and the API name them."""

from __future__ import annotations

import datetime
import re
from calendar import monthrange

from billing.models import Cadence

PATTERNS = {
    Cadence.MONTHLY: (re.compile(r"^(\d{4})-(\d{2})$"), "YYYY-MM, like 2026-01"),
    Cadence.WEEKLY: (re.compile(r"^(\d{4})-W(\d{2})$"), "an ISO week YYYY-Www, like 2026-W03"),
    Cadence.QUARTERLY: (re.compile(r"^(\d{4})-Q([1-4])$"), "YYYY-Qn, like 2026-Q1"),
    Cadence.ANNUAL: (re.compile(r"^(\d{4})$"), "a year YYYY, like 2026"),
}


def period_for(cadence: str, day: datetime.date) -> tuple[datetime.date, datetime.date]:
    """First and last day of the ``cadence`` period containing ``day``. Weeks run Monday
    to Sunday, quarters from January, April, July and October, years from 1 January."""
    match Cadence(cadence):
        case Cadence.MONTHLY:
            return day.replace(day=1), day.replace(day=monthrange(day.year, day.month)[1])
        case Cadence.WEEKLY:
            start = day - datetime.timedelta(days=day.weekday())
            return start, start + datetime.timedelta(days=6)
        case Cadence.QUARTERLY:
            first = (day.month - 1) // 3 * 3 + 1
            start = datetime.date(day.year, first, 1)
            return start, datetime.date(day.year, first + 2, monthrange(day.year, first + 2)[1])
        case Cadence.ANNUAL:
            return datetime.date(day.year, 1, 1), datetime.date(day.year, 12, 31)


def parse_period(cadence: str, text: str) -> datetime.date:
    """The first day of the period ``text`` names; ValueError with the expected form."""
    if cadence not in Cadence.values:
        raise ValueError(f"unknown cadence {cadence!r}; choose from {', '.join(Cadence.values)}")
    pattern, form = PATTERNS[Cadence(cadence)]
    match = pattern.match(str(text).strip())
    if match is None:
        raise ValueError(f"{text!r} is not a {cadence} period; write {form}")
    year = int(match.group(1))
    try:
        match Cadence(cadence):
            case Cadence.MONTHLY:
                return datetime.date(year, int(match.group(2)), 1)
            case Cadence.WEEKLY:
                return datetime.date.fromisocalendar(year, int(match.group(2)), 1)
            case Cadence.QUARTERLY:
                return datetime.date(year, (int(match.group(2)) - 1) * 3 + 1, 1)
            case Cadence.ANNUAL:
                return datetime.date(year, 1, 1)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a {cadence} period: {exc}") from None


def label(cadence: str, start: datetime.date) -> str:
    """How a period reads on an invoice and in a command's output."""
    match Cadence(cadence):
        case Cadence.MONTHLY:
            return f"{start:%B %Y}"
        case Cadence.WEEKLY:
            year, week, _ = start.isocalendar()
            return f"week {week} of {year}"
        case Cadence.QUARTERLY:
            return f"Q{(start.month - 1) // 3 + 1} {start.year}"
        case Cadence.ANNUAL:
            return str(start.year)


def key(cadence: str, start: datetime.date) -> str:
    """The period's short name: 2026-01, 2026-W03, 2026-Q1, 2026."""
    match Cadence(cadence):
        case Cadence.MONTHLY:
            return f"{start:%Y-%m}"
        case Cadence.WEEKLY:
            year, week, _ = start.isocalendar()
            return f"{year}-W{week:02d}"
        case Cadence.QUARTERLY:
            return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
        case Cadence.ANNUAL:
            return str(start.year)


def periods_between(cadence: str, first: datetime.date, last: datetime.date) -> list[datetime.date]:
    """Start days of every period from the one containing ``first`` to the one containing ``last``."""
    starts = []
    start = period_for(cadence, first)[0]
    while start <= last:
        starts.append(start)
        start = period_for(cadence, period_for(cadence, start)[1] + datetime.timedelta(days=1))[0]
    return starts
