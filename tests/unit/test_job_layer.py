"""The job layer's services on SQLite: registration, sync, runs, execution, fan-out,
dependencies, alerts, firing with catch-up, the beat lease and the watchdog."""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core import mail
from django.core.cache import cache
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from notifications import tasks as notification_tasks
from notifications.models import Notification
from notifications.services import delivery as notification_delivery
from scheduling import registry
from scheduling.beat import Lease
from scheduling.choices import CatchUp, Cause, RunStatus, Trigger
from scheduling.models import BusinessCalendar, JobAlert, JobDefinition, JobLog, JobPerformance, JobRun, JobSchedule
from scheduling.registry import Param, ParamError, backoff
from scheduling.services import alerts, execution, firing, monitoring, runs, watchdog
from scheduling.services.sync import sync_jobs

pytestmark = pytest.mark.django_db
DAY = datetime.date(2026, 11, 2)
UTC = datetime.UTC


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()


def definition(code: str) -> JobDefinition:
    return JobDefinition.objects.get(code=code)


def request(code: str, day: datetime.date = DAY, **kwargs) -> JobRun:
    run, _ = runs.request_run(definition(code), business_date=day, **kwargs)
    return run


def execute(run: JobRun, task_id: str = "task-1") -> JobRun:
    execution.execute_run(run.pk, task_id=task_id, worker="test@host")
    run.refresh_from_db()
    return run


# --- Registration and sync ------------------------------------------------------------------


def test_a_job_code_must_read_like_acas():
    with pytest.raises(ValueError, match="upper case"):
        registry.job("daily close", title="x")


def test_parameters_are_coerced_and_every_bad_one_is_named():
    schema = registry.ParamSchema(
        {"days": Param(int, default=3, min=1), "as_of": Param(datetime.date), "mode": Param(str, choices=("a", "b"))}
    )

    assert schema.clean({"days": "5", "as_of": "2026-11-02", "mode": "a"}) == {
        "days": 5,
        "as_of": DAY,
        "mode": "a",
    }
    with pytest.raises(ParamError) as caught:
        schema.clean({"days": "0", "mode": "c", "colour": "red"})
    assert caught.value.errors == {
        "colour": "unknown parameter",
        "days": "must be at least 1",
        "as_of": "this parameter is required",
        "mode": "choose from a, b",
    }


def test_backoff_grows_exponentially_with_jitter_and_stops_at_the_cap():
    delays = [backoff(attempt, base=10, cap=100) for attempt in range(1, 8)]

    assert 5 <= delays[0] <= 10
    assert 10 <= delays[1] <= 20
    assert all(50 <= delay <= 100 for delay in delays[4:])


def test_sync_creates_definitions_and_default_schedules_once():
    health = definition("SYS_HEALTH_CHECK")
    assert health.schedules.get().describe().startswith("0 5 * * *")

    report = sync_jobs()

    assert report.lines() == []
    assert JobSchedule.objects.filter(job=health).count() == 1


def test_admin_edits_win_over_the_code_and_untouched_fields_follow_it(monkeypatch):
    probe = definition("SYS_PROBE")
    probe.queue = "ledger"  # an admin's edit
    probe.save()
    spec = registry.get("SYS_PROBE")
    monkeypatch.setattr(spec, "title", "Probe, renamed in code")
    monkeypatch.setattr(spec, "queue", "billing")

    report = sync_jobs()

    probe.refresh_from_db()
    assert (probe.title, probe.queue) == ("Probe, renamed in code", "ledger")
    assert report.updated == {"SYS_PROBE": ["title"]}
    assert report.kept == {"SYS_PROBE": ["queue"]}


def test_a_deleted_default_schedule_is_not_recreated():
    JobSchedule.objects.filter(job__code="SYS_HEALTH_CHECK").delete()

    sync_jobs()

    assert not JobSchedule.objects.filter(job__code="SYS_HEALTH_CHECK").exists()


def test_a_job_no_longer_declared_is_marked_and_not_fired(monkeypatch):
    monkeypatch.delitem(registry._registry, "SYS_PROBE")

    report = sync_jobs()

    assert report.unregistered == ["SYS_PROBE"]
    assert not definition("SYS_PROBE").registered


# --- Requesting and executing runs --------------------------------------------------------------


