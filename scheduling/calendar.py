"""When a schedule fires: cron, fixed interval, one-off, and finance calendar rules on top of cron.

Pure Python on purpose: beat, the "next runs" preview and the tests all call these functions, so the
times a user is shown are the times that run.

Cron
----
Fields use celery's crontab syntax, the strings django-celery-beat stores: day_of_week is 0-6 with
0 = Sunday, or names ("mon-fri"). All five fields must match (celery's AND; Vixie cron ORs
day_of_month with day_of_week when both are restricted). Times are wall-clock times in
``Cron.timezone``: we walk local dates and, on each matching date, build every matching hour:minute
with zoneinfo.

Daylight saving time:

* A wall time that does not exist (the spring-forward gap: 02:30 in New York on the day clocks go
  02:00 -> 03:00, 01:30 in London where they go 01:00 -> 02:00) fires once, at the instant the wall
  time means with ``fold=0``: moved forward by the gap (02:30 -> 03:30 local). A job runs late rather
  than not at all. If that instant is also another fire (a cron for 02:30 and 03:30), it fires once.
* A wall time that occurs twice (fall-back: 01:30 in New York on the day clocks go 02:00 -> 01:00)
  fires once, at the first occurrence, when the hour field names specific hours - "post the accruals at
  01:30" must not post twice. When the hour field is every hour, it fires at both occurrences, so an
  every-minute or hourly job keeps its rhythm through the repeated hour, as in Vixie cron.

Output is aware UTC, strictly ascending, without duplicates.

Calendar rules
--------------
A ``CalendarRule`` picks which local dates fire (month end, quarter end, n-th working day...). The cron
still gives the times of day, and its day fields must match the chosen date too, so keep them "*"
unless you mean the AND. A target that is not a working day is shifted by ``CalendarRule.shift``;
a shifted target may land in the neighbouring month and still belongs to its own period. Two periods
whose targets land on the same date fire once that day.
"""

from __future__ import annotations

from calendar import monthrange
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import MAXYEAR, MINYEAR, UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from itertools import islice, takewhile
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery.schedules import ParseException, crontab

__all__ = [
    "CalendarRule",
    "Cron",
    "Every",
    "Once",
    "RuleKind",
    "Shift",
    "WorkingDays",
    "fire_times",
    "fire_times_between",
    "local_date",
    "next_fire_times",
    "zone_name",
]

_DAY = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A schedule that finds no fire this long after its last one (or after `after`) is dead, e.g. a cron for
# day 1 with a month-end rule; without a horizon the search would walk to the year 9999.
_HORIZON = timedelta(days=20 * 366)
_CRON_FIELDS = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")


def _require_aware(value: datetime, name: str) -> None:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")


@dataclass(frozen=True)
class Cron:
    """Wall-clock times in ``timezone``, in celery crontab syntax (day_of_week 0 = Sunday)."""

    minute: str = "*"
    hour: str = "*"
    day_of_week: str = "*"
    day_of_month: str = "*"
    month_of_year: str = "*"
    timezone: str = "UTC"
    # Expanded once here rather than per candidate day; not part of equality (they follow from the fields).
    _tz: ZoneInfo = field(init=False, repr=False, compare=False)
    _minutes: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _hours: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _days: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _months: frozenset[int] = field(init=False, repr=False, compare=False)
    _weekdays: frozenset[int] = field(init=False, repr=False, compare=False)  # date.weekday(), Monday = 0

    def __post_init__(self) -> None:
        # Field by field first, so the message names the field: celery's own says "Invalid end range: 61 > 59."
        for name in _CRON_FIELDS:
            value = getattr(self, name)
            try:
                crontab(**{name: value})
            except (ValueError, TypeError, ParseException) as exc:
                raise ValueError(f"invalid cron {name} {value!r}: {exc}") from None
        try:
            parsed = crontab(**{name: getattr(self, name) for name in _CRON_FIELDS})
        except ValueError as exc:  # fields valid one by one but no date exists, e.g. day 30 of February
            raise ValueError(f"invalid cron: {exc}") from None
        try:
            tz = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValueError(f"unknown timezone {self.timezone!r}") from None
        set_ = object.__setattr__
        set_(self, "_tz", tz)
        set_(self, "_minutes", tuple(sorted(parsed.minute)))
        set_(self, "_hours", tuple(sorted(parsed.hour)))
        set_(self, "_days", tuple(sorted(parsed.day_of_month)))
        set_(self, "_months", frozenset(parsed.month_of_year))
        set_(self, "_weekdays", frozenset((day - 1) % 7 for day in parsed.day_of_week))

    def matches_date(self, d: date) -> bool:
        return d.month in self._months and d.day in self._days and d.weekday() in self._weekdays


