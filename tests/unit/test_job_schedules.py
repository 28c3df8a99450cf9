"""Schedules that say what they will do: a timing that would collapse into fewer runs than
it fires is refused (model, admin, API), every declared default passes; schedules written
through the API from their parts; deadlines read from a schedule."""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.urls import reverse
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from scheduling import registry
from scheduling.models import JobDefinition, JobSchedule
from scheduling.services import firing

pytestmark = pytest.mark.django_db
UTC = datetime.UTC
NOW = datetime.datetime(2026, 11, 21, 9, 0, 30, tzinfo=UTC)
SCHEDULES = "/api/v1/system/schedules"


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def staff_api(api, staff):
    return api.as_user(staff)


def schedule_for(code: str, **crontab) -> JobSchedule:
    cron = CrontabSchedule.objects.create(**{"timezone": "UTC", **crontab})
    task = PeriodicTask.objects.create(name=f"{code} {crontab}", task="scheduling.fire_job", crontab=cron)
    return JobSchedule(job=JobDefinition.objects.get(code=code), periodic_task=task)


# --- A schedule that would collapse is refused -----------------------------------------------------


def test_every_minute_for_a_job_keyed_by_day_is_refused_with_the_reason():
    schedule = schedule_for("SYS_HEALTH_CHECK", minute="*")

    with pytest.raises(ValidationError) as refused:
        schedule.full_clean()

    message = refused.value.message_dict["periodic_task"][0]
    assert "fires at 2026-11-21 09:01 and 2026-11-21 09:02 UTC" in message
    assert "both in SYS_HEALTH_CHECK's run key 2026-11-21 (one run per business date)" in message


@pytest.mark.parametrize(
    ("code", "crontab"),
    [
        ("SYS_HEALTH_CHECK", {"minute": "0", "hour": "5"}),  # daily, keyed by day
        ("SYS_HEALTH_CHECK", {"minute": "0", "hour": "5", "day_of_week": "1"}),  # weekly: fewer runs is fine
        ("TEST_MINUTE", {"minute": "*"}),  # keyed by minute
        ("BILLING_MONTHLY_INVOICES", {"minute": "0", "hour": "3", "day_of_month": "1"}),
    ],
)
def test_a_schedule_that_fires_at_most_once_per_run_key_is_accepted(code, crontab):
    schedule_for(code, **crontab).full_clean()


def test_twice_a_day_for_a_daily_job_is_refused():
    with pytest.raises(ValidationError, match="run key 2026-11-22"):
        schedule_for("SYS_HEALTH_CHECK", minute="0", hour="5,17").full_clean()


def test_an_interval_faster_than_its_run_key_is_refused():
    every, _ = IntervalSchedule.objects.get_or_create(every=30, period=IntervalSchedule.SECONDS)
    task = PeriodicTask.objects.create(name="probe 30 s", task="scheduling.fire_job", interval=every)
    schedule = JobSchedule(job=JobDefinition.objects.get(code="TEST_MINUTE"), periodic_task=task)

    with pytest.raises(ValidationError, match="one run per minute"):
        schedule.full_clean()


def test_every_declared_default_schedule_fires_at_most_once_per_run_key():
    refused = {
        schedule.job.code: schedule.collapse_problem()
        for schedule in JobSchedule.objects.with_timing()
        if schedule.collapse_problem()
    }

    assert refused == {}
    assert JobSchedule.objects.count() >= len([spec for spec in registry.registered().values() if spec.schedule])


def test_changing_a_job_s_run_key_so_its_schedule_collapses_is_refused():
    definition = JobDefinition.objects.get(code="SYS_NOTIFY_DISPATCH")  # every minute, keyed by minute
    definition.key_by = "hour"

    with pytest.raises(ValidationError) as refused:
        definition.full_clean()

    assert "one run per hour" in refused.value.message_dict["key_by"][0]


def test_the_admin_refuses_a_collapsing_schedule_on_its_form(admin_client):
    every_minute = CrontabSchedule.objects.create(minute="*", timezone="UTC")
    task = PeriodicTask.objects.create(name="health every minute", task="scheduling.fire_job", crontab=every_minute)
    health = JobDefinition.objects.get(code="SYS_HEALTH_CHECK")

    response = admin_client.post(
        reverse("admin:scheduling_jobschedule_add"),
        {"job": health.pk, "periodic_task": task.pk, "shift": "none"},
    )

    assert response.status_code == 200  # the form again, with the reason
    assert "one run per business date" in response.content.decode()
    assert not JobSchedule.objects.filter(periodic_task=task).exists()


def test_beat_alerts_on_a_periodic_task_edited_into_collapsing():
    schedule = JobSchedule.objects.get(job__code="SYS_HEALTH_CHECK")
    every_minute = CrontabSchedule.objects.create(minute="*", timezone="UTC")
    PeriodicTask.objects.filter(pk=schedule.periodic_task_id).update(crontab=every_minute)

    firing.refresh_schedules()

    alert = schedule.job.alerts.get(cause="schedule")
    assert "one run per business date" in alert.message


# --- Schedules through the API ---------------------------------------------------------------------


