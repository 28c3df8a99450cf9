"""The job layer at the moments calendars go wrong: late on 31 December (already next year
east of UTC), late on 29 February, and each side of Europe/London's clock changes. At each,
frozen, a run asked for now gets the business date and key its zone says, a daily schedule's
next fire is the right instant, and a backfill of today makes today's slot. Every expectation
is derived from the frozen instant with zoneinfo, not written down for one day.

The whole unit suite also runs a second time with the clock moved (``make test``); these
cover the other awkward moments explicitly."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from scheduling import slots
from scheduling.models import JobDefinition, JobSchedule
from scheduling.services import backfill, firing, runs
from tests.factories import CompanyFactory

pytestmark = pytest.mark.django_db
UTC = datetime.UTC
LONDON = ZoneInfo("Europe/London")

MOMENTS = {
    "new year's eve, late": datetime.datetime(2026, 12, 31, 23, 30, tzinfo=UTC),
    "29 february, late": datetime.datetime(2028, 2, 29, 23, 30, tzinfo=UTC),
    "before clocks go forward": datetime.datetime(2027, 3, 28, 0, 30, tzinfo=UTC),  # 00:30 GMT
    "after clocks go forward": datetime.datetime(2027, 3, 28, 1, 30, tzinfo=UTC),  # 02:30 BST
    "first 01:30 as clocks go back": datetime.datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # 01:30 BST
    "second 01:30 as clocks go back": datetime.datetime(2026, 10, 25, 1, 30, tzinfo=UTC),  # 01:30 GMT
}
ZONES = ["Europe/London", "Pacific/Auckland", "America/New_York", "UTC"]


@pytest.fixture(params=list(MOMENTS), ids=list(MOMENTS))
def moment(request):
    at = MOMENTS[request.param]
    with time_machine.travel(at, tick=False):
        yield at


def expected_keys(at: datetime.datetime, zone: str) -> dict[str, str]:
    local = at.astimezone(ZoneInfo(zone))
    year, week, _ = local.date().isocalendar()
    offset = local.strftime("%z")
    return {
        "minute": f"{local:%Y-%m-%dT%H:%M}{offset}",
        "hour": f"{local:%Y-%m-%dT%H}:00{offset}",
        "day": local.date().isoformat(),
        "week": f"{year}-W{week:02d}",
        "month": f"{local:%Y-%m}",
        "quarter": f"{local.year}-Q{(local.month + 2) // 3}",
        "year": str(local.year),
    }


@pytest.mark.parametrize("zone", ZONES)
def test_every_run_key_is_the_one_the_zone_s_clock_says(moment, zone):
    keys = {key_by: slots.slot_for(key_by, moment, zone).key for key_by in expected_keys(moment, zone)}

    assert keys == expected_keys(moment, zone)
    assert slots.slot_for("day", moment, zone).business_date == moment.astimezone(ZoneInfo(zone)).date()


@pytest.mark.parametrize("zone", ["Pacific/Auckland", "Europe/London", "America/New_York"])
def test_a_run_asked_for_now_is_for_the_company_s_own_date(moment, zone):
    company = CompanyFactory(timezone=zone)

    run, _ = runs.request_run(JobDefinition.objects.get(code="TEST_PER_COMPANY"), company=company)

    local = moment.astimezone(ZoneInfo(zone))
    assert (run.business_date, run.run_key) == (local.date(), local.date().isoformat())


def test_a_daily_london_schedule_fires_next_at_its_wall_clock_time(moment):
    cron = CrontabSchedule.objects.create(minute="0", hour="23", timezone="Europe/London")
    task = PeriodicTask.objects.create(name="daily 23:00 London", task="scheduling.fire_job", crontab=cron)
    schedule = JobSchedule.objects.create(job=JobDefinition.objects.get(code="TEST_CHAIN_1"), periodic_task=task)

    firing.refresh_schedules(schedules=JobSchedule.objects.filter(pk=schedule.pk))

    local = moment.astimezone(LONDON)
    day = local.date() if local.time() < datetime.time(23) else local.date() + datetime.timedelta(days=1)
    expected = datetime.datetime.combine(day, datetime.time(23), tzinfo=LONDON).astimezone(UTC)
    schedule.refresh_from_db()
    assert schedule.next_fire_at == expected


def test_a_backfill_of_today_makes_today_s_slot(moment):
    cron = CrontabSchedule.objects.create(minute="0", hour="0", timezone="UTC")
    task = PeriodicTask.objects.create(name="midnight UTC", task="scheduling.fire_job", crontab=cron)
    JobSchedule.objects.create(job=JobDefinition.objects.get(code="TEST_CHAIN_1"), periodic_task=task)
    today = moment.date()

    plan = backfill.backfill(JobDefinition.objects.get(code="TEST_CHAIN_1"), today, today, dry_run=True)

    assert [(slot.key, slot.at) for slot in plan.slots] == [
        (today.isoformat(), datetime.datetime.combine(today, datetime.time(0), tzinfo=UTC))
    ]
