"""Backfill: every slot of a job's schedule in a range that has no run gets one, in slot
order, one after another per company, respecting dependencies; succeeded slots are never
touched, failed ones only when asked; capped; notifying nobody unless the job allows it.
Through the service, the command, the API and the admin."""

from __future__ import annotations

import datetime
import io

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.urls import reverse
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from notifications.models import Delivery, Notification
from scheduling.choices import RunStatus, Trigger
from scheduling.models import JobDefinition, JobRun, JobSchedule
from scheduling.services import backfill, execution, runs

pytestmark = pytest.mark.django_db
UTC = datetime.UTC
NOW = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
NOV_1, NOV_5 = datetime.date(2026, 11, 1), datetime.date(2026, 11, 5)


@pytest.fixture(autouse=True)
def frozen():
    cache.clear()
    with time_machine.travel(NOW, tick=False):
        yield


def daily(code: str, hour: int = 6, zone: str = "UTC", **fields) -> JobSchedule:
    cron = CrontabSchedule.objects.create(minute="0", hour=str(hour), timezone=zone)
    task = PeriodicTask.objects.create(name=f"{code} daily", task="scheduling.fire_job", crontab=cron)
    return JobSchedule.objects.create(job=JobDefinition.objects.get(code=code), periodic_task=task, **fields)


def monthly(code: str) -> JobSchedule:
    cron = CrontabSchedule.objects.create(minute="0", hour="3", day_of_month="1", timezone="UTC")
    task = PeriodicTask.objects.create(name=f"{code} monthly", task="scheduling.fire_job", crontab=cron)
    return JobSchedule.objects.create(job=JobDefinition.objects.get(code=code), periodic_task=task)


def definition(code: str) -> JobDefinition:
    return JobDefinition.objects.get(code=code)


def drain(on_commit) -> list[str]:
    """Execute what is queued, oldest slot first, as workers would, until nothing is; the
    keys in the order their runs ran."""
    ran = []
    while True:
        queued = JobRun.objects.filter(status=RunStatus.QUEUED).order_by("slot_at", "pk").first()
        if queued is None:
            return ran
        with on_commit(execute=True):
            execution.execute_run(queued.pk, task_id=f"t-{queued.pk}-{queued.attempts}", worker="test@host")
        ran.append(queued.run_key)


# --- The service --------------------------------------------------------------------------------------


def test_every_slot_in_the_range_gets_a_run_in_order_one_after_another(django_capture_on_commit_callbacks):
    daily("TEST_CHAIN_1")

    with django_capture_on_commit_callbacks(execute=True):
        made = backfill.backfill(definition("TEST_CHAIN_1"), NOV_1, NOV_5)

    keys = [run.run_key for run in made.runs]
    assert keys == ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05"]
    assert [run.trigger for run in made.runs] == [Trigger.BACKFILL] * 5
    statuses = [JobRun.objects.get(pk=run.pk).status for run in made.runs]
    assert statuses == [RunStatus.QUEUED] + [RunStatus.WAITING] * 4  # each waits for the slot before
    assert made.runs[1].after_run_id == made.runs[0].pk
    assert drain(django_capture_on_commit_callbacks) == keys


def test_succeeded_slots_are_never_touched_and_failed_ones_only_when_asked(django_capture_on_commit_callbacks):
    daily("TEST_CHAIN_1")
    on_commit = django_capture_on_commit_callbacks
    with on_commit(execute=True):
        done = execution.run_here(runs.request_run(definition("TEST_CHAIN_1"), business_date=NOV_1)[0])
        Group.objects.create(name="fail-TEST_CHAIN_1")
        failed = execution.run_here(
            runs.request_run(definition("TEST_CHAIN_1"), business_date=datetime.date(2026, 11, 3))[0]
        )
        Group.objects.filter(name="fail-TEST_CHAIN_1").delete()
    assert (done.status, failed.status) == (RunStatus.SUCCEEDED, RunStatus.FAILED)

    plan = backfill.backfill(definition("TEST_CHAIN_1"), NOV_1, NOV_5, dry_run=True)
    assert [(slot.key, slot.action) for slot in plan.slots] == [
        ("2026-11-01", "succeeded"),
        ("2026-11-02", "create"),
        ("2026-11-03", "failed"),
        ("2026-11-04", "create"),
        ("2026-11-05", "create"),
    ]
    assert not JobRun.objects.filter(trigger=Trigger.BACKFILL).exists()  # a dry run makes nothing

    with on_commit(execute=True):
        made = backfill.backfill(definition("TEST_CHAIN_1"), NOV_1, NOV_5, rerun_failed=True)

    assert [slot.action for slot in made.slots] == ["succeeded", "create", "rerun", "create", "create"]
    assert [run.run_key for run in made.runs] == ["2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05"]
    drain(on_commit)
    done.refresh_from_db()
    assert done.attempts == 1  # never run again
    assert set(JobRun.objects.filter(job__code="TEST_CHAIN_1").values_list("status", flat=True)) == {"succeeded"}


