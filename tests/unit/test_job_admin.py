"""The job layer's admin: pages answer, changelists stay O(1) in queries, actions call the
services and report refusals, log exports follow the changelist's filters."""

from __future__ import annotations

import csv
import datetime
import io
import json

import pytest
import time_machine
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse
from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

from scheduling.choices import Cause, Level, RunStatus, Scope
from scheduling.models import (
    BeatLease,
    BusinessCalendar,
    Holiday,
    JobAlert,
    JobChunk,
    JobDefinition,
    JobLog,
    JobPerformance,
    JobRun,
    JobSchedule,
)
from scheduling.services import firing

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 11, 21, 10, 0, tzinfo=datetime.UTC)
ROWS = 30


@pytest.fixture(autouse=True)
def frozen_time():
    with time_machine.travel(NOW, tick=False):
        # The test database was migrated, and the schedules' next fires computed, on the real
        # clock: compute them again from the frozen one.
        JobSchedule.objects.update(fingerprint="")
        firing.refresh_schedules()
        yield


@pytest.fixture
def health():
    return JobDefinition.objects.get(code="SYS_HEALTH_CHECK")


def make_run(job, day: int, status=RunStatus.SUCCEEDED, **fields) -> JobRun:
    business_date = datetime.date(2026, 10, 1) + datetime.timedelta(days=day)
    return JobRun.objects.create(
        job=job,
        run_key=business_date.isoformat(),
        business_date=business_date,
        slot_at=datetime.datetime.combine(business_date, datetime.time(5), tzinfo=datetime.UTC),
        trigger="manual",
        status=status,
        **fields,
    )


def make_log(run, message: str, level=Level.INFO, at=NOW, **data) -> JobLog:
    return JobLog.objects.create(run=run, message=message, level=level, at=at, data=data)


def url(model, view: str, *args) -> str:
    return reverse(f"admin:scheduling_{model._meta.model_name}_{view}", args=args)


def act(admin_client, model, action: str, *objects):
    data = {"action": action, ACTION_CHECKBOX_NAME: [obj.pk for obj in objects]}
    return admin_client.post(url(model, "changelist"), data, follow=True)


def texts(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.fixture
def records(health, admin_user):
    """One row of every job-layer table, for the page sweep."""
    run = make_run(health, 0, progress_done=3, progress_total=4, duration=1.5)
    JobChunk.objects.create(run=run, index=0, status="done")
    make_log(run, "hello", rows=3)
    JobAlert.objects.create(job=health, run=run, cause=Cause.SLOW_RUN, message="slow")
    JobPerformance.objects.create(
        job=health, window_start=NOW, window_end=NOW, runs=1, succeeded=1, failed=0, p50=1, p95=1, p99=1, longest=1
    )
    BeatLease.objects.create(name="beat", holder="host:1", acquired_at=NOW, expires_at=NOW)
    calendar = BusinessCalendar.objects.create(name="UK", weekend=[5, 6])
    Holiday.objects.create(calendar=calendar, date=datetime.date(2026, 12, 25), name="Christmas")


@pytest.mark.parametrize(
    "model",
    [JobDefinition, JobSchedule, BusinessCalendar, JobRun, JobLog, JobAlert, JobPerformance, BeatLease],
)
def test_every_changelist_and_change_page_answers(admin_client, records, model):
    obj = model.objects.first()

    assert admin_client.get(url(model, "changelist")).status_code == 200
    assert admin_client.get(url(model, "change", obj.pk)).status_code == 200


def test_the_log_export_view_sends_strangers_to_the_login(client):
    response = client.get(reverse("admin:scheduling_joblog_export") + "?format=csv")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


# --- Query counts --------------------------------------------------------------------------


@pytest.fixture
def many(health, admin_user):
    """At least ROWS definitions with a schedule each, and ROWS runs with a log line and an
    alert each, spread over every job."""
    crontab = CrontabSchedule.objects.create(minute="0", hour="6", timezone="Europe/London")
    for i in range(ROWS - min(JobDefinition.objects.count(), JobSchedule.objects.count())):
        extra = JobDefinition.objects.create(code=f"EXTRA_{i}", title=f"Extra {i}", registered=False)
        task = PeriodicTask.objects.create(name=f"extra {i}", task="scheduling.fire_job", crontab=crontab)
        JobSchedule.objects.create(job=extra, periodic_task=task, rule="last_day_of_month")
    jobs = list(JobDefinition.objects.all())
    for i in range(ROWS):
        run = make_run(jobs[i % len(jobs)], i, status=RunStatus.RUNNING if i % 3 else RunStatus.SUCCEEDED)
        make_log(run, f"line {i}", step=i)
        # resolved, because only one alert per (job, cause) may be open
        JobAlert.objects.create(job=run.job, run=run, cause=Cause.SLOW_RUN, message=f"slow {i}", resolved_at=NOW)


@pytest.mark.parametrize("model", [JobDefinition, JobSchedule, JobRun, JobLog, JobAlert])
def test_changelists_take_a_fixed_number_of_queries(admin_client, many, django_assert_max_num_queries, model):
    with django_assert_max_num_queries(10):
        response = admin_client.get(url(model, "changelist"))

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) >= ROWS


