"""GET /metrics: Prometheus text for a bearer token or a staff login, nobody else."""

import datetime
import re

import pytest
from rest_framework.authtoken.models import Token

from scheduling.choices import Cause, RunStatus, Severity, Trigger
from scheduling.models import BeatLease, JobAlert, JobDefinition, JobPerformance, JobRun

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=datetime.UTC)
SAMPLE = re.compile(r"^countinghouse_[a-z_]+(\{[^}]*\})? -?[0-9.e+-]+$")


@pytest.fixture
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def make_run(code: str, key: str, status: str, **fields) -> JobRun:
    day = datetime.date.fromisoformat(key)
    return JobRun.objects.create(
        job=JobDefinition.objects.get(code=code),
        run_key=key,
        business_date=day,
        slot_at=datetime.datetime.combine(day, datetime.time(0), tzinfo=datetime.UTC),
        status=status,
        trigger=Trigger.MANUAL,
        **fields,
    )


@pytest.fixture
def activity(frozen):
    make_run("TEST_WRITE", "2026-11-01", RunStatus.SUCCEEDED, finished_at=NOW, duration=1.5)
    make_run("TEST_WRITE", "2026-11-02", RunStatus.SUCCEEDED, finished_at=NOW - datetime.timedelta(hours=1))
    make_run("TEST_FAIL", "2026-11-02", RunStatus.FAILED, finished_at=NOW)
    make_run("TEST_SLOW", "2026-11-02", RunStatus.RUNNING, started_at=NOW)
    JobAlert.objects.create(
        job=JobDefinition.objects.get(code="TEST_FAIL"),
        cause=Cause.CONSECUTIVE_FAILURES,
        severity=Severity.CRITICAL,
        message="failed twice",
    )
    JobPerformance.objects.create(
        job=JobDefinition.objects.get(code="TEST_WRITE"),
        window_start=NOW - datetime.timedelta(days=7),
        window_end=NOW,
        runs=2,
        succeeded=2,
        failed=0,
        p50=1.0,
        p95=1.5,
        p99=None,
        computed_at=NOW,
    )


def scrape(client, **headers) -> list[str]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return response.content.decode().splitlines()


# --- Who may scrape ----------------------------------------------------------------------------------


def test_anonymous_scrape_is_refused_with_401(client):
    response = client.get("/metrics")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"countinghouse" not in response.content


def test_a_logged_in_user_who_is_not_staff_is_refused(client, owner):
    client.force_login(owner)

    response = client.get("/metrics")

    assert response.status_code == 401


def test_the_configured_bearer_token_may_scrape(client, settings):
    settings.METRICS_TOKEN = "s3cret"

    lines = scrape(client, HTTP_AUTHORIZATION="Bearer s3cret")

    assert "# TYPE countinghouse_job_runs gauge" in lines


def test_a_wrong_bearer_token_is_refused(client, settings):
    settings.METRICS_TOKEN = "s3cret"

    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong")

    assert response.status_code == 401


def test_a_bearer_token_with_non_ascii_characters_is_refused_not_an_error(client, settings):
    settings.METRICS_TOKEN = "s3cret"

    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s\u00e9cret")

    assert response.status_code == 401


def test_a_bearer_token_means_nothing_while_no_token_is_configured(client, settings):
    settings.METRICS_TOKEN = ""

    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer ")

    assert response.status_code == 401


def test_a_staff_api_token_may_scrape(client, staff):
    token = Token.objects.create(user=staff)

    scrape(client, HTTP_AUTHORIZATION=f"Token {token.key}")


def test_an_api_token_of_a_user_who_is_not_staff_is_refused(client, owner):
    token = Token.objects.create(user=owner)

    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Token {token.key}")

    assert response.status_code == 401


def test_an_unknown_api_token_is_refused(client):
    response = client.get("/metrics", HTTP_AUTHORIZATION="Token nope")

    assert response.status_code == 401