def test_a_second_request_for_the_same_slot_returns_the_first_run(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as sent:
        first, created = runs.request_run(definition("TEST_WRITE"), business_date=DAY)
        again, created_again = runs.request_run(definition("TEST_WRITE"), business_date=DAY)

    assert (created, created_again) == (True, False)
    assert first.pk == again.pk
    assert first.status == RunStatus.QUEUED
    assert first.run_key == "2026-11-02"
    assert len(sent) == 1  # one message for one run


def test_bad_parameters_refuse_the_request_and_write_nothing():
    with pytest.raises(ParamError, match="hold"):
        request("TEST_WRITE", params={"hold": "soon"})

    assert not JobRun.objects.exists()


def test_company_jobs_need_a_company_and_global_jobs_refuse_one(company):
    with pytest.raises(ParamError, match="company"):
        request("TEST_PER_COMPANY")
    with pytest.raises(ParamError, match="company"):
        request("TEST_WRITE", company=company)

    run = execute(request("TEST_PER_COMPANY", company=company))

    assert run.status == RunStatus.SUCCEEDED
    assert run.result == {"company": company.slug}


def test_a_run_succeeds_once_and_a_duplicate_message_does_nothing():
    run = request("TEST_WRITE")

    run = execute(run)
    execution.execute_run(run.pk, task_id="task-2", worker="other@host")

    run.refresh_from_db()
    assert (run.status, run.attempts, run.created) == (RunStatus.SUCCEEDED, 1, 1)
    assert run.duration is not None and run.finished_at is not None
    assert run.params == {"hold": 0.0}  # the effective parameters, defaults included
    assert Group.objects.filter(name=f"write-{run.pk}").count() == 1


def test_its_own_message_redelivered_after_the_worker_died_runs_it_again():
    run = request("TEST_WRITE")
    # What a worker killed mid-run leaves: running, claimed under this message's id, writes rolled back.
    JobRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, task_id="task-1", attempts=1, worker="dead@h")

    run = execute(run, task_id="task-1")

    assert (run.status, run.attempts) == (RunStatus.SUCCEEDED, 2)
    assert run.logs.filter(message__contains="lost with worker dead@h").exists()


def test_a_retryable_error_retries_with_backoff_then_succeeds(django_capture_on_commit_callbacks):
    run = request("TEST_FLAKY", params={"failures": 1})

    with django_capture_on_commit_callbacks() as sent:
        run = execute(run)
    assert run.status == RunStatus.RETRYING
    assert "ConnectionError" in run.error
    assert len(sent) == 1  # the retry message, sent with a countdown

    run = execute(run, task_id="task-2")
    assert (run.status, run.attempts, run.result) == (RunStatus.SUCCEEDED, 2, {"succeeded_on": 2})


def test_retries_stop_at_the_limit():
    run = request("TEST_FLAKY", params={"failures": 5})  # max_retries 2: three attempts

    for attempt in range(3):
        run = execute(run, task_id=f"task-{attempt}")

    assert (run.status, run.attempts) == (RunStatus.FAILED, 3)
    assert "Traceback" in run.traceback


def test_a_job_error_fails_at_once_without_retrying():
    run = execute(request("TEST_INVALID"))

    assert (run.status, run.attempts) == (RunStatus.FAILED, 1)
    assert run.error == "JobError: account 4000 does not exist"
    assert run.logs.filter(level=40, message__contains="account 4000").exists()


def test_a_failed_atomic_job_writes_nothing_but_keeps_its_log():
    run = execute(request("TEST_FAIL"))

    assert run.status == RunStatus.FAILED
    assert list(run.logs.values_list("message", flat=True)) == [
        "attempt 1 started on test@host",
        "about to fail",
        "failed: RuntimeError: the ledger is on fire",
    ]


def test_cancelling_a_queued_run_stops_it_before_it_starts():
    run = request("TEST_WRITE")

    runs.cancel(run)
    run = execute(run)

    assert run.status == RunStatus.CANCELLED
    assert not Group.objects.exists()


def test_cancelling_a_running_atomic_job_rolls_its_writes_back(monkeypatch):
    monkeypatch.setattr(execution, "CHECKPOINT_SECONDS", 0)
    run = request("TEST_SLOW", params={"hold": 0.3})
    JobRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, task_id="task-1")
    runs.cancel(JobRun.objects.get(pk=run.pk))  # sets the flag a running job checks
    JobRun.objects.filter(pk=run.pk).update(status=RunStatus.QUEUED)

    run = execute(run)

    assert run.status == RunStatus.CANCELLED
    assert not Group.objects.filter(name__startswith="slow-").exists()