def test_a_failed_slot_blocks_the_slots_after_it_until_it_is_re_run(django_capture_on_commit_callbacks):
    daily("TEST_CHAIN_1")
    on_commit = django_capture_on_commit_callbacks
    with on_commit(execute=True):
        made = backfill.backfill(definition("TEST_CHAIN_1"), NOV_1, datetime.date(2026, 11, 3))
    first, _second, third = made.runs
    Group.objects.create(name="fail-TEST_CHAIN_1")

    drain(on_commit)

    assert [JobRun.objects.get(pk=run.pk).status for run in made.runs] == ["failed", "blocked", "blocked"]
    assert JobRun.objects.get(pk=third.pk).blocked_by_id == first.pk
    Group.objects.filter(name="fail-TEST_CHAIN_1").delete()
    with on_commit(execute=True):
        runs.rerun(JobRun.objects.get(pk=first.pk))
    assert drain(on_commit) == ["2026-11-01", "2026-11-02", "2026-11-03"]


def test_backfilled_runs_wait_for_their_dependencies_too(django_capture_on_commit_callbacks):
    daily("TEST_CHAIN_2")

    with django_capture_on_commit_callbacks(execute=True):
        made = backfill.backfill(definition("TEST_CHAIN_2"), NOV_1, datetime.date(2026, 11, 2))

    first = JobRun.objects.get(pk=made.runs[0].pk)
    assert first.status == RunStatus.WAITING
    assert runs.dependency_status(first)[1] == (
        "waiting for TEST_CHAIN_1 2026-11-01 (no run yet), TEST_CHAIN_EXTRA 2026-11-01 (no run yet)"
    )


def test_a_per_company_job_is_backfilled_for_each_company_each_in_its_own_order(
    company, other_company, django_capture_on_commit_callbacks
):
    daily("TEST_COMPANY_FAIL")

    with django_capture_on_commit_callbacks(execute=True):
        made = backfill.backfill(definition("TEST_COMPANY_FAIL"), NOV_1, datetime.date(2026, 11, 2))

    by_company = sorted((run.company_id, run.run_key, JobRun.objects.get(pk=run.pk).status) for run in made.runs)
    assert by_company == [
        (company.pk, "2026-11-01", "queued"),
        (company.pk, "2026-11-02", "waiting"),
        (other_company.pk, "2026-11-01", "queued"),
        (other_company.pk, "2026-11-02", "waiting"),
    ]

    only_one = backfill.backfill(definition("TEST_COMPANY_FAIL"), NOV_1, NOV_5, company=company, dry_run=True)
    assert {slot.company_id for slot in only_one.slots} == {company.pk}


def test_a_backfill_over_the_cap_is_refused_unless_forced(settings):
    settings.JOB_BACKFILL_MAX_RUNS = 3
    daily("TEST_CHAIN_1")

    with pytest.raises(backfill.BackfillError, match="5 runs is more than JOB_BACKFILL_MAX_RUNS \\(3\\)"):
        backfill.backfill(definition("TEST_CHAIN_1"), NOV_1, NOV_5)
    assert not JobRun.objects.exists()

    assert len(backfill.backfill(definition("TEST_CHAIN_1"), NOV_1, NOV_5, force=True).runs) == 5


def test_slots_are_read_in_the_schedule_s_zone():
    daily("TEST_CHAIN_1", hour=0, zone="Pacific/Auckland")  # midnight there is 11:00 the day before in UTC

    plan = backfill.backfill(definition("TEST_CHAIN_1"), NOV_1, datetime.date(2026, 11, 2), dry_run=True)

    assert [(slot.key, slot.at) for slot in plan.slots] == [
        ("2026-11-01", datetime.datetime(2026, 10, 31, 11, 0, tzinfo=UTC)),
        ("2026-11-02", datetime.datetime(2026, 11, 1, 11, 0, tzinfo=UTC)),
    ]


