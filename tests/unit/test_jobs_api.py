"""The job layer's API under /api/v1/system/: staff only, one error shape, runs asked for,
listed, inspected, cancelled, re-run and released, health and alerts."""

import csv
import datetime
import io
import json

import pytest
from django.core.cache import cache
from django.utils import timezone

from scheduling.api import jobs as jobs_api
from scheduling.choices import Cause, Level, RunStatus, Severity, Trigger
from scheduling.models import JobAlert, JobDefinition, JobLog, JobRun, JobSchedule
from scheduling.services import execution, runs

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=datetime.UTC)
RUNS = "/api/v1/system/runs"


@pytest.fixture(autouse=True)
def empty_cache():
    # Cancellation flags and live progress live in the cache under run ids, which the
    # rolled-back test database hands out again: one test's flag must not cancel the next's run.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)
    return NOW


@pytest.fixture
def staff_api(api, staff):
    return api.as_user(staff)


def definition(code: str) -> JobDefinition:
    return JobDefinition.objects.get(code=code)


def ask(code: str, day: datetime.date | None = None, **options) -> JobRun:
    run, _ = runs.request_run(definition(code), business_date=day, **options)
    return run


def execute(run: JobRun) -> JobRun:
    execution.execute_run(run.pk, task_id=f"t-{run.pk}-{run.attempts}", worker="test")
    run.refresh_from_db()
    return run


def make_run(code: str, key: str, status: str = RunStatus.QUEUED, **fields) -> JobRun:
    day = datetime.date.fromisoformat(key)
    return JobRun.objects.create(
        job=definition(code),
        run_key=key,
        business_date=day,
        slot_at=datetime.datetime.combine(day, datetime.time(0), tzinfo=datetime.UTC),
        status=status,
        trigger=fields.pop("trigger", Trigger.MANUAL),
        **fields,
    )


# --- Who may call --------------------------------------------------------------------------------

STAFF_ROUTES = [
    ("get", "/api/v1/system/jobs"),
    ("get", "/api/v1/system/jobs/SYS_HEALTH_CHECK"),
    ("get", "/api/v1/system/jobs/status"),
    ("get", "/api/v1/system/jobs/health"),
    ("get", "/api/v1/system/schedules"),
    ("get", RUNS),
    ("post", RUNS),
    ("get", "/api/v1/system/alerts"),
    # Permission is checked before the object is looked up: ids that do not exist are refused too.
    ("get", "/api/v1/system/schedules/1"),
    ("get", f"{RUNS}/1"),
    ("get", f"{RUNS}/1/logs"),
    ("post", f"{RUNS}/1/cancel"),
    ("post", f"{RUNS}/1/rerun"),
    ("post", f"{RUNS}/1/release"),
    ("post", "/api/v1/system/alerts/1/acknowledge"),
]


@pytest.mark.parametrize(("method", "url"), STAFF_ROUTES)
def test_anonymous_caller_is_refused_with_401(client, method, url):
    response = getattr(client, method)(url)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize("actor", ["owner", "outsider"])
@pytest.mark.parametrize(("method", "url"), STAFF_ROUTES)
def test_company_members_who_are_not_staff_are_refused_with_403(api, request, actor, method, url):
    user = request.getfixturevalue(actor)

    response = getattr(api.as_user(user), method)(url, {"job": "SYS_PROBE"}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["status"] == 403


def test_non_staff_cannot_cancel_a_run(api, owner):
    run = make_run("TEST_WRITE", "2026-11-02")

    response = api.as_user(owner).post(f"{RUNS}/{run.pk}/cancel")

    assert response.status_code == 403
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED


# --- Jobs and schedules ----------------------------------------------------------------------------


def test_job_list_shows_platform_and_test_jobs_with_parameters_and_schedules(staff_api):
    response = staff_api.get("/api/v1/system/jobs", {"page_size": 500})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"next", "previous", "results"}
    by_code = {job["code"]: job for job in body["results"]}
    assert {"SYS_HEALTH_CHECK", "SYS_LOG_CLEANUP", "SYS_PROBE", "TEST_WRITE", "TEST_FAIL"} <= set(by_code)
    assert by_code["TEST_WRITE"]["parameters"]["hold"] == {
        "type": "float",
        "required": False,
        "default": 0.0,
        "choices": [],
        "help": "",
    }
    assert by_code["TEST_WRITE"]["schedules"] == []
    [cleanup_schedule] = by_code["SYS_LOG_CLEANUP"]["schedules"]
    assert "last day of the month" in cleanup_schedule["timing"]


