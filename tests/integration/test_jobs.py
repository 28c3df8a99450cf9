"""The job layer across real processes: beats, workers, PostgreSQL and Redis."""

from __future__ import annotations

import datetime
import itertools
import time

import pytest
from django.contrib.auth.models import Group
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from notifications.models import Delivery, DeliveryStatus, Notification
from scheduling.choices import Cause, RunStatus
from scheduling.models import BeatLease, JobAlert, JobDefinition, JobRun, JobSchedule
from scheduling.services import runs
from tests.factories import UserFactory
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

# Short limits so Redis hands a dead worker's unacknowledged message on within seconds.
SHORT = {
    "CELERY_TASK_SOFT_TIME_LIMIT": "8",
    "CELERY_TASK_TIME_LIMIT": "9",
    "CELERY_VISIBILITY_TIMEOUT": "10",
    "NOTIFY_RETRY_BACKOFF_MAX": "5",  # below the visibility timeout, as the settings insist
}
DAY = datetime.date(2026, 11, 2)


def request(code: str, day: datetime.date = DAY, **params) -> JobRun:
    run, _ = runs.request_run(JobDefinition.objects.get(code=code), business_date=day, params=params)
    return run


def finished(run: JobRun, timeout: float = 60) -> JobRun:
    def done():
        run.refresh_from_db()
        return run.is_finished or run.status == RunStatus.BLOCKED

    wait_for(done, timeout=timeout, what=f"run {run.pk} ({run.job.code}) to finish")
    return run


def test_two_beats_fire_an_every_minute_job_once_per_minute_and_the_standby_takes_over(start_worker, start_beat):
    every_minute, _ = CrontabSchedule.objects.get_or_create(minute="*", hour="*", timezone="UTC")
    task = PeriodicTask.objects.create(
        name="TEST_MINUTE every minute", task="scheduling.fire_job", crontab=every_minute
    )
    JobSchedule.objects.create(job=JobDefinition.objects.get(code="TEST_MINUTE"), periodic_task=task)
    start_worker(concurrency=2)
    fast_lease = {"BEAT_LEASE_SECONDS": "6"}
    beats = [start_beat(env=fast_lease), start_beat(env=fast_lease)]
    lease = wait_for(lambda: BeatLease.objects.filter(name="beat").first(), what="a beat to take the lease")
    leader = next(beat for beat in beats if lease.holder.endswith(f":{beat.pid}"))
    standby = next(beat for beat in beats if beat is not leader)
    minute_runs = JobRun.objects.filter(job__code="TEST_MINUTE")

    wait_for(lambda: minute_runs.filter(status=RunStatus.SUCCEEDED).count() >= 1, timeout=75, what="a first run")
    leader.kill()
    fired_before = minute_runs.count()
    wait_for(lambda: minute_runs.count() > fired_before, timeout=75, what="the standby to fire the next minute")
    wait_for(lambda: not minute_runs.exclude(status=RunStatus.SUCCEEDED).exists(), timeout=30, what="runs to finish")

    keys = sorted(minute_runs.values_list("run_key", flat=True))
    slots = sorted(minute_runs.values_list("slot_at", flat=True))
    assert len(keys) == len(set(keys))
    assert all(b - a == datetime.timedelta(minutes=1) for a, b in itertools.pairwise(slots)), slots
    # each run's write happened once: one group per minute, as many as runs
    assert Group.objects.filter(name__startswith="minute-").count() == len(keys)
    assert BeatLease.objects.get(name="beat").holder.endswith(f":{standby.pid}")
    standby.wait_for_output("now the leader", timeout=5)


def test_kill_9_mid_run_leaves_nothing_half_done_and_nothing_done_twice(start_worker):
    first = start_worker(concurrency=2, env=SHORT)
    atomic = request("TEST_WRITE", hold=4)
    fanned = request("TEST_FANOUT", chunks=3, size=3, hold=4)
    wait_for(
        lambda: (
            JobRun.objects.filter(pk=atomic.pk, status=RunStatus.RUNNING).exists()
            and fanned.chunks.filter(status="done").count() == 0
            and JobRun.objects.filter(pk=fanned.pk, chunks_total=3).exists()
        ),
        timeout=30,
        what="both runs in flight",
    )
    time.sleep(1)  # inside the job functions' hold, writes done but not committed

    first.kill()
    assert not Group.objects.filter(name=f"write-{atomic.pk}").exists()  # rolled back with the worker
    time.sleep(11)  # past the visibility timeout: Redis hands the messages on
    start_worker(concurrency=2, env=SHORT)

    atomic, fanned = finished(atomic, timeout=90), finished(fanned, timeout=90)
    assert atomic.status == RunStatus.SUCCEEDED
    assert atomic.attempts == 2
    assert Group.objects.filter(name=f"write-{atomic.pk}").count() == 1
    assert fanned.status == RunStatus.SUCCEEDED
    assert Group.objects.filter(name__startswith=f"chunk-{fanned.pk}-").count() == 9
    assert (fanned.chunks_done, fanned.processed, fanned.created) == (3, 9, 9)
    assert "was lost with worker" in " ".join(atomic.logs.values_list("message", flat=True))