def test_definition_list_shows_last_run_next_fire_and_success_rate(admin_client, health):
    for day in range(12):
        make_run(health, day)
    failed = make_run(health, 12, status=RunStatus.FAILED)

    response = admin_client.get(url(JobDefinition, "changelist"))

    row = next(obj for obj in response.context["cl"].result_list if obj.code == "SYS_HEALTH_CHECK")
    assert (row.last_run_id, row.last_run_status) == (failed.pk, "failed")
    assert row.next_fire_at == datetime.datetime(2026, 11, 22, 5, 0, tzinfo=datetime.UTC)  # 05:00 daily, after NOW
    assert "12/13 (92%)" in response.content.decode()


# --- Definitions -----------------------------------------------------------------------------


def test_run_now_creates_one_run_and_a_second_click_none(admin_client, health, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        first = act(admin_client, JobDefinition, "run_now", health)
        second = act(admin_client, JobDefinition, "run_now", health)

    run = JobRun.objects.get(job=health)
    assert (run.run_key, run.status, run.trigger) == ("2026-11-21", RunStatus.QUEUED, "manual")
    assert f"#{run.pk}" in texts(first)[0] and "created" in texts(first)[0]
    assert "already existed" in texts(second)[0]


def test_run_now_tells_a_company_job_needs_a_company(admin_client, health):
    JobDefinition.objects.filter(pk=health.pk).update(scope=Scope.COMPANY)

    response = act(admin_client, JobDefinition, "run_now", health)

    assert not JobRun.objects.exists()
    assert "runs per company" in texts(response)[0]


def test_run_now_reports_bad_parameters_as_an_error(admin_client):
    stats = JobDefinition.objects.get(code="SYS_PERFORMANCE_STATS")
    JobDefinition.objects.filter(pk=stats.pk).update(default_params={"window_days": 0})

    response = act(admin_client, JobDefinition, "run_now", stats)

    assert response.status_code == 200
    assert not JobRun.objects.exists()
    assert "window_days" in texts(response)[0]


def test_a_registered_definition_cannot_be_deleted(admin_client, health):
    assert admin_client.get(url(JobDefinition, "delete", health.pk)).status_code == 403


def test_the_definition_page_shows_the_declared_parameters(admin_client):
    stats = JobDefinition.objects.get(code="SYS_PERFORMANCE_STATS")

    response = admin_client.get(url(JobDefinition, "change", stats.pk))

    assert "window_days" in response.content.decode()


# --- Schedules and calendars -----------------------------------------------------------------


def test_schedule_page_shows_ten_fire_times(admin_client, health):
    schedule = health.schedules.get()

    page = admin_client.get(url(JobSchedule, "change", schedule.pk)).content.decode()

    assert page.count("<li>Sun 2026-11-22 05:00 UTC") == 1
    assert page.count(" UTC &nbsp;·&nbsp; ") == 10


def schedule_form(schedule: JobSchedule, **changes) -> dict:
    data = {
        "job": schedule.job_id,
        "periodic_task": schedule.periodic_task_id or "",
        "company": "",
        "rule": schedule.rule,
        "rule_n": schedule.rule_n or "",
        "rule_month": schedule.rule_month or "",
        "shift": schedule.shift,
        "business_calendar": schedule.business_calendar_id or "",
    }
    return {**data, **changes}


def test_saving_a_schedule_recomputes_its_next_fire_at_once(admin_client, health):
    schedule = health.schedules.get()
    before = PeriodicTasks.last_change()

    response = admin_client.post(
        url(JobSchedule, "change", schedule.pk), schedule_form(schedule, rule="day_of_month", rule_n=15)
    )

    assert response.status_code == 302
    schedule.refresh_from_db()
    assert schedule.next_fire_at == datetime.datetime(2026, 12, 15, 5, 0, tzinfo=datetime.UTC)
    assert PeriodicTasks.last_change() != before


def test_a_schedule_without_periodic_task_is_a_form_error(admin_client, health):
    response = admin_client.post(url(JobSchedule, "add"), schedule_form(JobSchedule(job=health), rule="quarter_end"))

    assert response.status_code == 200
    assert "periodic_task" in response.context["adminform"].form.errors


def test_a_new_holiday_moves_fire_times(admin_client, health):
    calendar = BusinessCalendar.objects.create(name="UK", weekend=[5, 6])
    schedule = health.schedules.get()
    JobSchedule.objects.filter(pk=schedule.pk).update(
        business_calendar=calendar, rule="nth_working_day", rule_n=1, fingerprint=""
    )
    data = {
        "name": "UK",
        "weekend": "[5, 6]",
        "description": "",
        "holidays-TOTAL_FORMS": 1,
        "holidays-INITIAL_FORMS": 0,
        "holidays-0-date": "2026-12-01",
        "holidays-0-name": "Made-up holiday",
    }

    response = admin_client.post(url(BusinessCalendar, "change", calendar.pk), data)

    assert response.status_code == 302
    schedule.refresh_from_db()
    assert schedule.next_fire_at == datetime.datetime(2026, 12, 2, 5, 0, tzinfo=datetime.UTC)


# --- Runs ------------------------------------------------------------------------------------


def test_cancel_cancels_a_queued_run_and_refuses_a_succeeded_one(admin_client, health):
    queued = make_run(health, 0, status=RunStatus.QUEUED)
    succeeded = make_run(health, 1, status=RunStatus.SUCCEEDED)

    response = act(admin_client, JobRun, "cancel_runs", queued, succeeded)

    queued.refresh_from_db()
    succeeded.refresh_from_db()
    assert (queued.status, succeeded.status) == (RunStatus.CANCELLED, RunStatus.SUCCEEDED)
    assert texts(response) == [f"Cancel: 1 done, 1 refused: #{succeeded.pk}: a succeeded run cannot be cancelled"]


def test_rerun_and_release_report_what_they_did(admin_client, health, django_capture_on_commit_callbacks):
    failed = make_run(health, 0, status=RunStatus.FAILED)
    running = make_run(health, 1, status=RunStatus.RUNNING)

    with django_capture_on_commit_callbacks(execute=False):
        rerun = act(admin_client, JobRun, "rerun_runs", failed)
        release = act(admin_client, JobRun, "release_runs", running)

    failed.refresh_from_db()
    assert failed.status == RunStatus.QUEUED
    assert texts(rerun) == ["Re-run: 1 done"]
    assert texts(release)[0].startswith("Release: 0 done, 1 refused: ")


def test_run_page_is_read_only_and_links_its_log_exports(admin_client, health):
    run = make_run(health, 0)
    for i in range(250):
        make_log(run, f"line {i}")

    response = admin_client.get(url(JobRun, "change", run.pk))
    page = response.content.decode()

    assert 'name="_save"' not in page
    assert f"export/?format=csv&amp;run__id__exact={run.pk}" in page
    attempts, _chunks, log_inline = response.context["inline_admin_formsets"]
    assert len(log_inline.formset.forms) == 200
    assert attempts.formset.prefix == "attempt_history"
    assert admin_client.post(url(JobRun, "change", run.pk), {}).status_code == 403


# --- Logs ------------------------------------------------------------------------------------


@pytest.fixture
def logs(health):
    """Two runs of two jobs; the first has three lines, one of them an error."""
    first = make_run(health, 0)
    other = make_run(JobDefinition.objects.get(code="SYS_WATCHDOG"), 0)
    make_log(first, "started", at=NOW - datetime.timedelta(minutes=2))
    make_log(first, "database: failing", level=Level.ERROR, at=NOW - datetime.timedelta(minutes=1), check="db")
    make_log(first, "finished")
    make_log(other, "watching")
    return first, other


def export(admin_client, query: str):
    response = admin_client.get(reverse("admin:scheduling_joblog_export") + "?" + query)
    assert response.status_code == 200, response.content
    return response, b"".join(response.streaming_content).decode()


def test_log_changelist_accepts_run_and_date_filters(admin_client, logs):
    first, _ = logs

    by_run = admin_client.get(url(JobLog, "changelist") + f"?run__id__exact={first.pk}")
    by_date = admin_client.get(
        url(JobLog, "changelist") + "?at__gte=2026-11-21T09:59:30%2B00:00&at__lte=2026-11-22T00:00:00%2B00:00"
    )

    assert {log.message for log in by_run.context["cl"].result_list} == {"started", "database: failing", "finished"}
    assert {log.message for log in by_date.context["cl"].result_list} == {"finished", "watching"}


def test_log_export_csv_holds_only_the_filtered_rows(admin_client, logs):
    first, _ = logs

    response, body = export(admin_client, f"run__id__exact={first.pk}&format=csv")

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].endswith('.csv"')
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [row["message"] for row in rows] == ["finished", "database: failing", "started"]
    assert rows[1] == {
        "at": "2026-11-21T09:59:00+00:00",
        "run_id": str(first.pk),
        "job": "SYS_HEALTH_CHECK",
        "run_key": "2026-10-01",
        "attempt": "1",
        "level": "ERROR",
        "message": "database: failing",
        "data": '{"check": "db"}',
    }