def test_a_finished_run_cannot_be_cancelled_and_a_failed_one_can_be_rerun():
    run = execute(request("TEST_FAIL"))

    with pytest.raises(runs.RunError, match="cannot be cancelled"):
        runs.cancel(run)
    run = runs.rerun(run)

    # a new round of tries, numbered after the first attempt, which keeps its own record
    assert (run.status, run.attempts, run.tries, run.error, run.trigger) == (RunStatus.QUEUED, 1, 0, "", Trigger.RETRY)
    assert list(run.attempt_history.values_list("number", "status")) == [(1, "failed")]


def test_overlap_skip_skips_a_run_while_another_runs():
    JobRun.objects.create(
        job=definition("TEST_WRITE"),
        run_key="2026-11-01",
        business_date=DAY,
        slot_at=datetime.datetime(2026, 11, 1, tzinfo=UTC),
        status=RunStatus.RUNNING,
        trigger=Trigger.MANUAL,
    )

    run = execute(request("TEST_WRITE"))

    assert run.status == RunStatus.SKIPPED
    assert "already running" in run.error


def test_a_per_company_jobs_overlap_is_per_company(company, other_company):
    JobRun.objects.create(
        job=definition("TEST_PER_COMPANY"),
        company=other_company,
        run_key="2026-11-01",
        business_date=DAY,
        slot_at=datetime.datetime(2026, 11, 1, tzinfo=UTC),
        status=RunStatus.RUNNING,
        trigger=Trigger.MANUAL,
    )

    mine = execute(request("TEST_PER_COMPANY", company=company))
    theirs = execute(request("TEST_PER_COMPANY", company=other_company))

    assert (mine.status, theirs.status) == (RunStatus.SUCCEEDED, RunStatus.SKIPPED)


def test_log_lines_are_written_in_batches_not_a_query_per_line(django_assert_max_num_queries):
    run = request("TEST_WRITE")
    buffer = execution.LogBuffer(run.pk, 1)

    # a statement per batch (SQLite splits a batch at its variable limit), never one per line
    with django_assert_max_num_queries(6):
        for n in range(450):
            buffer.add(20, f"line {n}", {"n": n})
        buffer.flush()

    assert JobLog.objects.filter(run=run, message__startswith="line").count() == 450


# --- Fan-out ------------------------------------------------------------------------------------