def test_a_job_failing_twice_raises_one_alert_and_staff_get_one_email(start_worker):
    ops = UserFactory(username="ops", email="ops@example.com", is_staff=True)
    worker = start_worker()

    first = finished(request("TEST_FAIL", DAY))
    assert first.status == RunStatus.FAILED
    assert "the ledger is on fire" in first.error
    assert not JobAlert.objects.exists()
    finished(request("TEST_FAIL", DAY + datetime.timedelta(days=1)))
    finished(request("TEST_FAIL", DAY + datetime.timedelta(days=2)))

    alert = JobAlert.objects.get()
    assert (alert.cause, alert.severity, alert.occurrences) == (Cause.CONSECUTIVE_FAILURES, "critical", 2)
    wait_for(lambda: JobAlert.objects.filter(pk=alert.pk, notified_at__isnull=False).exists(), what="notification")
    # the email goes out in a task of its own, after the alert's
    email = wait_for(
        lambda: Delivery.objects.filter(
            notification__user=ops, notification__kind="job_alert", channel="email", status=DeliveryStatus.SENT
        ).first(),
        what="the alert's email to be sent",
    )
    assert worker.output().count("Subject: [Countinghouse critical] TEST_FAIL") == 1
    assert f"Message-ID: {email.provider_message_id}" in worker.output()
    (in_app,) = wait_for(lambda: list(Notification.objects.inbox(ops)), what="the alert in the staff inbox")
    assert in_app == email.notification and in_app.data["alert"] == alert.pk
    assert Notification.objects.filter(kind="job_alert").count() == 1


def test_a_dependent_job_starts_after_its_upstream_and_is_blocked_when_it_fails(start_worker):
    start_worker(concurrency=2)

    waiting = request("TEST_DOWNSTREAM")
    assert waiting.status == RunStatus.WAITING
    time.sleep(1)
    assert JobRun.objects.get(pk=waiting.pk).status == RunStatus.WAITING
    finished(request("TEST_UPSTREAM"))
    downstream = finished(waiting)
    assert downstream.status == RunStatus.SUCCEEDED
    assert Group.objects.filter(name=f"downstream-{DAY}").exists()
    upstream_run = JobRun.objects.get(job__code="TEST_UPSTREAM", run_key=str(DAY))
    assert downstream.started_at > upstream_run.finished_at

    other_day = DAY + datetime.timedelta(days=1)
    blocked = request("TEST_DOWNSTREAM", other_day)
    root = finished(request("TEST_UPSTREAM", other_day, fail=True))
    assert root.status == RunStatus.FAILED
    blocked = finished(blocked)
    assert (blocked.status, blocked.blocked_by_id) == (RunStatus.BLOCKED, root.pk)
    assert JobAlert.objects.open().get(cause=Cause.BLOCKED).run_id == root.pk  # the alert is about the root

    runs.release(blocked)
    assert finished(blocked).status == RunStatus.SUCCEEDED


def test_a_failed_root_blocks_a_three_link_chain_and_its_re_run_lets_the_chain_finish_in_order(start_worker):
    start_worker(concurrency=2)
    extra = finished(request("TEST_CHAIN_EXTRA"))
    second, third = request("TEST_CHAIN_2"), request("TEST_CHAIN_3")
    Group.objects.create(name="fail-TEST_CHAIN_1")

    root = finished(request("TEST_CHAIN_1"))

    assert root.status == RunStatus.FAILED
    held = [
        wait_for(lambda r=r: JobRun.objects.filter(pk=r.pk, status=RunStatus.BLOCKED).first()) for r in (second, third)
    ]
    assert [run.blocked_by_id for run in held] == [root.pk, root.pk]
    alert = JobAlert.objects.open().get(cause=Cause.BLOCKED)
    assert "holds back 2 run(s)" in alert.message

    Group.objects.filter(name="fail-TEST_CHAIN_1").delete()
    runs.rerun(root)
    done = [finished(run) for run in (root, second, third)]

    assert [run.status for run in done] == [RunStatus.SUCCEEDED] * 3
    assert extra.finished_at < done[1].started_at
    assert done[0].finished_at < done[1].started_at and done[1].finished_at < done[2].started_at
    alert.refresh_from_db()
    assert alert.resolved_at is not None
    assert list(done[0].attempt_history.values_list("number", "status")) == [(1, "failed"), (2, "succeeded")]
