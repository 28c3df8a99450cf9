"""Slots: which business date or period a fire stands for, and what its run is keyed by."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from scheduling.choices import KeyBy


@dataclass(frozen=True)
class Slot:
    key: str
    business_date: datetime.date
    at: datetime.datetime  # aware


def slot_for(key_by: str, instant: datetime.datetime, tz: str | ZoneInfo) -> Slot:
    """The slot an instant falls in: ``2026-11-21`` by day, ``2026-11`` by month, and so on.

    Minute and hour keys carry the UTC offset, so the repeated hour when clocks go back
    gives distinct keys instead of colliding with the first pass.
    """
    zone = _zone(tz)
    local = instant.astimezone(zone)
    day = local.date()
    match KeyBy(key_by):
        case KeyBy.MINUTE:
            key = local.strftime("%Y-%m-%dT%H:%M%z")
        case KeyBy.HOUR:
            key = local.strftime("%Y-%m-%dT%H:00%z")
        case KeyBy.DAY:
            key = day.isoformat()
        case KeyBy.WEEK:
            year, week, _ = day.isocalendar()
            key = f"{year}-W{week:02d}"
        case KeyBy.MONTH:
            key = f"{day:%Y-%m}"
        case KeyBy.QUARTER:
            key = f"{day.year}-Q{(day.month - 1) // 3 + 1}"
        case KeyBy.YEAR:
            key = str(day.year)
    return Slot(key=key, business_date=day, at=instant)


def previous_instant(key_by: str, instant: datetime.datetime, tz: str | ZoneInfo) -> datetime.datetime:
    """An instant inside the period before the one ``instant`` falls in."""
    zone = _zone(tz)
    local = instant.astimezone(zone)
    match KeyBy(key_by):
        case KeyBy.MINUTE:
            return instant - datetime.timedelta(minutes=1)
        case KeyBy.HOUR:
            return instant - datetime.timedelta(hours=1)
        case KeyBy.DAY:
            day = local.date() - datetime.timedelta(days=1)
        case KeyBy.WEEK:
            day = local.date() - datetime.timedelta(days=7)
        case KeyBy.MONTH:
            day = local.date().replace(day=1) - datetime.timedelta(days=1)
        case KeyBy.QUARTER:
            first_month = (local.month - 1) // 3 * 3 + 1
            day = local.date().replace(month=first_month, day=1) - datetime.timedelta(days=1)
        case KeyBy.YEAR:
            day = local.date().replace(month=1, day=1) - datetime.timedelta(days=1)
    return start_of_day(day, zone)


def start_of_day(day: datetime.date, tz: str | ZoneInfo) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(0), tzinfo=_zone(tz))


def _zone(tz: str | ZoneInfo) -> ZoneInfo:
    return tz if isinstance(tz, ZoneInfo) else ZoneInfo(str(tz))