def test_a_fanned_out_run_finishes_when_its_last_chunk_does(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = execute(request("TEST_FANOUT", params={"chunks": 3, "size": 2}))
    assert (run.status, run.chunks_total, run.chunks_done) == (RunStatus.RUNNING, 3, 0)

    outcomes = [execution.execute_chunk(run.pk, index, retries=0) for index in (0, 1, 1, 2)]

    run.refresh_from_db()
    assert outcomes == ["chunk done", "chunk done", "chunk already done", "chunk done"]
    assert (run.status, run.chunks_done, run.processed, run.created) == (RunStatus.SUCCEEDED, 3, 6, 6)
    assert Group.objects.filter(name__startswith=f"chunk-{run.pk}-").count() == 6


def test_a_chunk_that_keeps_failing_fails_the_run(monkeypatch):
    run = execute(request("TEST_FANOUT", params={"chunks": 2}))
    spec = registry.get("TEST_FANOUT")

    def broken(ctx, chunk):
        raise ConnectionError("lost the database")

    monkeypatch.setattr(spec, "chunk_func", broken)

    first = execution.execute_chunk(run.pk, 0, retries=0)
    last = execution.execute_chunk(run.pk, 0, retries=2)

    run.refresh_from_db()
    assert isinstance(first, execution.RetryLater)
    assert last == "failed"
    assert run.status == RunStatus.FAILED
    assert "chunk 0 failed: ConnectionError" in run.error


@pytest.mark.django_db(transaction=True)
def test_a_job_may_run_its_chunks_outside_a_transaction_and_mark_them_done_after():
    run = execute(request("TEST_FANOUT_LOOSE"))

    outcomes = [execution.execute_chunk(run.pk, index, retries=0) for index in (0, 0, 1)]

    run.refresh_from_db()
    assert outcomes == ["chunk done", "chunk already done", "chunk done"]  # the duplicate ran, harmlessly
    assert (run.status, run.chunks_done, run.created) == (RunStatus.SUCCEEDED, 2, 2)
    assert sorted(Group.objects.filter(name__startswith=f"loose-{run.pk}-").values_list("name", flat=True)) == [
        f"loose-{run.pk}-0-atomic-False",
        f"loose-{run.pk}-1-atomic-False",
    ]


def test_a_zero_chunk_fan_out_succeeds_at_once():
    run = execute(request("TEST_FANOUT", params={"chunks": 0}))

    assert run.status == RunStatus.SUCCEEDED


# --- Dependencies -----------------------------------------------------------------------------


def test_a_dependent_run_waits_then_is_queued_when_its_upstream_succeeds(django_capture_on_commit_callbacks):
    downstream = request("TEST_DOWNSTREAM")
    assert downstream.status == RunStatus.WAITING

    with django_capture_on_commit_callbacks(execute=True):
        execute(request("TEST_UPSTREAM"))

    downstream.refresh_from_db()
    assert downstream.status == RunStatus.QUEUED


def test_an_upstream_failure_blocks_the_dependent_run_and_raises_an_alert(django_capture_on_commit_callbacks):
    downstream = request("TEST_DOWNSTREAM")

    with django_capture_on_commit_callbacks(execute=True):
        execute(request("TEST_UPSTREAM", params={"fail": True}))

    downstream.refresh_from_db()
    upstream = JobRun.objects.get(job__code="TEST_UPSTREAM")
    assert (downstream.status, downstream.blocked_by_id) == (RunStatus.BLOCKED, upstream.pk)
    alert = JobAlert.objects.get(cause=Cause.BLOCKED)  # about the root, naming what it holds back
    assert (alert.run_id, alert.job.code) == (upstream.pk, "TEST_UPSTREAM")
    assert "TEST_UPSTREAM 2026-11-02 failed" in alert.message
    assert "holds back 1 run(s): TEST_DOWNSTREAM 2026-11-02" in alert.message
    released = runs.release(downstream)
    assert released.status == RunStatus.QUEUED
    alert.refresh_from_db()
    assert alert.resolved_at is not None  # nothing is held back by it any more


def test_a_previous_period_dependency_looks_at_the_day_before():
    execute(request("TEST_UPSTREAM", datetime.date(2026, 10, 31)))

    monthly = request("TEST_MONTHLY_AFTER_DAILY", datetime.date(2026, 11, 1))

    assert monthly.run_key == "2026-11"
    assert monthly.status == RunStatus.QUEUED


# --- Alerts ------------------------------------------------------------------------------------


def test_two_consecutive_failures_raise_one_alert_and_one_email(django_capture_on_commit_callbacks, staff, monkeypatch):
    queued = []  # the notifications worker's queue; the test plays the worker
    monkeypatch.setattr(notification_tasks.deliver, "delay", lambda channel, ids: queued.append((channel, ids)))
    for n in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            execute(request("TEST_FAIL", DAY + datetime.timedelta(days=n)))
        assert JobAlert.objects.exists() == (n > 0)
    alert = JobAlert.objects.get()

    with django_capture_on_commit_callbacks(execute=True):
        alerts.deliver(alert.pk)
    while queued:
        with django_capture_on_commit_callbacks(execute=True):
            notification_delivery.deliver(*queued.pop(0))
    with django_capture_on_commit_callbacks(execute=True):
        alerts.deliver(alert.pk)

    assert (alert.cause, alert.occurrences) == (Cause.CONSECUTIVE_FAILURES, 2)
    assert queued == []  # delivered once: the second call sends nothing new
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == "[Countinghouse critical] TEST_FAIL: consecutive failures"
    assert mail.outbox[0].to == [staff.email]
    inbox = Notification.objects.inbox(staff).get()
    assert (inbox.kind, inbox.subject) == ("job_alert", mail.outbox[0].subject)


def test_a_success_resolves_the_failure_alert_and_a_new_streak_raises_a_new_one():
    job = definition("TEST_FAIL")
    first = alerts.raise_alert(job, Cause.CONSECUTIVE_FAILURES, "failing")
    alerts.resolve(job, Cause.CONSECUTIVE_FAILURES)

    second = alerts.raise_alert(job, Cause.CONSECUTIVE_FAILURES, "failing again")

    assert second.pk != first.pk
    assert JobAlert.objects.open().count() == 1


def test_a_run_twice_as_slow_as_its_recent_p95_raises_a_slow_alert():
    job = definition("TEST_WRITE")
    for n in range(6):
        JobRun.objects.create(
            job=job,
            run_key=f"2026-10-{n + 1:02d}",
            business_date=DAY,
            slot_at=datetime.datetime(2026, 10, n + 1, tzinfo=UTC),
            trigger=Trigger.SCHEDULE,
            status=RunStatus.SUCCEEDED,
            duration=10.0 + n,
            finished_at=datetime.datetime(2026, 10, n + 1, tzinfo=UTC),
        )
    slow = JobRun.objects.create(
        job=job, run_key="2026-11-02", business_date=DAY, slot_at=datetime.datetime(2026, 11, 2, tzinfo=UTC),
        trigger=Trigger.SCHEDULE, status=RunStatus.SUCCEEDED, duration=40.0,
    )  # fmt: skip

    alerts.check_slow(slow)

    alert = JobAlert.objects.get(cause=Cause.SLOW_RUN)
    assert "over twice its recent p95 of 15.0s" in alert.message


# --- Firing ------------------------------------------------------------------------------------


@pytest.fixture
def quiet_platform():
    """Only the test jobs' schedules: with time frozen on another hour than the real one, the
    platform's and the apps' own would be due (or missed) depending on when the suite runs."""
    JobSchedule.objects.exclude(job__code__startswith="TEST_").delete()


def minute_schedule(code: str = "TEST_MINUTE", crontab: dict | None = None, **task) -> JobSchedule:
    crontab = CrontabSchedule.objects.create(**{"minute": "*", "hour": "*", "timezone": "UTC", **(crontab or {})})
    periodic = PeriodicTask.objects.create(name=f"{code} {task}", task="scheduling.fire_job", crontab=crontab, **task)
    return JobSchedule.objects.create(job=definition(code), periodic_task=periodic)


@time_machine.travel(datetime.datetime(2026, 11, 21, 9, 0, 30, tzinfo=UTC), tick=False)
def test_two_beats_firing_the_same_slot_create_one_run(quiet_platform):
    minute_schedule()
    firing.refresh_schedules()
    JobSchedule.objects.filter(job__code__startswith="TEST_").update(
        next_fire_at=datetime.datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    )

    queued, _ = firing.fire_due()
    JobSchedule.objects.filter(job__code__startswith="TEST_").update(
        next_fire_at=datetime.datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    )  # the second beat
    queued_again, _ = firing.fire_due()

    run = JobRun.objects.get(job__code="TEST_MINUTE")
    assert (queued, queued_again) == (1, 0)
    assert run.run_key == "2026-11-21T09:00+0000"
    assert run.status == RunStatus.QUEUED
    assert run.trigger == Trigger.SCHEDULE
    assert JobSchedule.objects.get(job__code="TEST_MINUTE").next_fire_at == datetime.datetime(
        2026, 11, 21, 9, 1, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("policy", "expected_keys"),
    [
        # beat is back at 09:12:30: 09:05 and 09:10 were missed (older than a minute), none is on time
        (CatchUp.SKIP, []),
        (CatchUp.LATEST, ["2026-11-21T09:10+0000"]),
        (CatchUp.ALL, ["2026-11-21T09:05+0000", "2026-11-21T09:10+0000"]),
    ],
)
def test_catch_up_policy_decides_which_missed_slots_run(quiet_platform, policy, expected_keys):
    JobDefinition.objects.filter(code="TEST_MINUTE").update(catch_up=policy, catch_up_window=600)
    minute_schedule(crontab=dict(minute="*/5"))
    with time_machine.travel(datetime.datetime(2026, 11, 21, 9, 0, 30, tzinfo=UTC), tick=False):
        firing.refresh_schedules()
    # beat was down from 09:01 to 09:12:30
    with time_machine.travel(datetime.datetime(2026, 11, 21, 9, 12, 30, tzinfo=UTC), tick=False):
        firing.fire_due()

    keys = sorted(JobRun.objects.values_list("run_key", flat=True))
    assert keys == expected_keys
    # the slots not run are told, whichever they are
    missed = JobAlert.objects.filter(cause=Cause.MISSED_RUN).values_list("message", flat=True).first()
    not_run = 2 - len(expected_keys)
    assert (missed or "").startswith(f"TEST_MINUTE: {not_run} slot(s)") if not_run else missed is None


def test_catch_up_all_runs_only_what_its_window_reaches(quiet_platform):
    JobDefinition.objects.filter(code="TEST_MINUTE").update(catch_up=CatchUp.ALL, catch_up_window=300)
    minute_schedule(crontab=dict(minute="*/5"))
    with time_machine.travel(datetime.datetime(2026, 11, 21, 9, 0, 30, tzinfo=UTC), tick=False):
        firing.refresh_schedules()
    with time_machine.travel(datetime.datetime(2026, 11, 21, 9, 12, 30, tzinfo=UTC), tick=False):
        firing.fire_due()

    assert list(JobRun.objects.values_list("run_key", flat=True)) == ["2026-11-21T09:10+0000"]


@time_machine.travel(datetime.datetime(2026, 11, 21, 9, 0, 30, tzinfo=UTC), tick=False)
def test_a_company_job_fires_one_run_per_company(quiet_platform, company, other_company):
    minute_schedule("TEST_PER_COMPANY")
    firing.refresh_schedules()
    JobSchedule.objects.filter(job__code__startswith="TEST_").update(
        next_fire_at=datetime.datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    )

    firing.fire_due()

    assert sorted(
        JobRun.objects.filter(job__code="TEST_PER_COMPANY").values_list("company__slug", flat=True)
    ) == sorted([company.slug, other_company.slug])


def test_an_edited_schedule_gets_new_fire_times_and_a_disabled_one_does_not_fire(quiet_platform):
    schedule = minute_schedule()
    with time_machine.travel(datetime.datetime(2026, 11, 21, 9, 0, 30, tzinfo=UTC), tick=False):
        firing.refresh_schedules()
        hourly, _ = CrontabSchedule.objects.get_or_create(minute="15", hour="*", timezone="Europe/London")
        PeriodicTask.objects.filter(pk=schedule.periodic_task_id).update(crontab=hourly, enabled=False)
        assert firing.refresh_schedules() == 1
        queued, _ = firing.fire_due(now=datetime.datetime(2026, 11, 21, 9, 20, tzinfo=UTC))

    schedule.refresh_from_db()
    assert schedule.next_fire_at == datetime.datetime(2026, 11, 21, 9, 15, tzinfo=UTC)
    assert queued == 0


def test_an_interval_schedule_fires_on_its_grid():
    every, _ = IntervalSchedule.objects.get_or_create(every=90, period=IntervalSchedule.SECONDS)
    periodic = PeriodicTask.objects.create(name="probe every 90 s", task="scheduling.fire_job", interval=every)
    schedule = JobSchedule.objects.create(job=definition("SYS_PROBE"), periodic_task=periodic)

    fires = schedule.next_fires(datetime.datetime(2026, 11, 21, 9, 0, 1, tzinfo=UTC), count=2)

    assert [f.time() for f in fires] == [datetime.time(9, 1, 30), datetime.time(9, 3)]


# --- The beat lease ----------------------------------------------------------------------------


def test_one_beat_leads_and_the_standby_takes_over_when_the_lease_lapses():
    leader, standby = Lease("host:1", ttl=30), Lease("host:2", ttl=30)

    with time_machine.travel(datetime.datetime(2026, 11, 21, 9, 0, tzinfo=UTC), tick=False):
        assert leader.hold() is True
        assert standby.hold() is False
    with time_machine.travel(datetime.datetime(2026, 11, 21, 9, 0, 31, tzinfo=UTC), tick=False):
        assert standby.hold() is True


def test_a_stopping_leader_hands_over_at_once():
    leader, standby = Lease("host:1", ttl=30), Lease("host:2", ttl=30)
    leader.hold()

    leader.release()

    assert standby.hold() is True


# --- The watchdog and clean-up ------------------------------------------------------------------


def test_the_watchdog_reports_a_slot_without_a_run_once(quiet_platform):
    with time_machine.travel(datetime.datetime(2026, 11, 21, 9, 0, 30, tzinfo=UTC), tick=False):
        minute_schedule()
        firing.refresh_schedules()
    with time_machine.travel(datetime.datetime(2026, 11, 21, 9, 20, tzinfo=UTC), tick=False):
        first = watchdog.watchdog()
        second = watchdog.watchdog()

    alert = JobAlert.objects.get(cause=Cause.MISSED_RUN)
    assert first["missed"] == second["missed"] > 0
    assert alert.occurrences == 2
    assert alert.severity == "critical"


def test_the_watchdog_retries_a_run_lost_with_its_worker(django_capture_on_commit_callbacks):
    run = request("TEST_WRITE")
    started = datetime.datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    JobRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, started_at=started, attempts=1, worker="w1")

    with django_capture_on_commit_callbacks() as sent:
        found = watchdog.watchdog(now=started + datetime.timedelta(hours=2))

    run.refresh_from_db()
    assert found["lost"] == 1
    assert run.status == RunStatus.RETRYING
    assert len(sent) == 2  # the retry message and the alert's delivery
    assert JobAlert.objects.filter(cause=Cause.LOST_RUN).exists()