def test_a_schedule_is_made_from_its_parts_and_answers_with_its_next_fires(staff_api):
    response = staff_api.post(
        SCHEDULES,
        {
            "job": "SYS_HEALTH_CHECK",
            "cron": {"minute": "30", "hour": "6", "timezone": "Europe/London"},
            "start_within": "00:10:00",
            "end_by": "07:00",
        },
        format="json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["timing"].startswith("30 6 * * *")
    assert body["next_fires"][0] == "2026-11-22T06:30:00+00:00"  # GMT in November
    assert (body["start_within"], body["end_by"]) == ("00:10:00", "07:00:00")
    schedule = JobSchedule.objects.get(pk=body["id"])
    assert schedule.next_fire_at == datetime.datetime(2026, 11, 22, 6, 30, tzinfo=UTC)


def test_a_collapsing_schedule_is_a_400_naming_the_timing(staff_api):
    response = staff_api.post(SCHEDULES, {"job": "SYS_HEALTH_CHECK", "cron": {"minute": "*"}}, format="json")

    assert response.status_code == 400
    assert "one run per business date" in response.json()["error"]["fields"]["timing"][0]
    assert JobSchedule.objects.filter(job__code="SYS_HEALTH_CHECK").count() == 1  # only the default


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"job": "NOPE_JOB", "every_seconds": 60}, "job", "no job NOPE_JOB"),
        ({"job": "SYS_HEALTH_CHECK"}, "timing", "a new schedule needs a timing"),
        ({"job": "SYS_HEALTH_CHECK", "every_seconds": 86400, "once_at": "2027-01-01T00:00:00Z"}, "timing", "exactly"),
        ({"job": "SYS_HEALTH_CHECK", "cron": {"minute": "61"}}, "cron", "minute"),
        ({"job": "SYS_HEALTH_CHECK", "cron": {"timezone": "Mars/Olympus"}}, "cron", "timezone"),
        (
            {"job": "SYS_HEALTH_CHECK", "every_seconds": 86400, "start_within": "00:10:00", "start_by": "06:00"},
            "start_by",
            "not both",
        ),
        ({"job": "SYS_HEALTH_CHECK", "every_seconds": 86400, "rule": "quarter_end"}, "rule", "crontab"),
        ({"job": "SYS_HEALTH_CHECK", "every_seconds": 86400, "company": 1}, "company", "no company 1"),
    ],
)
def test_a_bad_schedule_is_a_400_naming_its_field_and_saves_nothing(staff_api, body, field, message):
    tasks = PeriodicTask.objects.count()

    response = staff_api.post(SCHEDULES, body, format="json")

    assert response.status_code == 400, response.json()
    fields = response.json()["error"]["fields"]
    assert field in fields, fields
    assert message in str(fields[field])
    assert PeriodicTask.objects.count() == tasks


def test_a_schedule_is_changed_in_part_and_deleted_with_its_timing(staff_api):
    made = staff_api.post(SCHEDULES, {"job": "SYS_HEALTH_CHECK", "every_seconds": 86400}, format="json").json()

    changed = staff_api.patch(f"{SCHEDULES}/{made['id']}", {"enabled": False, "end_within": "01:00:00"}, format="json")
    assert changed.status_code == 200
    assert (changed.json()["enabled"], changed.json()["end_within"]) == (False, "01:00:00")
    assert changed.json()["timing"] == made["timing"]  # what was not sent stays
    refused = staff_api.patch(f"{SCHEDULES}/{made['id']}", {"every_seconds": 60}, format="json")
    assert refused.status_code == 400  # SYS_HEALTH_CHECK keeps one run a day

    task = JobSchedule.objects.get(pk=made["id"]).periodic_task_id
    assert staff_api.delete(f"{SCHEDULES}/{made['id']}").status_code == 204
    assert not PeriodicTask.objects.filter(pk=task).exists()


def test_a_company_member_cannot_write_schedules(api, owner):
    response = api.as_user(owner).post(SCHEDULES, {"job": "SYS_HEALTH_CHECK", "every_seconds": 86400}, format="json")

    assert response.status_code == 403


# --- Deadlines ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "slot", "expected"),
    [
        ({"start_within": datetime.timedelta(minutes=30)}, (23, 0), ((23, 30), None)),
        # a time of day earlier than the slot's is the next day's, in the schedule's zone
        ({"end_by": datetime.time(6, 0)}, (23, 0), (None, (6, 0, 1))),
        (
            {"start_by": datetime.time(23, 15), "end_within": datetime.timedelta(hours=2)},
            (23, 0),
            ((23, 15), (1, 0, 1)),
        ),
    ],
)
def test_deadlines_are_offsets_or_the_first_time_of_day_after_the_slot(fields, slot, expected):
    schedule = schedule_for("GL_DAILY_CLOSE", minute="0", hour="23", timezone="Europe/London")
    for name, value in fields.items():
        setattr(schedule, name, value)
    slot_at = datetime.datetime(2026, 7, 1, *slot, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))  # BST

    start, end = schedule.deadlines(slot_at.astimezone(UTC))

    def at(parts):
        if parts is None:
            return None
        hour, minute, *day = parts
        local = datetime.datetime(2026, 7, 1 + (day[0] if day else 0), hour, minute)
        return local.replace(tzinfo=datetime.timezone(datetime.timedelta(hours=1))).astimezone(UTC)

    assert (start, end) == (at(expected[0]), at(expected[1]))
