"""The watchdog and outages: stalled runs sent again only when no message exists for them,
late runs alerted while they wait or run, slow runs while they run, waits that cannot end;
an outage told from a fault, retried by the task instead of acknowledged; health answering
during a database outage."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

import psycopg
import pytest
import time_machine
from celery.exceptions import Retry
from django.core.cache import cache
from django.db import IntegrityError, OperationalError
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError

from scheduling import infrastructure, tasks
from scheduling.choices import Cause, RunStatus, Severity
from scheduling.models import ChunkStatus, JobAlert, JobChunk, JobDefinition, JobRun
from scheduling.services import alerts, execution, runs, watchdog

pytestmark = pytest.mark.django_db
UTC = datetime.UTC
NOW = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
DAY = datetime.date(2026, 11, 21)


@pytest.fixture(autouse=True)
def frozen():
    cache.clear()
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def held(monkeypatch):
    """What the broker and workers say they hold: nothing, unless a test says otherwise."""
    messages = watchdog.Messages(ready={"default": 0})
    monkeypatch.setattr(watchdog, "held_messages", lambda queues: messages)
    return messages


@pytest.fixture
def sent(monkeypatch):
    """The messages sent (run and chunk ids), in place of a broker."""
    out = {"runs": [], "chunks": []}
    monkeypatch.setattr(tasks.execute_run, "apply_async", lambda args, **options: out["runs"].append(args[0]))
    monkeypatch.setattr(tasks.execute_chunk, "apply_async", lambda args, **options: out["chunks"].append(tuple(args)))
    return out


def request(code: str, **kwargs) -> JobRun:
    run, _ = runs.request_run(JobDefinition.objects.get(code=code), business_date=DAY, **kwargs)
    return run


def ago(**delta) -> datetime.datetime:
    return NOW - datetime.timedelta(**delta)


def watch(on_commit, **kwargs) -> dict[str, int]:
    with on_commit(execute=True):
        return watchdog.watchdog(missed=False, **kwargs)


# --- Stalled runs ----------------------------------------------------------------------------------------


def test_a_queued_run_whose_message_was_lost_is_sent_again_after_the_grace(
    held, sent, django_capture_on_commit_callbacks
):
    run = request("TEST_WRITE")
    JobRun.objects.filter(pk=run.pk).update(queued_at=ago(minutes=4), due_at=ago(minutes=4))
    sent["runs"].clear()

    found = watch(django_capture_on_commit_callbacks)

    assert found["stalled"] == 1
    assert sent["runs"] == [run.pk]
    alert = JobAlert.objects.get(cause=Cause.STALLED)
    assert (alert.subject, alert.run_id) == (f"run:{run.pk}", run.pk)
    run.refresh_from_db()
    assert run.due_at == NOW  # not again until another grace has passed
    assert watch(django_capture_on_commit_callbacks)["stalled"] == 0


def test_a_queued_run_within_the_grace_or_held_somewhere_is_left_alone(held, sent, django_capture_on_commit_callbacks):
    recent, held_by_worker, in_line = request("TEST_WRITE"), request("TEST_FAIL"), request("TEST_FLAKY")
    JobRun.objects.filter(pk=recent.pk).update(due_at=ago(minutes=2))
    JobRun.objects.filter(pk__in=[held_by_worker.pk, in_line.pk]).update(due_at=ago(minutes=10))
    held.runs.add(held_by_worker.pk)
    sent["runs"].clear()

    held.ready["default"] = 0
    first = watch(django_capture_on_commit_callbacks)
    held.ready["default"] = 7  # others wait on the queue: a run behind them is in line, not lost
    JobRun.objects.filter(pk=in_line.pk).update(due_at=ago(minutes=10))
    second = watch(django_capture_on_commit_callbacks)

    assert sent["runs"] == [in_line.pk]  # only the one nobody holds, and only while the queue is empty
    assert (first["stalled"], second["stalled"]) == (1, 0)


def test_a_retrying_run_is_not_stalled_before_its_retry_is_due(held, sent, django_capture_on_commit_callbacks):
    run = request("TEST_WRITE")
    JobRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RETRYING, queued_at=ago(minutes=30), due_at=NOW + datetime.timedelta(minutes=10)
    )
    sent["runs"].clear()

    assert watch(django_capture_on_commit_callbacks)["stalled"] == 0
    assert sent["runs"] == []


def fanned_out(**chunk_fields) -> JobRun:
    run = request("TEST_FANOUT", params={"chunks": 4})
    execution.execute_run(run.pk, task_id="t-1", worker="w1@host")
    run.refresh_from_db()
    JobChunk.objects.filter(run=run, index=0).update(status=ChunkStatus.DONE)
    JobChunk.objects.filter(run=run, index=1).update(**chunk_fields)
    JobRun.objects.filter(pk=run.pk).update(progress_at=ago(minutes=5), chunks_done=1)
    return run


def test_a_fan_out_s_lost_chunks_are_sent_again_but_never_a_done_or_held_one(
    held, sent, django_capture_on_commit_callbacks
):
    run = fanned_out(started_at=ago(minutes=6), worker="w2@host")  # begun, and its worker no longer has it
    held.workers = 1
    held.chunks.add((run.pk, 2))  # a worker is running this one

    found = watch(django_capture_on_commit_callbacks)

    assert found["stalled"] == 1
    assert sent["chunks"] == [(run.pk, 1), (run.pk, 3)]
    assert JobAlert.objects.get(cause=Cause.STALLED).run_id == run.pk


def test_a_begun_chunk_is_not_sent_again_while_no_worker_can_say_it_has_it(
    held, sent, django_capture_on_commit_callbacks
):
    run = fanned_out(started_at=ago(minutes=6))
    held.workers = 0  # no worker answered: the one that began it may still be at it

    watch(django_capture_on_commit_callbacks)

    assert sent["chunks"] == [(run.pk, 2), (run.pk, 3)]


def test_a_fan_out_that_progresses_is_not_stalled(held, sent, django_capture_on_commit_callbacks):
    run = fanned_out()
    JobRun.objects.filter(pk=run.pk).update(progress_at=ago(minutes=1))

    assert watch(django_capture_on_commit_callbacks)["stalled"] == 0
    assert sent["chunks"] == []


def test_a_stalled_run_shows_in_job_health_until_it_succeeds(held, sent, django_capture_on_commit_callbacks):
    from scheduling.services import monitoring

    run = request("TEST_WRITE")
    JobRun.objects.filter(pk=run.pk).update(due_at=ago(minutes=10))
    watch(django_capture_on_commit_callbacks)

    row = {row["job"]: row for row in monitoring.job_health()}["TEST_WRITE"]
    assert (row["health"], row["stalled_runs"]) == ("critical", 1)
    assert monitoring.jobs_status()["stalled"][0]["id"] == run.pk
    with django_capture_on_commit_callbacks(execute=True):
        execution.execute_run(run.pk, task_id="t-2", worker="w@host")
    assert not JobAlert.objects.open().filter(cause=Cause.STALLED).exists()


# --- Lost runs -------------------------------------------------------------------------------------------


def test_a_run_lost_with_its_worker_is_retried_and_its_attempt_recorded_lost(
    held, sent, django_capture_on_commit_callbacks
):
    run = request("TEST_WRITE")
    execution.claim(run.pk, "t-1", "w1@host")
    JobRun.objects.filter(pk=run.pk).update(started_at=ago(hours=2))

    found = watch(django_capture_on_commit_callbacks)

    run.refresh_from_db()
    assert (found["lost"], run.status) == (1, RunStatus.RETRYING)
    assert list(run.attempt_history.values_list("number", "status")) == [(1, "lost")]
    assert JobAlert.objects.filter(cause=Cause.LOST_RUN).exists()


# --- Deadlines and slow runs ---------------------------------------------------------------------------------


def test_a_run_waiting_past_its_start_deadline_is_late_now_and_resolved_when_it_succeeds(
    held, sent, django_capture_on_commit_callbacks
):
    run = request("TEST_DOWNSTREAM")
    JobRun.objects.filter(pk=run.pk).update(start_deadline_at=ago(minutes=1))

    found = watch(django_capture_on_commit_callbacks)

    alert = JobAlert.objects.get(cause=Cause.LATE)
    assert found["late"] == 1
    assert "has not started (waiting: waiting for TEST_UPSTREAM 2026-11-21 (no run yet))" in alert.message
    assert f"it had to start by {ago(minutes=1):%Y-%m-%d %H:%M} UTC" in alert.message
    with django_capture_on_commit_callbacks(execute=True):
        execution.run_here(request("TEST_UPSTREAM"))
    with django_capture_on_commit_callbacks(execute=True):
        assert execution.run_here(run).status == RunStatus.SUCCEEDED
    alert.refresh_from_db()
    assert alert.resolved_at is not None


def test_a_run_still_running_past_its_end_deadline_is_late_and_critical(held, sent, django_capture_on_commit_callbacks):
    run = request("TEST_WRITE")
    execution.claim(run.pk, "t-1", "w1@host")
    JobRun.objects.filter(pk=run.pk).update(end_deadline_at=ago(seconds=30))

    watch(django_capture_on_commit_callbacks)

    alert = JobAlert.objects.get(cause=Cause.LATE)
    assert alert.severity == Severity.CRITICAL
    assert "is still running; it had to end by" in alert.message


def test_a_run_within_its_deadlines_is_not_late(held, sent, django_capture_on_commit_callbacks):
    run = request("TEST_WRITE")
    JobRun.objects.filter(pk=run.pk).update(
        start_deadline_at=NOW + datetime.timedelta(minutes=1), end_deadline_at=NOW + datetime.timedelta(hours=1)
    )

    assert watch(django_capture_on_commit_callbacks)["late"] == 0


def test_a_run_still_running_past_its_job_s_threshold_alerts_while_it_runs(
    held, sent, django_capture_on_commit_callbacks
):
    JobDefinition.objects.filter(code="TEST_WRITE").update(runtime_threshold=60)
    run = request("TEST_WRITE")
    execution.claim(run.pk, "t-1", "w1@host")
    JobRun.objects.filter(pk=run.pk).update(started_at=ago(seconds=90))

    found = watch(django_capture_on_commit_callbacks)

    assert found["slow"] == 1
    assert JobAlert.objects.get(cause=Cause.SLOW_RUN).message == (
        f"TEST_WRITE {run.run_key} is still running after 90s; its threshold is 60s"
    )


@pytest.mark.parametrize(("duration", "alerted"), [(59.0, False), (61.0, True)])
def test_a_finished_run_over_its_fixed_threshold_alerts(duration, alerted):
    JobDefinition.objects.filter(code="TEST_WRITE").update(runtime_threshold=60)
    run = request("TEST_WRITE")
    JobRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, duration=duration, finished_at=NOW)
    run.refresh_from_db()

    alerts.check_slow(run)

    found = JobAlert.objects.filter(cause=Cause.SLOW_RUN).first()
    assert bool(found) == alerted
    if alerted:
        assert found.message == f"TEST_WRITE {run.run_key} took 61.0s; its threshold is 60s"


# --- Waits that cannot end ---------------------------------------------------------------------------------


def test_a_run_waiting_for_a_job_that_nothing_will_run_is_named(held, sent, django_capture_on_commit_callbacks):
    run = request("TEST_DOWNSTREAM")  # TEST_UPSTREAM has no schedule, and no run for this slot
    JobRun.objects.filter(pk=run.pk).update(created_at=ago(minutes=10))

    found = watch(django_capture_on_commit_callbacks)

    assert found["unmet"] == 1
    alert = JobAlert.objects.get(cause=Cause.BLOCKED, subject=f"run:{run.pk}")
    assert "waits for TEST_UPSTREAM 2026-11-21 (no run yet), which no schedule will make" in alert.message


# --- Outages ------------------------------------------------------------------------------------------------


def sqlstate_error(state: str) -> OperationalError:
    cause = psycopg.errors.lookup(state)("the server said so")
    error = OperationalError(str(cause))
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (OperationalError('connection failed: connection to server at "127.0.0.1" failed: Connection refused'), True),
        (OperationalError("server closed the connection unexpectedly"), True),
        (sqlstate_error("57P01"), True),  # terminating connection due to administrator command
        (sqlstate_error("57P03"), True),  # the database system is starting up
        (sqlstate_error("08006"), True),
        (OperationalError("database is locked"), True),
        (RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."), True),
        (BrokerError("[Errno 111] Connection refused"), True),
        (sqlstate_error("40P01"), False),  # a deadlock is the job's own retry policy's business
        (OperationalError("no such table: billing_invoice"), False),
        (IntegrityError("duplicate key value"), False),
        (ValueError("bad data"), False),
        (ConnectionError("Xero did not answer"), False),  # a remote API: the job's retry policy decides
    ],
)
def test_an_outage_is_told_from_a_fault(error, outage):
    assert infrastructure.is_infrastructure_error(error) is outage


def test_an_outage_inside_a_wrapped_error_is_seen():
    try:
        try:
            raise sqlstate_error("57P01")
        except OperationalError as inner:
            raise RuntimeError("the job's own wrapper") from inner
    except RuntimeError as outer:
        assert infrastructure.is_infrastructure_error(outer)


def test_a_task_that_meets_an_outage_retries_instead_of_being_acknowledged(monkeypatch):
    def outage(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(execution, "execute_chunk", outage)
    retried = {}

    def retry(**options):
        retried.update(options)
        return Retry("retrying")

    task = SimpleNamespace(
        request=SimpleNamespace(retries=3, args=(1, 2)), name="scheduling.execute_chunk", retry=retry
    )

    with pytest.raises(Retry):
        tasks._retry_through_outage(task, OperationalError("server closed the connection unexpectedly"))
    assert retried["max_retries"] is None
    assert 8 <= retried["countdown"] <= 16  # the fourth try: 16 s, half of it jitter

    task.request.retries = infrastructure.TASK_RETRIES
    tasks._retry_through_outage(task, OperationalError("server closed the connection unexpectedly"))  # gives up
    tasks._retry_through_outage(task, ValueError("a fault"))  # not an outage: the task fails as before


def test_retry_delays_double_to_a_minute_with_jitter():
    import random

    rng = random.Random(7)
    delays = [infrastructure.retry_delay(n, rng) for n in range(8)]

    assert 1 <= delays[0] <= 2
    assert all(30 <= delay <= 60 for delay in delays[5:])


def test_a_job_that_meets_an_outage_gets_tries_beyond_its_own_limit(monkeypatch, django_capture_on_commit_callbacks):
    run = request("TEST_FAIL")  # no retries of its own
    spec = JobDefinition.objects.get(code="TEST_FAIL").spec

    def down(ctx):
        raise sqlstate_error("57P03")

    monkeypatch.setattr(spec, "func", down)
    monkeypatch.setattr(infrastructure, "database_usable", lambda: True)  # back by the time it is recorded
    with django_capture_on_commit_callbacks(execute=False):
        outcome = execution.execute_run(run.pk, task_id="t-1", worker="w@host")

    run.refresh_from_db()
    assert outcome.startswith("retrying in")
    assert run.status == RunStatus.RETRYING


def test_health_answers_503_not_500_to_a_staff_caller_while_the_database_is_down(api, staff, monkeypatch):
    client = api.as_user(staff)
    from rest_framework.authtoken.models import Token

    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(Token.objects, "select_related", down)
    from scheduling import health

    monkeypatch.setitem(health.CHECKS, "database", down)

    response = client.get("/api/v1/health")

    assert response.status_code == 503
    assert response.json()["checks"]["database"]["ok"] is False
    assert "detail" not in response.json()["checks"]["database"]  # the caller could not be told staff


def test_a_run_whose_task_tries_again_after_an_outage_is_not_taken_for_lost(django_capture_on_commit_callbacks):
    run = request("TEST_CHAIN_1")  # no retries of its own
    execution.claim(run.pk, "t-1", "w1@host")  # the first try claimed it, then the database went away

    with django_capture_on_commit_callbacks(execute=True):
        outcome = execution.execute_run(run.pk, task_id="t-1", worker="w1@host", after_outage=True)

    run.refresh_from_db()
    assert (outcome, run.status, run.attempts) == ("succeeded", RunStatus.SUCCEEDED, 2)
    assert list(run.attempt_history.values_list("number", "status", "error")) == [
        (1, "lost", "interrupted by an outage"),
        (2, "succeeded", ""),
    ]


def test_the_same_message_again_without_an_outage_is_a_lost_worker_and_counts_against_retries():
    run = request("TEST_CHAIN_1")
    execution.claim(run.pk, "t-1", "w1@host")

    outcome = execution.execute_run(run.pk, task_id="t-1", worker="w2@host")

    run.refresh_from_db()
    assert (outcome, run.status) == ("lost too often; failed", RunStatus.FAILED)
    assert run.error == "lost with worker w1@host 1 times; giving up"