def test_a_job_without_a_schedule_or_a_declared_one_cannot_be_backfilled():
    JobSchedule.objects.filter(job__code="SYS_PROBE").delete()

    with pytest.raises(backfill.BackfillError, match="SYS_PROBE has no enabled schedule"):
        backfill.backfill(definition("SYS_PROBE"), NOV_1, NOV_5)


def test_a_backfilled_run_notifies_nobody_unless_its_job_allows(staff, django_capture_on_commit_callbacks):
    monthly("TEST_NOTIFYING")
    on_commit = django_capture_on_commit_callbacks
    with on_commit(execute=True):
        backfill.backfill(
            definition("TEST_NOTIFYING"),
            datetime.date(2026, 9, 1),
            datetime.date(2026, 9, 1),
            params={"user": staff.pk},
        )
    drain(on_commit)
    JobDefinition.objects.filter(code="TEST_NOTIFYING").update(backfill_notifies=True)
    with on_commit(execute=True):
        backfill.backfill(
            definition("TEST_NOTIFYING"),
            datetime.date(2026, 10, 1),
            datetime.date(2026, 10, 1),
            params={"user": staff.pk},
        )
    drain(on_commit)

    silent, told = Notification.objects.get(dedupe_key="2026-09"), Notification.objects.get(dedupe_key="2026-10")
    assert {d.status for d in Delivery.objects.filter(notification=silent)} == {"suppressed"}
    assert Delivery.objects.filter(notification=silent).first().last_error.startswith("silenced: backfill run")
    assert "suppressed" not in {d.status for d in Delivery.objects.filter(notification=told)}


def test_a_backfill_run_is_not_skipped_by_its_job_s_overlap_policy(django_capture_on_commit_callbacks):
    monthly("TEST_NOTIFYING")  # overlap skip, one at a time
    running = JobRun.objects.create(
        job=definition("TEST_NOTIFYING"),
        run_key="2026-11",
        business_date=NOW.date(),
        slot_at=NOW,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.RUNNING,
    )
    with django_capture_on_commit_callbacks(execute=True):
        (run,) = backfill.backfill(
            definition("TEST_NOTIFYING"), datetime.date(2026, 9, 1), datetime.date(2026, 9, 1), params={"user": 1}
        ).runs

    outcome = execution.execute_run(run.pk, task_id="t-1", worker="test@host")

    assert outcome == "requeued: overlap"
    assert JobRun.objects.get(pk=run.pk).status == RunStatus.QUEUED
    assert running.status == RunStatus.RUNNING


# --- The command ---------------------------------------------------------------------------------


def backfill_command(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("backfill", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_command_executes_the_slots_here_in_order(django_capture_on_commit_callbacks):
    daily("TEST_CHAIN_1")

    with django_capture_on_commit_callbacks(execute=True):
        out, err = backfill_command("TEST_CHAIN_1", "--from", "2026-11-01", "--to", "2026-11-03", "--inline")

    assert [line.split(":")[0].split()[-1] for line in out.strip().splitlines()] == [
        "2026-11-01",
        "2026-11-02",
        "2026-11-03",
    ]
    assert all(": succeeded" in line for line in out.strip().splitlines())
    assert "TEST_CHAIN_1 2026-11-01 to 2026-11-03: created 3 run(s)" in err


def test_the_command_s_dry_run_lists_each_slot():
    daily("TEST_CHAIN_1")

    out, _ = backfill_command("test_chain_1", "--from", "2026-11-01", "--to", "2026-11-02", "--dry-run")

    assert out.strip().splitlines() == ["2026-11-01: create", "2026-11-02: create"]
    assert not JobRun.objects.exists()


def test_the_command_stops_at_a_blocked_slot_and_says_which(django_capture_on_commit_callbacks):
    daily("TEST_CHAIN_1")
    Group.objects.create(name="fail-TEST_CHAIN_1")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(CommandError) as stopped:
        backfill_command("TEST_CHAIN_1", "--from", "2026-11-01", "--to", "2026-11-03", "--inline")

    assert str(stopped.value).endswith("failed: JobError: TEST_CHAIN_1 was told to fail")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["NOPE_JOB", "--from", "2026-11-01", "--to", "2026-11-02"], "no job NOPE_JOB; known jobs:"),
        (["TEST_CHAIN_1", "--from", "2026-11-05", "--to", "2026-11-01"], "--to 2026-11-01 is before --from 2026-11-05"),
        (["TEST_CHAIN_1", "--from", "yesterday", "--to", "2026-11-01"], "must be dates, YYYY-MM-DD"),
        (["TEST_CHAIN_1", "--from", "2026-11-01", "--to", "2026-11-02", "--company", "acme"], "no company 'acme'"),
        (["TEST_CHAIN_1", "--from", "2026-11-01", "--to", "2026-11-02", "--param", "x"], "must be KEY=VALUE"),
        (["TEST_CHAIN_1", "--from", "2026-11-01", "--to", "2026-11-02", "--param", "x=1"], "x: unknown parameter"),
    ],
)
def test_bad_command_lines_end_with_one_readable_line(args, message):
    daily("TEST_CHAIN_1")

    with pytest.raises(CommandError) as refused:
        backfill_command(*args)

    assert message in str(refused.value)
    assert "\n" not in str(refused.value)
    assert not JobRun.objects.exists()