@dataclass(frozen=True)
class Every:
    """Every ``seconds``, at ``anchor + k * seconds`` for k >= 0 (the Unix epoch when no anchor).

    The anchor is the first fire: like django-celery-beat's ``start_time``, nothing fires before it.
    """

    seconds: int
    anchor: datetime | None = None

    def __post_init__(self) -> None:
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, int) or self.seconds <= 0:
            raise ValueError(f"an interval needs a whole number of seconds > 0, got {self.seconds!r}")
        if self.anchor is not None:
            _require_aware(self.anchor, "anchor")


@dataclass(frozen=True)
class Once:
    at: datetime

    def __post_init__(self) -> None:
        _require_aware(self.at, "at")


@dataclass(frozen=True)
class WorkingDays:
    weekend: frozenset[int] = frozenset({5, 6})  # date.weekday() numbers, Monday = 0
    holidays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        # Callers pass lists from the database; frozensets keep the calendar hashable for the rule caches.
        object.__setattr__(self, "weekend", frozenset(self.weekend))
        object.__setattr__(self, "holidays", frozenset(self.holidays))
        if not self.weekend <= frozenset(range(7)):
            raise ValueError(f"weekend days are 0 (Monday) to 6 (Sunday), got {sorted(self.weekend)}")
        if len(self.weekend) == 7:
            raise ValueError("a working calendar needs at least one working day in the week")

    def is_working(self, d: date) -> bool:
        return d.weekday() not in self.weekend and d not in self.holidays

    def next_working(self, d: date) -> date:
        """``d`` itself if it is a working day, else the next one."""
        while not self.is_working(d):
            d += _DAY
        return d

    def previous_working(self, d: date) -> date:
        """``d`` itself if it is a working day, else the previous one."""
        while not self.is_working(d):
            d -= _DAY
        return d


class Shift(StrEnum):
    NONE = "none"
    NEXT = "next"
    PREVIOUS = "previous"
    SKIP = "skip"


class RuleKind(StrEnum):
    LAST_DAY_OF_MONTH = "last_day_of_month"
    QUARTER_END = "quarter_end"
    YEAR_END = "year_end"
    DAY_OF_MONTH = "day_of_month"
    NTH_WORKING_DAY = "nth_working_day"
    LAST_WORKING_DAY = "last_working_day"


# A month has at most 31 days (shorter ones clamp) and 23 working days (31 days with a two-day weekend).
_N_LIMITS = {RuleKind.DAY_OF_MONTH: 31, RuleKind.NTH_WORKING_DAY: 23}