def test_one_job_is_found_by_its_code(staff_api):
    response = staff_api.get("/api/v1/system/jobs/SYS_HEALTH_CHECK")

    assert response.status_code == 200
    body = response.json()
    assert body["code"] == "SYS_HEALTH_CHECK"
    assert body["scope"] == "global"
    assert len(body["schedules"]) == 1


def test_unknown_job_code_is_a_404_in_the_error_shape(staff_api):
    response = staff_api.get("/api/v1/system/jobs/NO_SUCH_JOB")

    assert response.status_code == 404
    assert response.json() == {"error": {"status": 404, "code": "not_found", "message": "Not found."}}


def test_every_schedule_lists_its_next_ten_fires(staff_api, frozen):
    response = staff_api.get("/api/v1/system/schedules", {"page_size": 500})

    assert response.status_code == 200
    schedules = response.json()["results"]
    assert schedules
    assert all(len(schedule["next_fires"]) == 10 for schedule in schedules)


def test_log_cleanup_fires_on_the_last_day_of_each_month_at_three(staff_api, frozen):
    schedule = JobSchedule.objects.get(job__code="SYS_LOG_CLEANUP")

    response = staff_api.get(f"/api/v1/system/schedules/{schedule.pk}")

    assert response.status_code == 200
    body = response.json()
    assert body["job"] == "SYS_LOG_CLEANUP"
    assert body["enabled"] is True
    assert body["next_fires"] == [
        "2026-11-30T03:00:00+00:00",
        "2026-12-31T03:00:00+00:00",
        "2027-01-31T03:00:00+00:00",
        "2027-02-28T03:00:00+00:00",
        "2027-03-31T03:00:00+00:00",
        "2027-04-30T03:00:00+00:00",
        "2027-05-31T03:00:00+00:00",
        "2027-06-30T03:00:00+00:00",
        "2027-07-31T03:00:00+00:00",
        "2027-08-31T03:00:00+00:00",
    ]


# --- Asking for runs ---------------------------------------------------------------------------------


def test_asking_for_a_run_answers_202_with_its_id_and_location(staff_api, staff):
    response = staff_api.post(RUNS, {"job": "TEST_WRITE", "business_date": "2026-11-02"}, format="json")

    assert response.status_code == 202
    body = response.json()
    run = JobRun.objects.get(pk=body["id"])
    assert body["created"] is True
    assert response["Location"] == f"{RUNS}/{run.pk}"
    assert body["run"]["status"] == RunStatus.QUEUED
    assert body["run"]["run_key"] == "2026-11-02"
    assert (run.trigger, run.triggered_by) == (Trigger.API, staff)


def test_a_double_click_returns_the_same_run_not_a_second_one(staff_api):
    asked = {"job": "TEST_WRITE", "business_date": "2026-11-02"}
    first = staff_api.post(RUNS, asked, format="json")

    second = staff_api.post(RUNS, asked, format="json")

    assert second.status_code == 202
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["created"] is False
    assert JobRun.objects.filter(job__code="TEST_WRITE").count() == 1