def test_log_export_json_follows_level_and_job_filters(admin_client, logs):
    response, body = export(admin_client, "level=40&job=SYS_HEALTH_CHECK&format=json")

    assert response["Content-Type"] == "application/json"
    assert [(row["message"], row["data"]) for row in json.loads(body)] == [("database: failing", {"check": "db"})]


def test_log_export_txt_follows_the_search(admin_client, logs):
    first, _ = logs

    response, body = export(admin_client, "q=failing&format=txt")

    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert body == (
        f"2026-11-21T09:59:00+00:00 [ERROR] SYS_HEALTH_CHECK 2026-10-01 #{first.pk} a1: "
        'database: failing {"check": "db"}\n'
    )


def test_log_export_of_an_empty_list_is_valid_json(admin_client, logs):
    _, body = export(admin_client, "q=nothing-matches&format=json")

    assert json.loads(body) == []


def test_log_export_refuses_an_unknown_format(admin_client, logs):
    response = admin_client.get(reverse("admin:scheduling_joblog_export") + "?format=xml")

    assert response.status_code == 400
    assert response.content == b"format must be csv, json or txt"


def test_log_changelist_links_exports_with_its_filters(admin_client, logs):
    page = admin_client.get(url(JobLog, "changelist") + "?level=40").content.decode()

    assert "/admin/scheduling/joblog/export/?level=40&amp;format=csv" in page


def test_exporting_selected_log_lines(admin_client, logs):
    first, other = logs
    chosen = [first.logs.get(message="started"), other.logs.get()]

    response = act(admin_client, JobLog, "export_txt", *chosen)

    lines = b"".join(response.streaming_content).decode().splitlines()
    assert sorted(line.rsplit(": ", 1)[1] for line in lines) == ["started", "watching"]


# --- Alerts ----------------------------------------------------------------------------------


def test_acknowledge_closes_an_alert(admin_client, admin_user, health):
    alert = JobAlert.objects.create(job=health, cause=Cause.MISSED_RUN, message="missed")

    response = act(admin_client, JobAlert, "acknowledge", alert)
    again = act(admin_client, JobAlert, "acknowledge", alert)

    alert.refresh_from_db()
    assert (alert.is_open, alert.acknowledged_by) == (False, admin_user)
    assert texts(response) == ["1 acknowledged"]
    assert texts(again) == ["0 acknowledged, 1 already closed"]
    assert list(JobAlert.objects.open()) == []
    listed = admin_client.get(url(JobAlert, "changelist") + "?state=acknowledged").context["cl"].result_list
    assert list(listed) == [alert]