def test_log_cleanup_deletes_only_what_is_older_than_the_retention():
    run = execute(request("TEST_WRITE"))
    JobLog.objects.filter(run=run).update(at=datetime.datetime(2025, 1, 1, tzinfo=UTC))
    fresh = JobLog.objects.create(run=run, message="today")

    deleted = monitoring.cleanup_logs(90)

    assert deleted["logs"] >= 1
    assert list(JobLog.objects.values_list("pk", flat=True)) == [fresh.pk]


def test_the_health_check_job_records_each_check_and_fails_when_a_critical_one_fails(monkeypatch):
    from scheduling import health

    ok = execute(request("SYS_HEALTH_CHECK"))
    assert ok.status == RunStatus.SUCCEEDED
    assert ok.result["checks"]["database"]["ok"] is True
    assert set(ok.result["checks"]) == {"database", "broker", "cache", "workers", "beat"}
    messages = list(JobLog.objects.filter(run=ok).values_list("message", flat=True))
    assert any(message.startswith("database: ok") for message in messages)

    def down():
        raise RuntimeError("the cache is down")

    monkeypatch.setitem(health.CHECKS, "cache", down)
    failed = execute(request("SYS_HEALTH_CHECK", DAY + datetime.timedelta(days=1)))
    assert (failed.status, failed.error) == (RunStatus.FAILED, "JobError: critical health checks failing: cache")