# --- The API and the admin ---------------------------------------------------------------------------


def test_the_api_previews_then_makes_a_backfill(api, staff):
    daily("TEST_CHAIN_1")
    client = api.as_user(staff)
    url = "/api/v1/system/jobs/TEST_CHAIN_1/backfill"

    preview = client.post(url, {"first": "2026-11-01", "last": "2026-11-02", "dry_run": True}, format="json")
    made = client.post(url, {"first": "2026-11-01", "last": "2026-11-02"}, format="json")

    assert preview.status_code == 200
    assert [(s["run_key"], s["action"], s["run"]) for s in preview.json()["slots"]] == [
        ("2026-11-01", "create", None),
        ("2026-11-02", "create", None),
    ]
    assert made.status_code == 202
    assert [run["run_key"] for run in made.json()["runs"]] == ["2026-11-01", "2026-11-02"]
    assert made.json()["runs"][1]["after_run"] == made.json()["runs"][0]["id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"first": "2026-11-05", "last": "2026-11-01"}, "non_field_errors"),
        ({"first": "November", "last": "2026-11-01"}, "first"),
        ({"first": "2026-11-01", "last": "2026-11-02", "params": {"x": 1}}, "params"),
        ({"first": "2026-11-01", "last": "2026-11-02", "company": 99}, "company"),
    ],
)
def test_a_bad_backfill_request_is_a_400_naming_its_field(api, staff, body, field):
    daily("TEST_CHAIN_1")

    response = api.as_user(staff).post("/api/v1/system/jobs/TEST_CHAIN_1/backfill", body, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not JobRun.objects.exists()


def test_the_admin_previews_then_makes_a_backfill(admin_client):
    daily("TEST_CHAIN_1")
    job = definition("TEST_CHAIN_1")
    url = reverse("admin:scheduling_jobdefinition_backfill", args=[job.pk])
    form = {"first": "2026-11-01", "last": "2026-11-03", "params": "{}"}

    preview = admin_client.post(url, {**form, "_preview": "Preview"})
    made = admin_client.post(url, {**form, "_backfill": "Backfill"}, follow=True)

    page = preview.content.decode()
    assert "would create 3 run(s)" in page and "2026-11-02" in page
    assert "Backfill 3 run(s)" in page
    assert made.redirect_chain[-1][0].endswith("?job=TEST_CHAIN_1&trigger__exact=backfill")
    assert JobRun.objects.filter(trigger=Trigger.BACKFILL).count() == 3
    assert "created 3 run(s)" in str(next(iter(made.context["messages"])))
    change_page = admin_client.get(reverse("admin:scheduling_jobdefinition_change", args=[job.pk])).content.decode()
    assert url in change_page


def test_the_admin_says_why_a_backfill_is_refused(admin_client):
    daily("TEST_CHAIN_1")
    url = reverse("admin:scheduling_jobdefinition_backfill", args=[definition("TEST_CHAIN_1").pk])

    response = admin_client.post(url, {"first": "2026-11-05", "last": "2026-11-01", "params": "{}", "_preview": "1"})

    assert response.status_code == 200
    assert "is before --from" in response.content.decode()
    assert not JobRun.objects.exists()
