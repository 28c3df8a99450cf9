"""When schedules fire: cron across DST, intervals, one-offs, and the finance calendar rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from scheduling.calendar import (
    CalendarRule,
    Cron,
    Every,
    Once,
    RuleKind,
    Shift,
    WorkingDays,
    fire_times,
    fire_times_between,
    local_date,
    next_fire_times,
)

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
UK_HOLIDAYS_2026 = WorkingDays(
    holidays=frozenset(
        {
            date(2026, 1, 1),
            date(2026, 4, 3),
            date(2026, 4, 6),
            date(2026, 5, 4),
            date(2026, 5, 25),
            date(2026, 8, 31),
            date(2026, 12, 25),
            date(2026, 12, 28),
        }
    )
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def fires_in_year(schedule: Cron, year: int, rule: CalendarRule | None = None) -> list[datetime]:
    tz = ZoneInfo(schedule.timezone)
    return fire_times_between(
        schedule, datetime(year, 1, 1, tzinfo=tz) - timedelta(seconds=1), datetime(year + 1, 1, 1, tzinfo=tz), rule
    )


def local_dates(fires: list[datetime], schedule: Cron) -> list[date]:
    return [local_date(fire, schedule) for fire in fires]


def fires_in_local_window(schedule: Cron, start: datetime, end: datetime) -> list[datetime]:
    """Fires in [start, end)."""
    return fire_times_between(schedule, start - timedelta(seconds=1), end - timedelta(seconds=1))


def assert_strictly_ascending_utc(fires: list[datetime]) -> None:
    assert all(fire.tzinfo is UTC for fire in fires)
    assert all(earlier < later for earlier, later in pairwise(fires))


# Month end, quarter end, year end


def test_month_end_in_london_fires_at_22_local_on_each_month_end_across_both_dst_changes():
    # given
    cron = Cron(minute="0", hour="22", timezone="Europe/London")
    rule = CalendarRule(RuleKind.LAST_DAY_OF_MONTH)

    # when
    fires = fires_in_year(cron, 2026, rule)

    # then
    month_ends = [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30), date(2026, 5, 31)]
    month_ends += [date(2026, 6, 30), date(2026, 7, 31), date(2026, 8, 31), date(2026, 9, 30), date(2026, 10, 31)]
    month_ends += [date(2026, 11, 30), date(2026, 12, 31)]
    assert local_dates(fires, cron) == month_ends
    assert {fire.astimezone(LONDON).time().isoformat() for fire in fires} == {"22:00:00"}
    assert fires[1] == utc(2026, 2, 28, 22)  # GMT
    assert fires[2] == utc(2026, 3, 31, 21)  # BST since 29 March
    assert fires[8] == utc(2026, 9, 30, 21)  # still BST
    assert fires[9] == utc(2026, 10, 31, 22)  # GMT again since 25 October
    assert fires[11] == utc(2026, 12, 31, 22)
    assert_strictly_ascending_utc(fires)


@pytest.mark.parametrize(
    ("shift", "expected"),
    [
        (Shift.NONE, [date(2024, 3, 31), date(2024, 6, 30), date(2024, 9, 30), date(2024, 12, 31)]),
        (Shift.PREVIOUS, [date(2024, 3, 29), date(2024, 6, 28), date(2024, 9, 30), date(2024, 12, 31)]),
        # 2023-12-31 was a Sunday too: the last quarter of 2023 fires on the first working day of 2024
        (Shift.NEXT, [date(2024, 1, 1), date(2024, 4, 1), date(2024, 7, 1), date(2024, 9, 30), date(2024, 12, 31)]),
        (Shift.SKIP, [date(2024, 9, 30), date(2024, 12, 31)]),
    ],
)
def test_quarter_end_on_a_sunday_is_shifted_as_asked(shift, expected):
    # given 2024-03-31 and 2024-06-30 are Sundays
    cron = Cron(minute="0", hour="18")
    rule = CalendarRule(RuleKind.QUARTER_END, shift=shift)

    # when
    fires = fires_in_year(cron, 2024, rule)

    # then
    assert local_dates(fires, cron) == expected
    assert all(fire.hour == 18 and fire.minute == 0 for fire in fires)


def test_quarter_end_on_a_holiday_moves_to_the_previous_working_day():
    # given 31 December 2026 is a Thursday, but a holiday in this calendar
    holiday = WorkingDays(holidays=frozenset({date(2026, 12, 31)}))
    rule = CalendarRule(RuleKind.QUARTER_END, shift=Shift.PREVIOUS, calendar=holiday)

    # when
    fires = fires_in_year(Cron(minute="0", hour="18"), 2026, rule)

    # then
    assert [fire.date() for fire in fires] == [
        date(2026, 3, 31),
        date(2026, 6, 30),
        date(2026, 9, 30),
        date(2026, 12, 30),
    ]


def test_next_shift_carries_a_month_end_into_the_next_month_and_the_next_year():
    # given 2028-12-31 is a Sunday
    rule = CalendarRule(RuleKind.LAST_DAY_OF_MONTH, shift=Shift.NEXT)

    # when
    fires = next_fire_times(Cron(minute="0", hour="9"), utc(2028, 12, 15), count=2, rule=rule)

    # then
    assert fires == [utc(2029, 1, 1, 9), utc(2029, 1, 31, 9)]  # 1 January is no holiday in the default calendar
    assert rule.matches(date(2029, 1, 1))
    assert not rule.matches(date(2028, 12, 31))


def test_previous_shift_carries_day_one_back_into_the_previous_month():
    # given 2024-06-01 is a Saturday
    rule = CalendarRule(RuleKind.DAY_OF_MONTH, n=1, shift=Shift.PREVIOUS)

    # when
    fires = fire_times_between(Cron(minute="0", hour="7"), utc(2024, 5, 1), utc(2024, 7, 31), rule)

    # then
    assert [fire.date() for fire in fires] == [date(2024, 5, 1), date(2024, 5, 31), date(2024, 7, 1)]
    assert rule.matches(date(2024, 5, 31))
    assert rule.dates_in(2024, 6) == frozenset({date(2024, 5, 31)})


def test_fiscal_year_ending_in_june_fires_on_30_june_each_year():
    # given 2029-06-30 is a Saturday
    rule = CalendarRule(RuleKind.YEAR_END, month=6, shift=Shift.PREVIOUS)

    # when
    fires = next_fire_times(Cron(minute="30", hour="17"), utc(2026, 1, 1), count=4, rule=rule)

    # then
    assert fires == [
        utc(2026, 6, 30, 17, 30),
        utc(2027, 6, 30, 17, 30),
        utc(2028, 6, 30, 17, 30),
        utc(2029, 6, 29, 17, 30),
    ]


def test_year_end_defaults_to_december():
    assert CalendarRule(RuleKind.YEAR_END).month == 12
    assert CalendarRule(RuleKind.YEAR_END).dates_in(2026, 12) == frozenset({date(2026, 12, 31)})


def test_day_of_month_is_clamped_to_the_last_day_of_short_months():
    # given
    rule = CalendarRule(RuleKind.DAY_OF_MONTH, n=31)
    cron = Cron(minute="0", hour="6")

    # when
    fires = [*fires_in_year(cron, 2026, rule)[:4], *fires_in_year(cron, 2028, rule)[1:2]]

    # then
    assert [fire.date() for fire in fires] == [
        date(2026, 1, 31),
        date(2026, 2, 28),
        date(2026, 3, 31),
        date(2026, 4, 30),
        date(2028, 2, 29),
    ]


# Working days


def test_first_working_day_of_each_month_of_2026_with_uk_bank_holidays():
    rule = CalendarRule(RuleKind.NTH_WORKING_DAY, n=1, calendar=UK_HOLIDAYS_2026)

    fires = fires_in_year(Cron(minute="0", hour="8", timezone="Europe/London"), 2026, rule)

    assert [fire.astimezone(LONDON).date() for fire in fires] == [
        date(2026, 1, 2),  # 1 January is a holiday
        date(2026, 2, 2),
        date(2026, 3, 2),
        date(2026, 4, 1),
        date(2026, 5, 1),
        date(2026, 6, 1),
        date(2026, 7, 1),
        date(2026, 8, 3),
        date(2026, 9, 1),
        date(2026, 10, 1),
        date(2026, 11, 2),
        date(2026, 12, 1),
    ]


def test_third_working_day_of_each_month_of_2026_with_uk_bank_holidays():
    rule = CalendarRule(RuleKind.NTH_WORKING_DAY, n=3, calendar=UK_HOLIDAYS_2026)

    fires = fires_in_year(Cron(minute="0", hour="8", timezone="Europe/London"), 2026, rule)

    assert [fire.astimezone(LONDON).date() for fire in fires] == [
        date(2026, 1, 6),
        date(2026, 2, 4),
        date(2026, 3, 4),
        date(2026, 4, 7),  # Good Friday and Easter Monday in between
        date(2026, 5, 6),  # early May bank holiday in between
        date(2026, 6, 3),
        date(2026, 7, 3),
        date(2026, 8, 5),
        date(2026, 9, 3),
        date(2026, 10, 5),
        date(2026, 11, 4),
        date(2026, 12, 3),
    ]


def test_last_working_day_of_each_month_of_2026_with_uk_bank_holidays():
    rule = CalendarRule(RuleKind.LAST_WORKING_DAY, calendar=UK_HOLIDAYS_2026)

    fires = fires_in_year(Cron(minute="0", hour="22", timezone="Europe/London"), 2026, rule)

    assert [fire.astimezone(LONDON).date() for fire in fires] == [
        date(2026, 1, 30),
        date(2026, 2, 27),
        date(2026, 3, 31),
        date(2026, 4, 30),
        date(2026, 5, 29),
        date(2026, 6, 30),
        date(2026, 7, 31),
        date(2026, 8, 28),  # the 31st is the summer bank holiday
        date(2026, 9, 30),
        date(2026, 10, 30),
        date(2026, 11, 30),
        date(2026, 12, 31),
    ]


def test_working_day_kinds_ignore_the_shift():
    plain = CalendarRule(RuleKind.LAST_WORKING_DAY, calendar=UK_HOLIDAYS_2026)
    shifted = CalendarRule(RuleKind.LAST_WORKING_DAY, shift=Shift.NEXT, calendar=UK_HOLIDAYS_2026)

    assert shifted.dates_in(2026, 8) == plain.dates_in(2026, 8) == frozenset({date(2026, 8, 28)})


def test_working_days_step_over_weekends_and_holidays():
    assert UK_HOLIDAYS_2026.next_working(date(2026, 4, 3)) == date(2026, 4, 7)
    assert UK_HOLIDAYS_2026.previous_working(date(2026, 4, 6)) == date(2026, 4, 2)
    assert UK_HOLIDAYS_2026.next_working(date(2026, 4, 2)) == date(2026, 4, 2)
    assert not UK_HOLIDAYS_2026.is_working(date(2026, 12, 28))


def test_rule_and_cron_day_fields_must_both_match():
    # given a weekday-only cron: month ends on a weekend do not fire
    cron = Cron(minute="0", hour="18", day_of_week="mon-fri")

    fires = fires_in_year(cron, 2026, CalendarRule(RuleKind.LAST_DAY_OF_MONTH))

    assert date(2026, 1, 31) not in local_dates(fires, cron)  # a Saturday
    assert len(fires) == 8


def test_a_rule_and_cron_that_never_agree_end_the_fires_after_twenty_years():
    # given a cron for day 1 and a rule for the last day
    cron = Cron(minute="0", hour="9", day_of_month="1")

    assert next_fire_times(cron, utc(2026, 1, 1), rule=CalendarRule(RuleKind.LAST_DAY_OF_MONTH)) == []


# Daylight saving time


def test_london_0230_on_the_spring_forward_day_fires_once_at_0130_utc():
    # London's clocks go 01:00 GMT -> 02:00 BST on 29 March 2026, so 02:30 exists: it is 02:30 BST
    cron = Cron(minute="30", hour="2", timezone="Europe/London")

    fires = fire_times_between(cron, utc(2026, 3, 28, 12), utc(2026, 3, 30, 12))

    assert fires == [utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 1, 30)]


def test_a_wall_time_in_the_spring_forward_gap_fires_once_moved_forward_by_the_gap():
    # 01:30 does not exist in London on 29 March 2026; it runs at 02:30 BST, the same instant as 02:30
    for hours in ("1", "1,2"):
        cron = Cron(minute="30", hour=hours, timezone="Europe/London")

        fires = fire_times_between(cron, utc(2026, 3, 29), utc(2026, 3, 29, 12))

        assert fires == [utc(2026, 3, 29, 1, 30)]
        assert fires[0].astimezone(LONDON).time().isoformat() == "02:30:00"


def test_london_0130_on_the_fall_back_day_fires_once_at_the_first_occurrence():
    cron = Cron(minute="30", hour="1", timezone="Europe/London")

    fires = fire_times_between(cron, utc(2026, 10, 24, 12), utc(2026, 10, 25, 12))

    assert fires == [utc(2026, 10, 25, 0, 30)]


def test_every_minute_in_london_runs_through_the_repeated_hour_twice():
    cron = Cron(timezone="Europe/London")

    fires = fires_in_local_window(
        cron, datetime(2026, 10, 25, 0, tzinfo=LONDON), datetime(2026, 10, 25, 3, tzinfo=LONDON)
    )

    assert len(fires) == 240
    assert fires[0] == utc(2026, 10, 24, 23)
    assert fires[-1] == utc(2026, 10, 25, 2, 59)
    assert_strictly_ascending_utc(fires)


def test_every_minute_in_london_has_no_fires_in_the_skipped_hour():
    cron = Cron(timezone="Europe/London")

    fires = fires_in_local_window(
        cron, datetime(2026, 3, 29, 0, tzinfo=LONDON), datetime(2026, 3, 29, 4, tzinfo=LONDON)
    )

    assert len(fires) == 180
    assert fires[0] == utc(2026, 3, 29, 0)
    assert fires[-1] == utc(2026, 3, 29, 2, 59)
    assert_strictly_ascending_utc(fires)


def test_hourly_cron_fires_at_both_one_oclocks_but_named_hours_fire_once():
    after = datetime(2026, 10, 25, 0, tzinfo=LONDON) - timedelta(seconds=1)

    hourly = next_fire_times(Cron(minute="0", timezone="Europe/London"), after, count=5)
    named = next_fire_times(Cron(minute="0", hour="1,2", timezone="Europe/London"), after, count=2)

    assert hourly == [
        utc(2026, 10, 24, 23),
        utc(2026, 10, 25, 0),
        utc(2026, 10, 25, 1),
        utc(2026, 10, 25, 2),
        utc(2026, 10, 25, 3),
    ]
    assert named == [utc(2026, 10, 25, 0), utc(2026, 10, 25, 2)]


def test_new_york_gap_time_runs_late_and_once_even_when_the_cron_also_names_the_later_time():
    # clocks go 02:00 EST -> 03:00 EDT on 8 March 2026, so 02:30 runs at 03:30 EDT
    cron = Cron(minute="30", hour="2,3", timezone="America/New_York")

    fires = fire_times_between(cron, utc(2026, 3, 8), utc(2026, 3, 9, 12))

    assert fires == [utc(2026, 3, 8, 7, 30), utc(2026, 3, 9, 6, 30), utc(2026, 3, 9, 7, 30)]
    assert fires[0].astimezone(NEW_YORK).time().isoformat() == "03:30:00"


def test_new_york_fall_back_fires_a_named_time_once_and_every_minute_twice():
    # clocks go 02:00 EDT -> 01:00 EST on 1 November 2026
    start, end = datetime(2026, 11, 1, 0, tzinfo=NEW_YORK), datetime(2026, 11, 1, 3, tzinfo=NEW_YORK)

    once = fire_times_between(Cron(minute="30", hour="1", timezone="America/New_York"), start, end)
    every_minute = fires_in_local_window(Cron(timezone="America/New_York"), start, end)
    spring = fires_in_local_window(
        Cron(timezone="America/New_York"),
        datetime(2026, 3, 8, 0, tzinfo=NEW_YORK),
        datetime(2026, 3, 8, 4, tzinfo=NEW_YORK),
    )

    assert once == [utc(2026, 11, 1, 5, 30)]
    assert len(every_minute) == 240
    assert_strictly_ascending_utc(every_minute)
    assert len(spring) == 180


def test_local_date_is_the_business_date_in_the_cron_timezone():
    cron = Cron(minute="30", hour="0", timezone="Europe/London")

    assert local_date(utc(2026, 6, 30, 23, 30), cron) == date(2026, 7, 1)
    assert local_date(utc(2026, 6, 30, 23, 30), Every(60)) == date(2026, 6, 30)


# Every and Once


def test_every_without_anchor_is_aligned_to_the_unix_epoch():
    fires = next_fire_times(Every(900), utc(2026, 3, 10, 10, 7, 30), count=3)

    assert fires == [utc(2026, 3, 10, 10, 15), utc(2026, 3, 10, 10, 30), utc(2026, 3, 10, 10, 45)]


def test_every_with_anchor_fires_on_the_anchors_phase_strictly_after():
    anchor = datetime(2026, 1, 1, 0, 15, tzinfo=LONDON)

    fires = next_fire_times(Every(3600, anchor=anchor), utc(2026, 3, 10, 10, 15), count=2)

    assert fires == [utc(2026, 3, 10, 11, 15), utc(2026, 3, 10, 12, 15)]


def test_every_does_not_fire_before_its_anchor():
    fires = next_fire_times(Every(60, anchor=utc(2026, 5, 1, 12)), utc(2026, 1, 1), count=2)

    assert fires == [utc(2026, 5, 1, 12), utc(2026, 5, 1, 12, 1)]


def test_every_is_computed_not_counted_from_the_anchor():
    # Counting one-second steps from 1990 would be a billion iterations: the suite's
    # timeout, not a stopwatch in the test, is what catches that.
    fires = next_fire_times(Every(1, anchor=utc(1990, 1, 1)), utc(2026, 1, 1), count=1)

    assert fires == [utc(2026, 1, 1, 0, 0, 1)]


def test_once_fires_only_if_strictly_after():
    once = Once(at=utc(2026, 7, 1, 9))

    assert next_fire_times(once, utc(2026, 6, 1)) == [utc(2026, 7, 1, 9)]
    assert next_fire_times(once, utc(2026, 7, 1, 9)) == []


# fire_times_between


def test_fire_times_between_is_after_exclusive_until_inclusive_and_limited():
    cron = Cron(minute="*/15")

    everything = fire_times_between(cron, utc(2026, 1, 1, 9), utc(2026, 1, 1, 10))
    limited = fire_times_between(cron, utc(2026, 1, 1, 9), utc(2026, 1, 1, 12), limit=2)

    assert everything == [utc(2026, 1, 1, 9, 15), utc(2026, 1, 1, 9, 30), utc(2026, 1, 1, 9, 45), utc(2026, 1, 1, 10)]
    assert limited == [utc(2026, 1, 1, 9, 15), utc(2026, 1, 1, 9, 30)]


def test_fire_times_is_lazy_and_endless_for_a_cron():
    fires = fire_times(Cron(minute="0", hour="0"), utc(2026, 1, 1))

    assert next(fires) == utc(2026, 1, 2)
    assert next(fires) == utc(2026, 1, 3)


@pytest.mark.parametrize(
    ("schedule", "rule"),
    [
        (Cron(), None),
        (Cron(minute="*/5", hour="9-17", day_of_week="mon-fri", timezone="Europe/London"), None),
        (Cron(minute="0", hour="2", timezone="America/New_York"), None),
        (Cron(minute="0", hour="22", timezone="Europe/London"), CalendarRule(RuleKind.LAST_WORKING_DAY)),
        (Cron(minute="0", hour="6"), CalendarRule(RuleKind.QUARTER_END, shift=Shift.NEXT)),
        (Cron(minute="0", hour="6"), CalendarRule(RuleKind.NTH_WORKING_DAY, n=5, calendar=UK_HOLIDAYS_2026)),
        (Every(3600), None),
    ],
)
def test_next_fire_times_returns_ten_ascending_fires_for_typical_schedules(schedule, rule):
    after = utc(2026, 3, 1)

    fires = next_fire_times(schedule, after, rule=rule)

    assert len(fires) == 10
    assert fires[0] > after
    assert_strictly_ascending_utc(fires)


def test_next_fire_times_gives_ten_for_sparse_and_dense_schedules():
    # a fresh calendar, so the rule caches start cold (speed is bench/jobs.py's business)
    working = WorkingDays(holidays=frozenset({date(2031, 1, 1)}))
    month_end = CalendarRule(RuleKind.LAST_WORKING_DAY, calendar=working)

    sparse = next_fire_times(Cron(minute="0", hour="22", timezone="Europe/London"), utc(2026, 1, 1), rule=month_end)
    dense = next_fire_times(Cron(), utc(2026, 1, 1))

    assert len(sparse) == len(dense) == 10


# Validation


@pytest.mark.parametrize(
    "fields",
    [
        {"minute": "61"},
        {"hour": "24"},
        {"day_of_week": "funday"},
        {"day_of_month": "0"},
        {"month_of_year": "13"},
        {"minute": "*/0"},
        {"day_of_month": "30", "month_of_year": "2"},
    ],
)
def test_a_bad_cron_field_is_a_value_error(fields):
    with pytest.raises(ValueError, match="invalid cron"):
        Cron(**fields)


def test_cron_names_the_bad_field():
    with pytest.raises(ValueError, match="hour '25'"):
        Cron(hour="25")


def test_an_unknown_timezone_is_a_value_error():
    with pytest.raises(ValueError, match="unknown timezone 'Mars/Olympus_Mons'"):
        Cron(timezone="Mars/Olympus_Mons")


def test_cron_accepts_day_names_with_sunday_as_zero():
    cron = Cron(minute="0", hour="12", day_of_week="0")

    assert next_fire_times(cron, utc(2026, 1, 1), count=1) == [utc(2026, 1, 4, 12)]  # a Sunday
    assert Cron(day_of_week="mon-fri") == Cron(day_of_week="mon-fri")


@pytest.mark.parametrize("schedule", [Every(60), Once(at=utc(2026, 7, 1))])
def test_a_rule_needs_a_cron(schedule):
    with pytest.raises(ValueError, match="needs a Cron"):
        fire_times(schedule, utc(2026, 1, 1), rule=CalendarRule(RuleKind.LAST_DAY_OF_MONTH))


@pytest.mark.parametrize(
    "arguments",
    [
        {"kind": RuleKind.DAY_OF_MONTH},
        {"kind": RuleKind.DAY_OF_MONTH, "n": 32},
        {"kind": RuleKind.NTH_WORKING_DAY},
        {"kind": RuleKind.NTH_WORKING_DAY, "n": 0},
        {"kind": RuleKind.NTH_WORKING_DAY, "n": 24},
        {"kind": RuleKind.LAST_DAY_OF_MONTH, "n": 3},
        {"kind": RuleKind.YEAR_END, "month": 13},
        {"kind": RuleKind.QUARTER_END, "month": 3},
        {"kind": "fortnightly"},
        {"kind": RuleKind.QUARTER_END, "shift": "sideways"},
    ],
)
def test_a_bad_rule_is_a_value_error(arguments):
    with pytest.raises(ValueError):
        CalendarRule(**arguments)


def test_a_rule_accepts_the_stored_strings():
    rule = CalendarRule("quarter_end", shift="next")

    assert rule == CalendarRule(RuleKind.QUARTER_END, shift=Shift.NEXT)


def test_a_calendar_with_no_working_day_is_a_value_error():
    with pytest.raises(ValueError, match="at least one working day"):
        WorkingDays(weekend=frozenset(range(7)))


@pytest.mark.parametrize("seconds", [0, -60, 1.5])
def test_every_needs_a_positive_whole_number_of_seconds(seconds):
    with pytest.raises(ValueError, match="seconds"):
        Every(seconds)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire_times(Cron(), datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        Once(at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        Every(60, anchor=datetime(2026, 1, 1))