def test_performance_stats_stores_each_job_s_percentiles_of_the_window():
    write, fail = definition("TEST_WRITE"), definition("TEST_FAIL")
    now = datetime.datetime(2026, 11, 21, 5, 0, tzinfo=UTC)
    durations = [float(n) for n in range(1, 21)]  # 1 s to 20 s
    for n, duration in enumerate(durations):
        JobRun.objects.create(
            job=write,
            run_key=f"k{n}",
            business_date=DAY,
            slot_at=now,
            trigger=Trigger.MANUAL,
            status=RunStatus.SUCCEEDED,
            duration=duration,
            finished_at=now - datetime.timedelta(hours=n + 1),
        )
    JobRun.objects.create(
        job=fail, run_key="f", business_date=DAY, slot_at=now, trigger="manual", status="failed", finished_at=now
    )
    JobRun.objects.create(  # outside the window: not counted
        job=write,
        run_key="old",
        business_date=DAY,
        slot_at=now,
        trigger="manual",
        status="succeeded",
        duration=999.0,
        finished_at=now - datetime.timedelta(days=8),
    )

    with time_machine.travel(now + datetime.timedelta(seconds=1), tick=False):
        run = execute(request("SYS_PERFORMANCE_STATS"))

    assert run.status == RunStatus.SUCCEEDED
    assert run.result["TEST_WRITE"] == {"runs": 20, "p50": 10.0, "p95": 19.0, "p99": 20.0}
    assert run.result["TEST_FAIL"] == {"runs": 1, "p50": None, "p95": None, "p99": None}
    stored = JobPerformance.objects.get(job=write)
    assert (stored.runs, stored.succeeded, stored.failed, stored.longest) == (20, 20, 0, 20.0)
    assert stored.window_end - stored.window_start == datetime.timedelta(days=7)