def test_a_parameter_of_the_wrong_type_is_a_400_naming_it(staff_api):
    response = staff_api.post(
        RUNS, {"job": "TEST_WRITE", "business_date": "2026-11-02", "params": {"hold": "abc"}}, format="json"
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["fields"] == {"params": {"hold": ["expected float"]}}
    assert not JobRun.objects.exists()


def test_an_unknown_parameter_is_a_400(staff_api):
    response = staff_api.post(RUNS, {"job": "TEST_WRITE", "params": {"nope": 1}}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"params": {"nope": ["unknown parameter"]}}


def test_an_unknown_job_is_a_400_on_the_job_field(staff_api):
    response = staff_api.post(RUNS, {"job": "NO_SUCH_JOB"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"job": ["no job NO_SUCH_JOB"]}


def test_a_company_job_without_a_company_is_a_400_on_the_company_field(staff_api):
    response = staff_api.post(RUNS, {"job": "TEST_PER_COMPANY", "business_date": "2026-11-02"}, format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["company"]


def test_a_company_job_for_a_company_is_accepted(staff_api, company):
    response = staff_api.post(
        RUNS, {"job": "TEST_PER_COMPANY", "business_date": "2026-11-02", "company": company.pk}, format="json"
    )

    assert response.status_code == 202
    assert response.json()["run"]["company"] == company.pk
    assert JobRun.objects.get(pk=response.json()["id"]).company == company


def test_a_platform_job_for_one_company_is_a_400_on_the_company_field(staff_api, company):
    response = staff_api.post(RUNS, {"job": "SYS_PROBE", "company": company.pk}, format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["company"]
    assert not JobRun.objects.exists()


def test_an_unknown_company_is_a_400(staff_api):
    response = staff_api.post(RUNS, {"job": "TEST_PER_COMPANY", "company": 999999}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"company": ["no company 999999"]}


def test_a_malformed_business_date_is_a_400(staff_api):
    response = staff_api.post(RUNS, {"job": "TEST_WRITE", "business_date": "2026-13-01"}, format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["business_date"]


# --- Listing runs -------------------------------------------------------------------------------------


@pytest.fixture
def assorted_runs(company, frozen):
    """Four runs of different jobs, states, triggers and creation days."""
    day = datetime.timedelta(days=1)
    return {
        "write": make_run("TEST_WRITE", "2026-11-02", RunStatus.SUCCEEDED, created_at=NOW - 3 * day),
        "fail": make_run("TEST_FAIL", "2026-11-02", RunStatus.FAILED, created_at=NOW - 2 * day),
        "probe": make_run("SYS_PROBE", "2026-11-03", RunStatus.QUEUED, trigger=Trigger.API, created_at=NOW - day),
        "company": make_run("TEST_PER_COMPANY", "2026-11-03", RunStatus.WAITING, company=company, created_at=NOW),
    }


def listed(staff_api, **query) -> list[int]:
    response = staff_api.get(RUNS, query)
    assert response.status_code == 200, response.json()
    return [run["id"] for run in response.json()["results"]]


def test_runs_are_listed_newest_first_with_cursor_pagination(staff_api, assorted_runs):
    response = staff_api.get(RUNS, {"page_size": 3})

    body = response.json()
    assert set(body) == {"next", "previous", "results"}
    assert [run["id"] for run in body["results"]] == [assorted_runs[name].pk for name in ("company", "probe", "fail")]
    assert body["previous"] is None
    following = staff_api.get(body["next"]).json()
    assert [run["id"] for run in following["results"]] == [assorted_runs["write"].pk]
    assert following["next"] is None


def test_runs_filter_by_job(staff_api, assorted_runs):
    assert listed(staff_api, job="TEST_FAIL") == [assorted_runs["fail"].pk]


def test_runs_filter_by_a_comma_separated_list_of_statuses(staff_api, assorted_runs):
    ids = listed(staff_api, status="succeeded, failed")

    assert ids == [assorted_runs["fail"].pk, assorted_runs["write"].pk]


def test_an_unknown_status_filter_is_a_400(staff_api, assorted_runs):
    response = staff_api.get(RUNS, {"status": "succeeded,exploded"})

    assert response.status_code == 400
    assert "exploded" in response.json()["error"]["fields"]["status"][0]


def test_runs_filter_by_trigger(staff_api, assorted_runs):
    assert listed(staff_api, trigger="api") == [assorted_runs["probe"].pk]


def test_an_unknown_trigger_filter_is_a_400(staff_api, assorted_runs):
    response = staff_api.get(RUNS, {"trigger": "whim"})

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["trigger"]


def test_runs_filter_by_company(staff_api, assorted_runs, company):
    assert listed(staff_api, company=company.pk) == [assorted_runs["company"].pk]


def test_runs_filter_by_run_key(staff_api, assorted_runs):
    assert listed(staff_api, run_key="2026-11-03") == [assorted_runs["company"].pk, assorted_runs["probe"].pk]


def test_runs_filter_by_creation_days_inclusive(staff_api, assorted_runs):
    ids = listed(staff_api, created_from="2026-11-18", created_to="2026-11-19")

    assert ids == [assorted_runs["fail"].pk, assorted_runs["write"].pk]


def test_a_malformed_creation_day_filter_is_a_400(staff_api, assorted_runs):
    response = staff_api.get(RUNS, {"created_from": "yesterday"})

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["created_from"]


def test_listing_thirty_runs_costs_no_query_per_row(staff_api, staff, django_assert_max_num_queries):
    start = datetime.date(2026, 10, 1)
    for offset in range(30):
        make_run("TEST_WRITE", (start + datetime.timedelta(days=offset)).isoformat(), triggered_by=staff)

    with django_assert_max_num_queries(2):
        response = staff_api.get(RUNS)

    assert len(response.json()["results"]) == 30
    assert response.json()["results"][0]["triggered_by"] == "staff"


def test_one_run_shows_its_counts_and_links(staff_api):
    run = make_run("TEST_FANOUT", "2026-11-02", RunStatus.SUCCEEDED, processed=9, chunks_total=3, chunks_done=3)

    response = staff_api.get(f"{RUNS}/{run.pk}")

    assert response.status_code == 200
    body = response.json()
    assert body["counts"] == {"processed": 9, "created": 0, "skipped": 0, "failed": 0}
    assert body["chunks"] == {"total": 3, "done": 3}
    assert body["links"] == {"self": f"{RUNS}/{run.pk}", "logs": f"{RUNS}/{run.pk}/logs"}


def test_an_unknown_run_is_a_404(staff_api):
    response = staff_api.get(f"{RUNS}/999999")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# --- Logs ------------------------------------------------------------------------------------------------


@pytest.fixture
def logged_run(frozen):
    run = make_run("TEST_WRITE", "2026-11-02", RunStatus.FAILED)
    for level, message in [
        (Level.DEBUG, "looking"),
        (Level.INFO, "found 3 rows"),
        (Level.WARNING, "row 2 looks odd"),
        (Level.ERROR, "failed: boom"),
    ]:
        JobLog.objects.create(run=run, attempt=1, at=NOW, level=level, message=message, data={"n": int(level)})
    return run


def test_logs_are_json_lines_in_order(staff_api, logged_run):
    response = staff_api.get(f"{RUNS}/{logged_run.pk}/logs")

    assert response.status_code == 200
    body = response.json()
    assert body["run"] == logged_run.pk
    assert [(line["level"], line["message"]) for line in body["lines"]] == [
        ("debug", "looking"),
        ("info", "found 3 rows"),
        ("warning", "row 2 looks odd"),
        ("error", "failed: boom"),
    ]
    assert body["lines"][0]["data"] == {"n": 10}
    assert body["next_after"] is None


def test_logs_page_on_with_after(staff_api, logged_run, monkeypatch):
    monkeypatch.setattr(jobs_api.RunLogs, "page_size", 3)
    url = f"{RUNS}/{logged_run.pk}/logs"

    first = staff_api.get(url).json()
    rest = staff_api.get(url, {"after": first["next_after"]}).json()

    assert [line["message"] for line in first["lines"]] == ["looking", "found 3 rows", "row 2 looks odd"]
    assert first["next_after"] == first["lines"][-1]["id"]
    assert [line["message"] for line in rest["lines"]] == ["failed: boom"]
    assert rest["next_after"] is None


def test_logs_keep_lines_at_or_above_a_level(staff_api, logged_run):
    body = staff_api.get(f"{RUNS}/{logged_run.pk}/logs", {"level": "warning"}).json()

    assert [line["level"] for line in body["lines"]] == ["warning", "error"]


def test_an_unknown_log_level_is_a_400(staff_api, logged_run):
    response = staff_api.get(f"{RUNS}/{logged_run.pk}/logs", {"level": "loud"})

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["level"]


def test_a_malformed_after_is_a_400(staff_api, logged_run):
    response = staff_api.get(f"{RUNS}/{logged_run.pk}/logs", {"after": "last"})

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["after"]


def download(response) -> str:
    return b"".join(response.streaming_content).decode()


def test_logs_download_as_csv(staff_api, logged_run):
    response = staff_api.get(f"{RUNS}/{logged_run.pk}/logs", {"format": "csv", "level": "warning"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (f'attachment; filename="TEST_WRITE-2026-11-02-run{logged_run.pk}.csv"')
    rows = list(csv.DictReader(io.StringIO(download(response))))
    assert [(row["level"], row["message"]) for row in rows] == [
        ("WARNING", "row 2 looks odd"),
        ("ERROR", "failed: boom"),
    ]
    assert rows[0]["at"] == "2026-11-21T12:00:00+00:00"


def test_logs_download_as_json(staff_api, logged_run):
    response = staff_api.get(f"{RUNS}/{logged_run.pk}/logs", {"format": "json"})

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].endswith(f'run{logged_run.pk}.json"')
    lines = json.loads(download(response))
    assert [line["message"] for line in lines] == ["looking", "found 3 rows", "row 2 looks odd", "failed: boom"]
    assert lines[0]["job"] == "TEST_WRITE"


def test_logs_download_as_text(staff_api, logged_run):
    response = staff_api.get(f"{RUNS}/{logged_run.pk}/logs", {"format": "txt"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"].endswith(f'run{logged_run.pk}.txt"')
    lines = download(response).splitlines()
    assert len(lines) == 4
    assert lines[2] == (
        f'2026-11-21T12:00:00+00:00 [WARNING] TEST_WRITE 2026-11-02 #{logged_run.pk} a1: row 2 looks odd {{"n": 30}}'
    )


def test_an_unknown_log_format_is_a_400(staff_api, logged_run):
    response = staff_api.get(f"{RUNS}/{logged_run.pk}/logs", {"format": "xml"})

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["format"]


# --- Operator actions ---------------------------------------------------------------------------------------


def test_cancelling_a_queued_run_cancels_it(staff_api):
    run = ask("TEST_WRITE", datetime.date(2026, 11, 2))

    response = staff_api.post(f"{RUNS}/{run.pk}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == RunStatus.CANCELLED
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and run.cancel_requested


def test_cancelling_a_running_run_asks_it_to_stop_at_its_next_checkpoint(staff_api):
    run = make_run("TEST_SLOW", "2026-11-02", RunStatus.RUNNING, attempts=1)

    response = staff_api.post(f"{RUNS}/{run.pk}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == RunStatus.RUNNING
    assert response.json()["cancel_requested"] is True
    assert cache.get(runs.cancel_key(run.pk)) is True


def test_cancelling_a_succeeded_run_is_a_409(staff_api):
    run = execute(ask("TEST_WRITE", datetime.date(2026, 11, 2)))
    assert run.status == RunStatus.SUCCEEDED

    response = staff_api.post(f"{RUNS}/{run.pk}/cancel")

    assert response.status_code == 409
    assert response.json() == {
        "error": {"status": 409, "code": "conflict", "message": "a succeeded run cannot be cancelled"}
    }


def test_rerunning_a_failed_run_queues_it_as_a_new_round_of_attempts(staff_api, staff):
    run = execute(ask("TEST_FAIL", datetime.date(2026, 11, 2)))
    assert (run.status, run.attempts) == (RunStatus.FAILED, 1)

    response = staff_api.post(f"{RUNS}/{run.pk}/rerun")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == RunStatus.QUEUED
    assert (body["attempts"], body["tries"]) == (1, 0)  # the failed attempt stays on record; none tried anew
    assert [(a["number"], a["status"]) for a in body["attempt_history"]] == [(1, "failed")]
    assert body["error"] == ""
    assert (body["trigger"], body["triggered_by"]) == (Trigger.RETRY, "staff")


def test_rerunning_a_queued_run_is_a_409(staff_api):
    run = ask("TEST_WRITE", datetime.date(2026, 11, 2))

    response = staff_api.post(f"{RUNS}/{run.pk}/rerun")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"


def test_releasing_a_waiting_run_queues_it_without_its_upstream(staff_api):
    run = ask("TEST_DOWNSTREAM", datetime.date(2026, 11, 2))
    assert run.status == RunStatus.WAITING

    response = staff_api.post(f"{RUNS}/{run.pk}/release")

    assert response.status_code == 200
    assert response.json()["status"] == RunStatus.QUEUED
    assert JobLog.objects.filter(run=run, message__contains="without its dependencies").exists()


def test_releasing_a_succeeded_run_is_a_409(staff_api):
    run = execute(ask("TEST_WRITE", datetime.date(2026, 11, 2)))

    response = staff_api.post(f"{RUNS}/{run.pk}/release")

    assert response.status_code == 409
    assert "only waiting or blocked runs can be released" in response.json()["error"]["message"]


def test_an_action_on_an_unknown_run_is_a_404(staff_api):
    response = staff_api.post(f"{RUNS}/999999/cancel")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# --- Status, health and alerts ------------------------------------------------------------------------------


@pytest.fixture
def failed_twice(django_capture_on_commit_callbacks):
    """TEST_FAIL failed for two days in a row, with the follow-ups (alerts) evaluated."""
    failed = []
    for day in (datetime.date(2026, 11, 2), datetime.date(2026, 11, 3)):
        with django_capture_on_commit_callbacks(execute=True):
            failed.append(execute(ask("TEST_FAIL", day)))
    assert [run.status for run in failed] == [RunStatus.FAILED, RunStatus.FAILED]
    return failed


def test_a_job_failing_twice_in_a_row_is_critical_with_one_open_alert(staff_api, failed_twice, frozen):
    response = staff_api.get("/api/v1/system/jobs/health")

    assert response.status_code == 200
    body = response.json()
    assert body["health"] == "critical"
    row = next(row for row in body["jobs"] if row["job"] == "TEST_FAIL")
    assert row["health"] == "critical"
    assert row["consecutive_failures"] == 2
    assert row["open_alerts"] == 1
    assert row["failures_7d"] == 2
    assert row["last_run"]["id"] == failed_twice[-1].pk


def test_a_job_that_succeeded_is_good(staff_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = execute(ask("TEST_WRITE", datetime.date(2026, 11, 2)))
    assert run.status == RunStatus.SUCCEEDED

    body = staff_api.get("/api/v1/system/jobs/health").json()

    row = next(row for row in body["jobs"] if row["job"] == "TEST_WRITE")
    assert row["health"] == "good"
    assert row["consecutive_failures"] == 0
    assert row["last_success_at"] is not None


def test_jobs_status_counts_active_runs_and_open_alerts(staff_api, failed_twice):
    ask("TEST_WRITE", datetime.date(2026, 11, 2))

    response = staff_api.get("/api/v1/system/jobs/status")

    assert response.status_code == 200
    body = response.json()
    assert body["active"][RunStatus.QUEUED] == 1
    assert body["finished_24h"] == {RunStatus.FAILED: 2}
    assert body["open_alerts"] == 1
    assert body["running"] == []
    assert body["beat_leader"] is None


@pytest.fixture
def two_alerts(staff):
    write, fail = definition("TEST_WRITE"), definition("TEST_FAIL")
    open_alert = JobAlert.objects.create(
        job=fail, cause=Cause.CONSECUTIVE_FAILURES, severity=Severity.CRITICAL, message="failed twice"
    )
    closed_alert = JobAlert.objects.create(
        job=write, cause=Cause.SLOW_RUN, message="slow", acknowledged_at=timezone.now(), acknowledged_by=staff
    )
    return open_alert, closed_alert


def alert_ids(staff_api, **query) -> list[int]:
    response = staff_api.get("/api/v1/system/alerts", query)
    assert response.status_code == 200, response.json()
    return [alert["id"] for alert in response.json()["results"]]


def test_alerts_filter_by_open_or_closed(staff_api, two_alerts):
    open_alert, closed_alert = two_alerts

    assert alert_ids(staff_api, open="true") == [open_alert.pk]
    assert alert_ids(staff_api, open="false") == [closed_alert.pk]
    assert sorted(alert_ids(staff_api)) == sorted([open_alert.pk, closed_alert.pk])


def test_an_unreadable_open_filter_is_a_400(staff_api, two_alerts):
    response = staff_api.get("/api/v1/system/alerts", {"open": "maybe"})

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"open": ["true or false"]}


def test_acknowledging_an_alert_closes_it_in_the_callers_name(staff_api, two_alerts, frozen):
    open_alert, _ = two_alerts

    response = staff_api.post(f"/api/v1/system/alerts/{open_alert.pk}/acknowledge")

    assert response.status_code == 200
    body = response.json()
    assert body["is_open"] is False
    assert body["acknowledged_by"] == "staff"
    assert body["acknowledged_at"] == "2026-11-21T12:00:00Z"
    assert alert_ids(staff_api, open="true") == []


def test_the_failure_alert_is_listed_after_two_failures(staff_api, failed_twice):
    [alert] = staff_api.get("/api/v1/system/alerts", {"open": "true"}).json()["results"]

    assert alert["job"] == "TEST_FAIL"
    assert alert["cause"] == Cause.CONSECUTIVE_FAILURES
    assert alert["severity"] == Severity.CRITICAL
    assert alert["run"] == failed_twice[-1].pk