@dataclass(frozen=True)
class CalendarRule:
    """Which local dates fire: one target date per period (month, quarter or year), shifted off non-working days.

    The working-day kinds always land on a working day, so ``shift`` never applies to them. An n-th working
    day that a month does not have (n=23 in a short month) does not fire that month.
    """

    kind: RuleKind
    n: int | None = None
    month: int | None = None
    shift: Shift = Shift.NONE
    calendar: WorkingDays = WorkingDays()

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", RuleKind(self.kind))
        object.__setattr__(self, "shift", Shift(self.shift))
        if self.kind in _N_LIMITS:
            top = _N_LIMITS[self.kind]
            if isinstance(self.n, bool) or not isinstance(self.n, int) or not 1 <= self.n <= top:
                raise ValueError(f"{self.kind} needs n between 1 and {top}, got {self.n!r}")
        elif self.n is not None:
            raise ValueError(f"n applies only to {' and '.join(_N_LIMITS)}, not {self.kind}")
        if self.kind is RuleKind.YEAR_END:
            if self.month is None:
                object.__setattr__(self, "month", 12)
            elif isinstance(self.month, bool) or not isinstance(self.month, int) or not 1 <= self.month <= 12:
                raise ValueError(f"year_end month must be 1 to 12, got {self.month!r}")
        elif self.month is not None:
            raise ValueError(f"month applies only to year_end, not {self.kind}")

    def dates_in(self, year: int, month: int) -> frozenset[date]:
        """The fire dates of the period that is ``month`` of ``year``, shifted: they may lie in a neighbouring month."""
        return _period_dates(self, year, month)

    def matches(self, d: date) -> bool:
        return d.day in _days_matching(self, d.year, d.month)


@lru_cache(maxsize=4096)
def _period_dates(rule: CalendarRule, year: int, month: int) -> frozenset[date]:
    cal = rule.calendar
    last = monthrange(year, month)[1]
    if rule.kind is RuleKind.NTH_WORKING_DAY:
        working = [d for d in (date(year, month, day) for day in range(1, last + 1)) if cal.is_working(d)]
        return frozenset(working[rule.n - 1 : rule.n])
    if rule.kind is RuleKind.LAST_WORKING_DAY:
        d = cal.previous_working(date(year, month, last))
        return frozenset({d}) if d.month == month else frozenset()
    if rule.kind is RuleKind.DAY_OF_MONTH:
        target = date(year, month, min(rule.n, last))
    elif (
        rule.kind is RuleKind.LAST_DAY_OF_MONTH
        or (rule.kind is RuleKind.QUARTER_END and month % 3 == 0)
        or (rule.kind is RuleKind.YEAR_END and month == rule.month)
    ):
        target = date(year, month, last)
    else:
        return frozenset()
    if rule.shift is Shift.NONE or cal.is_working(target):
        return frozenset({target})
    if rule.shift is Shift.NEXT:
        return frozenset({cal.next_working(target)})
    if rule.shift is Shift.PREVIOUS:
        return frozenset({cal.previous_working(target)})
    return frozenset()  # SKIP


@lru_cache(maxsize=4096)
def _days_matching(rule: CalendarRule, year: int, month: int) -> tuple[int, ...]:
    """Days of this month that fire, in order. A NEXT shift can bring the previous period's target into this
    month and a PREVIOUS shift the next period's, so look at both neighbours. (Only a run of non-working days
    longer than a month could carry a target further; we do not look for that.)"""
    days = set()
    for y, m in ((year, month - 1) if month > 1 else (year - 1, 12), (year, month), _next_month(year, month)):
        if MINYEAR <= y <= MAXYEAR:
            days.update(d.day for d in _period_dates(rule, y, m) if (d.year, d.month) == (year, month))
    return tuple(sorted(days))


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


Schedule = Cron | Every | Once


def fire_times(schedule: Schedule, after: datetime, rule: CalendarRule | None = None) -> Iterator[datetime]:
    """Fire instants strictly after ``after``, ascending, as aware UTC datetimes; lazy.

    With a rule (Cron only), the cron gives the times of day and the candidate days, the rule picks the dates.
    Ends when nothing fires for 20 years. Arguments are checked now, not at the first ``next()``.
    """
    _require_aware(after, "after")
    _check_rule(schedule, rule)
    if isinstance(schedule, Cron):
        return _cron_fires(schedule, after, rule)
    if isinstance(schedule, Every):
        return _every_fires(schedule, after)
    return _once_fires(schedule, after)


def next_fire_times(
    schedule: Schedule, after: datetime, count: int = 10, rule: CalendarRule | None = None
) -> list[datetime]:
    return list(islice(fire_times(schedule, after, rule), count))