def test_session_cleanup_deletes_only_expired_sessions():
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session

    expired, live = SessionStore(), SessionStore()
    expired.create()
    live.create()
    Session.objects.filter(session_key=expired.session_key).update(
        expire_date=datetime.datetime(2020, 1, 1, tzinfo=UTC)
    )

    run = execute(request("SYS_USER_SESSION_CLEANUP"))

    assert (run.status, run.processed, run.result) == (RunStatus.SUCCEEDED, 1, {"deleted": 1})
    assert list(Session.objects.values_list("session_key", flat=True)) == [live.session_key]


UK_HOLIDAYS_2026 = ["2026-01-01", "2026-04-03", "2026-04-06", "2026-05-04", "2026-05-25", "2026-08-31", "2026-12-25"]


def test_a_last_working_day_schedule_fires_on_the_right_days_through_a_year_and_both_dst_changes(quiet_platform):
    # Given a 22:00 London schedule on the last working day of each month, UK holidays
    uk = BusinessCalendar.objects.create(name="England", weekend=[5, 6])
    for day in UK_HOLIDAYS_2026:
        uk.holidays.create(date=day)
    crontab, _ = CrontabSchedule.objects.get_or_create(minute="0", hour="22", timezone="Europe/London")
    periodic = PeriodicTask.objects.create(name="month end", task="scheduling.fire_job", crontab=crontab)
    JobSchedule.objects.create(
        job=definition("TEST_WRITE"), periodic_task=periodic, rule="last_working_day", business_calendar=uk
    )
    with time_machine.travel(datetime.datetime(2025, 12, 31, 23, 0, tzinfo=UTC), tick=False):
        firing.refresh_schedules()

    # When beat ticks through 2026 as it does: a minute before each fire (nothing is due),
    # then just after it, and on through every day of the year at noon
    schedule = JobSchedule.objects.get(job__code="TEST_WRITE")
    ticks = [datetime.datetime(2026, 1, 1, 12, tzinfo=UTC) + datetime.timedelta(days=n) for n in range(365)]
    while (schedule := JobSchedule.objects.get(pk=schedule.pk)).next_fire_at.year == 2026:
        due = schedule.next_fire_at
        ticks += [due - datetime.timedelta(minutes=1), due + datetime.timedelta(seconds=20)]
        for moment in sorted(tick for tick in ticks if tick <= due + datetime.timedelta(seconds=20)):
            with time_machine.travel(moment, tick=False):
                firing.fire_due()
        ticks = [tick for tick in ticks if tick > due + datetime.timedelta(seconds=20)]

    # Then it fired twelve times, on these dates, at 22:00 London time in GMT and in BST
    fired = list(JobRun.objects.filter(job__code="TEST_WRITE").order_by("slot_at").values_list("slot_at", flat=True))
    assert [f"{at:%m-%d %H:%M}" for at in fired] == [
        "01-30 22:00",
        "02-27 22:00",
        "03-31 21:00",  # BST from 29 March: 22:00 London is 21:00 UTC
        "04-30 21:00",
        "05-29 21:00",
        "06-30 21:00",
        "07-31 21:00",
        "08-28 21:00",  # 31 August is a bank holiday, the 29th and 30th a weekend
        "09-30 21:00",
        "10-30 22:00",  # GMT again from 25 October
        "11-30 22:00",
        "12-31 22:00",
    ]
    assert not JobAlert.objects.filter(cause=Cause.MISSED_RUN).exists()


def test_job_health_takes_a_fixed_number_of_queries_however_many_jobs(django_assert_max_num_queries):
    for n in range(3):
        execute(request("TEST_FAIL", DAY + datetime.timedelta(days=n)))
    execute(request("TEST_WRITE"))

    with django_assert_max_num_queries(5):
        rows = {row["job"]: row for row in monitoring.job_health()}

    assert (rows["TEST_FAIL"]["consecutive_failures"], rows["TEST_FAIL"]["health"]) == (3, "critical")
    assert (rows["TEST_WRITE"]["consecutive_failures"], rows["TEST_WRITE"]["health"]) == (0, "good")
    assert rows["TEST_WRITE"]["last_run"]["status"] == RunStatus.SUCCEEDED