def test_post_is_not_allowed(staff_client):
    response = staff_client.post("/metrics")

    assert response.status_code == 405


# --- What a scrape says -------------------------------------------------------------------------------


def test_runs_are_counted_by_job_and_status(staff_client, activity):
    lines = scrape(staff_client)

    assert 'countinghouse_job_runs{job="TEST_WRITE",status="succeeded"} 2' in lines
    assert 'countinghouse_job_runs{job="TEST_FAIL",status="failed"} 1' in lines
    assert 'countinghouse_job_runs{job="TEST_SLOW",status="running"} 1' in lines
    assert 'countinghouse_job_running{job="TEST_SLOW"} 1' in lines


def test_the_last_success_is_a_unix_timestamp(staff_client, activity):
    lines = scrape(staff_client)

    assert f'countinghouse_job_last_success_timestamp_seconds{{job="TEST_WRITE"}} {NOW.timestamp()}' in lines
    assert not any(
        line.startswith('countinghouse_job_last_success_timestamp_seconds{job="TEST_FAIL"') for line in lines
    )


def test_durations_are_the_latest_percentiles_that_exist(staff_client, activity):
    lines = scrape(staff_client)

    assert 'countinghouse_job_duration_seconds{job="TEST_WRITE",quantile="0.5"} 1.0' in lines
    assert 'countinghouse_job_duration_seconds{job="TEST_WRITE",quantile="0.95"} 1.5' in lines
    assert not any('quantile="0.99"' in line for line in lines)


def test_open_alerts_are_counted_for_every_severity(staff_client, activity):
    lines = scrape(staff_client)

    assert 'countinghouse_open_alerts{severity="critical"} 1' in lines
    assert 'countinghouse_open_alerts{severity="warning"} 0' in lines
    assert 'countinghouse_open_alerts{severity="info"} 0' in lines


def test_every_queue_has_a_depth(staff_client, settings):
    lines = scrape(staff_client)

    for queue in settings.QUEUES:
        assert any(line.startswith(f'countinghouse_queue_depth{{queue="{queue}"}} ') for line in lines)


def test_beat_leader_is_one_while_a_lease_is_live(staff_client, frozen):
    BeatLease.objects.create(
        name="beat", holder="host:1", acquired_at=NOW, expires_at=NOW + datetime.timedelta(seconds=30)
    )

    assert "countinghouse_beat_leader 1" in scrape(staff_client)


def test_beat_leader_is_zero_without_a_live_lease(staff_client, frozen):
    BeatLease.objects.create(
        name="beat", holder="host:1", acquired_at=NOW, expires_at=NOW - datetime.timedelta(seconds=1)
    )

    assert "countinghouse_beat_leader 0" in scrape(staff_client)


def test_every_family_has_help_and_type_and_every_sample_parses(staff_client, activity):
    lines = scrape(staff_client)

    families = [line.split()[2] for line in lines if line.startswith("# TYPE ")]
    assert families == [
        "countinghouse_job_runs",
        "countinghouse_job_last_success_timestamp_seconds",
        "countinghouse_job_duration_seconds",
        "countinghouse_job_running",
        "countinghouse_queue_depth",
        "countinghouse_open_alerts",
        "countinghouse_beat_leader",
    ]
    helped = [line.split()[2] for line in lines if line.startswith("# HELP ")]
    assert helped == families
    samples = [line for line in lines if not line.startswith("#")]
    assert samples
    assert all(SAMPLE.match(line) for line in samples), [line for line in samples if not SAMPLE.match(line)]


def test_a_scrape_costs_the_same_queries_however_many_runs_exist(staff_client, activity, django_assert_num_queries):
    for day in range(1, 21):
        make_run("SYS_PROBE", f"2026-10-{day:02d}", RunStatus.SUCCEEDED, finished_at=NOW)

    # session and user, then one query per family that reads the database
    with django_assert_num_queries(8):
        staff_client.get("/metrics")