def fire_times_between(
    schedule: Schedule,
    after: datetime,
    until: datetime,
    rule: CalendarRule | None = None,
    limit: int | None = None,
) -> list[datetime]:
    """Fires in ``(after, until]``, at most ``limit`` of them (the earliest)."""
    _require_aware(until, "until")
    return list(islice(takewhile(lambda fire: fire <= until, fire_times(schedule, after, rule)), limit))


def zone_name(schedule: Schedule) -> str:
    """The timezone a schedule's fires are read in: the cron's, UTC for Every and Once."""
    return schedule.timezone if isinstance(schedule, Cron) else "UTC"


def local_date(instant: datetime, schedule: Schedule) -> date:
    """The business date of a fire: its date in the cron's timezone, in UTC for Every and Once."""
    _require_aware(instant, "instant")
    return instant.astimezone(ZoneInfo(zone_name(schedule))).date()


def _check_rule(schedule: Schedule, rule: CalendarRule | None) -> None:
    if not isinstance(schedule, Cron | Every | Once):
        raise TypeError(f"not a schedule: {schedule!r}")
    if rule is not None and not isinstance(schedule, Cron):
        raise ValueError("a calendar rule needs a Cron schedule for its times of day")


def _once_fires(once: Once, after: datetime) -> Iterator[datetime]:
    if once.at > after:
        yield once.at.astimezone(UTC)


def _every_fires(every: Every, after: datetime) -> Iterator[datetime]:
    step = timedelta(seconds=every.seconds)
    anchor = (every.anchor or _EPOCH).astimezone(UTC)
    try:
        fire = anchor + max(0, (after - anchor) // step + 1) * step
        while True:
            yield fire
            fire += step
    except OverflowError:  # past the year 9999
        return


def _cron_fires(cron: Cron, after: datetime, rule: CalendarRule | None) -> Iterator[datetime]:
    last = after.astimezone(UTC)
    # A day early: where clocks fall back across midnight, the previous local date has fires after `after`.
    start = _add_days(after.astimezone(cron._tz).date(), -_DAY)
    give_up = _add_days(start, _HORIZON)
    year, month = start.year, start.month
    try:
        while year <= MAXYEAR and date(year, month, 1) <= give_up:
            if month in cron._months:
                last_day = monthrange(year, month)[1]
                for day in _days_matching(rule, year, month) if rule else cron._days:
                    if day > last_day:
                        break
                    d = date(year, month, day)
                    if d < start or not cron.matches_date(d):
                        continue
                    for fire in _fires_on(cron, d):
                        # Skipping fires not after the last one removes a gap-shifted time that equals another
                        # fire, and anything a day-hopping zone (Samoa, 2011) puts out of order.
                        if fire > last:
                            yield fire
                            last = fire
                            give_up = _add_days(d, _HORIZON)
            year, month = _next_month(year, month)
    except OverflowError:  # near the year 9999
        return


def _add_days(d: date, delta: timedelta) -> date:
    try:
        return d + delta
    except OverflowError:
        return date.max if delta > timedelta(0) else date.min


def _fires_on(cron: Cron, d: date) -> list[datetime]:
    """The fire instants of local date ``d``, ascending (possibly with duplicates)."""
    midnight = datetime.combine(d, time(), tzinfo=cron._tz)
    offset = midnight.utcoffset()
    if offset == (midnight + _DAY).utcoffset():
        # No clock change today, the usual case: one offset maps every wall time, already in order.
        base = (midnight - offset).replace(tzinfo=UTC)
        return [base + timedelta(hours=h, minutes=m) for h in cron._hours for m in cron._minutes]
    every_hour = len(cron._hours) == 24
    fires = []
    for h in cron._hours:
        for m in cron._minutes:
            wall = datetime.combine(d, time(h, m), tzinfo=cron._tz)
            first = wall.astimezone(UTC)  # fold=0: first occurrence, or moved forward across a gap
            fires.append(first)
            if every_hour:
                second = wall.replace(fold=1).astimezone(UTC)
                if second > first:  # a repeated wall time (in a gap, fold=1 maps earlier instead)
                    fires.append(second)
    return sorted(fires)
