"""The watchdog: what should be happening and is not. SYS_WATCHDOG runs it every minute.

- **Stalled runs.** A queued run, or a running run's chunks, that made no progress for
  ``JOB_STALL_GRACE`` and for which no message exists, on its queue or at a worker: the
  message was lost (a broker restarted without persistence, a send failed while it was
  down). Sent again, with an alert; a chunk that is done is never run twice (it is marked
  done in its own transaction, and a duplicate finds it so).
- **Lost runs.** A run whose worker died under it: retried by its policy.
- **Deadlines.** A run past its schedule's start or end deadline is "late" while it still
  waits, queues or runs, not after it ends; the alert resolves when it succeeds.
- **Slow runs.** A run still running past its job's runtime threshold.
- **Waits that cannot end.** A run waiting for a job that has no run for its slot and no
  schedule that will make one.
- **Missed slots.** Schedule slots older than ``JOB_MISSED_GRACE`` without a run.

Whether a message exists is asked of the broker and the workers: the depth of the job's
queue (a run waiting behind others is not stalled) and each worker's active, reserved and
scheduled tasks.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from celery import current_app
from django.conf import settings
from django.db.models.functions import Coalesce
from django.utils import timezone

from scheduling import calendar, slots
from scheduling.choices import FINISHED, AttemptStatus, Cause, Level, RunStatus, Severity
from scheduling.models import ChunkStatus, JobChunk, JobDefinition, JobRun, JobSchedule
from scheduling.services import alerts, execution, runs

logger = logging.getLogger(__name__)

WATCH_LOOKBACK = datetime.timedelta(days=1)
LOST_MARGIN = datetime.timedelta(minutes=5)
MISSED_BATCH = 500  # schedules whose runs are looked up in one query
SCAN = 500  # runs of each kind looked at per pass
INSPECT_TIMEOUT = 2.0  # seconds the workers get to say what they hold
NOT_STARTED = (RunStatus.PENDING, RunStatus.WAITING, RunStatus.QUEUED, RunStatus.RETRYING, RunStatus.BLOCKED)

Log = Callable[..., None]


def watchdog(now: datetime.datetime | None = None, log: Log | None = None, *, missed: bool = True) -> dict[str, int]:
    """One pass of every check (missed slots only with ``missed``, the costliest: it walks
    every schedule's fires of the last day); returns how many things each found."""
    now = now or timezone.now()
    log = log or (lambda *args, **kwargs: None)
    return {
        "missed": missed_slots(now, log) if missed else 0,
        "lost": recover_lost_runs(now, log),
        "stalled": recover_stalled(now, log),
        "late": check_deadlines(now, log),
        "slow": check_running_slow(now, log),
        "unmet": check_unmet_waits(now, log),
    }


# --- What the broker and the workers hold -------------------------------------------------------


@dataclass
class Messages:
    """The messages that exist for runs and chunks, as far as the broker and workers say."""

    runs: set[int] = field(default_factory=set)
    chunks: set[tuple[int, int]] = field(default_factory=set)
    tasks: set[str] = field(default_factory=set)
    workers: int = 0  # workers that answered
    ready: dict[str, int] = field(default_factory=dict)  # messages waiting on each queue

    def queue_busy(self, queue: str) -> bool:
        """Messages wait on the queue: a run or chunk behind them is in line, not lost. A
        queue whose depth could not be read counts as busy."""
        return self.ready.get(queue, 1) > 0


def held_messages(queues: set[str]) -> Messages:
    """Ask the workers what they run, hold and have scheduled, and the broker how deep each
    of ``queues`` is."""
    found = Messages()
    try:
        inspector = current_app.control.inspect(timeout=INSPECT_TIMEOUT)
        replies = [inspector.active() or {}, inspector.reserved() or {}, inspector.scheduled() or {}]
    except Exception as exc:  # a broker that is down answers nothing, whatever it raises
        logger.warning("watchdog: the workers could not be asked what they hold: %s", exc)
        replies = []
    for reply in replies:
        found.workers = max(found.workers, len(reply))
        for worker, tasks in reply.items():
            for task in tasks:
                request = task.get("request", task)  # scheduled tasks wrap theirs
                found.tasks.add(request.get("id", ""))
                args = list(request.get("args") or [])
                if request.get("name") == "scheduling.execute_run" and args:
                    found.runs.add(int(args[0]))
                elif request.get("name") == "scheduling.execute_chunk" and len(args) == 2:
                    found.chunks.add((int(args[0]), int(args[1])))
            logger.debug("watchdog: %s holds %d task(s)", worker, len(tasks))
    try:
        with current_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1)
            for queue in sorted(queues):
                channel = connection.channel()
                try:
                    found.ready[queue] = channel.queue_declare(queue=queue, passive=True).message_count
                except Exception:  # a queue not declared yet holds nothing
                    found.ready[queue] = 0
                finally:
                    channel.close()
    except Exception as exc:
        logger.warning("watchdog: the broker's queues could not be read: %s", exc)
    return found


# --- Stalled and lost runs ------------------------------------------------------------------------


def recover_stalled(now: datetime.datetime, log: Log) -> int:
    """Send again what has no message anywhere and made no progress for the grace."""
    grace = now - datetime.timedelta(seconds=settings.JOB_STALL_GRACE)
    waiting = list(
        JobRun.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RETRYING])
        .annotate(due=Coalesce("due_at", "queued_at", "created_at"))
        .filter(due__lt=grace)
        .select_related("job")
        .order_by("due", "pk")[:SCAN]
    )
    fanned = list(
        JobRun.objects.filter(status=RunStatus.RUNNING, body_finished_at__isnull=False, chunks_total__isnull=False)
        .annotate(moved=Coalesce("progress_at", "body_finished_at"))
        .filter(moved__lt=grace)
        .exclude(task_id__startswith="inline-")  # its chunks run in that process, not on a queue
        .select_related("job")
        .order_by("moved", "pk")[:SCAN]
    )
    if not waiting and not fanned:
        return 0
    held = held_messages({run.job.queue for run in waiting + fanned})
    stalled = 0
    for run in waiting:
        if run.pk in held.runs or held.queue_busy(run.job.queue):
            continue
        moved = JobRun.objects.filter(pk=run.pk, status=run.status, due_at=run.due_at, queued_at=run.queued_at)
        if moved.update(queued_at=now, due_at=now):
            runs.send(run)
            stalled += 1
            _stalled(run, f"{run.status} since {run.due:%H:%M:%S} UTC with no message on its queue or a worker")
            log(f"run {run.pk} ({run.job.code} {run.run_key}) stalled {run.status}; sent again", level=Level.WARNING)
    for run in fanned:
        if held.queue_busy(run.job.queue):
            continue
        limit = datetime.timedelta(seconds=run.job.time_limit) + LOST_MARGIN
        pending = JobChunk.objects.filter(run=run, status=ChunkStatus.PENDING).values_list("index", "started_at")
        # A chunk begun and not held by any worker died with it (or was cancelled when its
        # worker lost the broker); one begun recently while no worker answered may still run.
        lost = [
            index
            for index, started_at in pending
            if (run.pk, index) not in held.chunks and (started_at is None or held.workers or now - started_at > limit)
        ]
        if not lost:
            continue
        JobRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(progress_at=now)
        execution.send_chunks(run, lost)
        stalled += 1
        _stalled(run, f"no chunk done since {run.moved:%H:%M:%S} UTC; {len(lost)} chunk(s) had no message")
        log(f"run {run.pk} ({run.job.code} {run.run_key}): sent {len(lost)} lost chunk(s) again", level=Level.WARNING)
    return stalled


def _stalled(run: JobRun, why: str) -> None:
    runs.log(run, f"stalled: {why}; its messages were sent again", Level.WARNING)
    alerts.raise_alert(
        run.job,
        Cause.STALLED,
        f"{run.job.code} {run.run_key} stalled: {why}. The watchdog sent it again; it resumes where it stopped.",
        run=run,
        company_id=run.company_id,
        subject=alerts.run_subject(run),
    )


def recover_lost_runs(now: datetime.datetime, log: Log) -> int:
    """Running past its hard time limit means the worker died with it (the broker may
    never redeliver: embedded mode, a purged queue). Fail the attempt; retry by policy."""
    lost = 0
    running = JobRun.objects.filter(status=RunStatus.RUNNING, body_finished_at__isnull=True).select_related("job")
    for run in running[:SCAN]:
        limit = datetime.timedelta(seconds=run.job.time_limit) + LOST_MARGIN
        if run.started_at is None or now - run.started_at <= limit:
            continue
        moved = JobRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING, started_at=run.started_at)
        error = f"lost with its worker {run.worker}"
        if run.tries <= run.job.max_retries:
            if moved.update(status=RunStatus.RETRYING, error="lost with its worker", queued_at=now, due_at=now):
                execution.close_attempt(run, AttemptStatus.LOST, now=now, error=error)
                runs.log(run, f"attempt {run.attempts} lost with worker {run.worker}; retrying", Level.WARNING)
                runs.send(run)
        elif moved.update(status=RunStatus.FAILED, error="lost with its worker", finished_at=now):
            execution.close_attempt(run, AttemptStatus.LOST, now=now, error=error)
            runs.log(run, "lost with its worker; no retries left", Level.ERROR)
            runs.after_finish(run.pk)
        lost += 1
        alerts.raise_alert(
            run.job, Cause.LOST_RUN, f"{run.job.code} {run.run_key}: {error}", run=run, company_id=run.company_id
        )
        log(f"run {run.pk} lost with worker {run.worker}", level=Level.WARNING)
    return lost


# --- Deadlines and slow runs ------------------------------------------------------------------------


def check_deadlines(now: datetime.datetime, log: Log) -> int:
    """Runs past their schedule's start deadline that have not started, and past their end
    deadline that have not finished: late now, while it can still be acted on."""
    late, graph = 0, None
    not_started = JobRun.objects.filter(start_deadline_at__lt=now, started_at__isnull=True, status__in=NOT_STARTED)
    for run in not_started.select_related("job").order_by("start_deadline_at")[:SCAN]:
        why = ""
        if run.status in (RunStatus.WAITING, RunStatus.BLOCKED):
            graph = graph or runs.Graph()
            why = runs.dependency_status(run, graph)[1]
        _late(
            run, f"has not started ({run.status}{': ' + why if why else ''}); it had to start by", run.start_deadline_at
        )
        late += 1
    not_ended = JobRun.objects.filter(end_deadline_at__lt=now).exclude(status__in=FINISHED)
    for run in not_ended.select_related("job").order_by("end_deadline_at")[:SCAN]:
        _late(run, f"is still {run.status}; it had to end by", run.end_deadline_at, severity=Severity.CRITICAL)
        late += 1
    if late:
        log(f"{late} run(s) past their deadline", level=Level.WARNING)
    return late


def _late(run: JobRun, what: str, deadline: datetime.datetime, severity: Severity = Severity.WARNING) -> None:
    where = f" for {alerts.company_name(run.company_id)}" if run.company_id else ""
    alerts.raise_alert(
        run.job,
        Cause.LATE,
        f"{run.job.code} {run.run_key}{where} {what} {deadline:%Y-%m-%d %H:%M} UTC",
        severity=severity,
        run=run,
        company_id=run.company_id,
        subject=alerts.run_subject(run),
    )


def check_running_slow(now: datetime.datetime, log: Log) -> int:
    """Runs still running past their job's runtime threshold: told now, not when they end."""
    slow = 0
    running = JobRun.objects.filter(status=RunStatus.RUNNING, job__runtime_threshold__isnull=False)
    for run in running.select_related("job").order_by("started_at")[:SCAN]:
        threshold = run.job.runtime_threshold
        if run.started_at is None or (now - run.started_at).total_seconds() <= threshold:
            continue
        took = (now - run.started_at).total_seconds()
        alerts.raise_alert(
            run.job,
            Cause.SLOW_RUN,
            f"{run.job.code} {run.run_key} is still running after {took:.0f}s; its threshold is {threshold}s",
            run=run,
            subject="",
        )
        slow += 1
    if slow:
        log(f"{slow} run(s) running past their threshold", level=Level.WARNING)
    return slow


# --- Waits that cannot end -----------------------------------------------------------------------------


def check_unmet_waits(now: datetime.datetime, log: Log) -> int:
    """A run waiting for a job's run that does not exist, when that job is disabled, no
    longer declared or has no enabled schedule, waits for ever: say so."""
    grace = now - datetime.timedelta(seconds=settings.JOB_STALL_GRACE)
    waiting = list(JobRun.objects.filter(status=RunStatus.WAITING, created_at__lt=grace).select_related("job")[:SCAN])
    if not waiting:
        return 0
    graph = runs.Graph()
    firing = set(JobSchedule.objects.firing().values_list("job__code", flat=True))
    enabled = set(JobDefinition.objects.filter(enabled=True, registered=True).values_list("code", flat=True))
    unmet = 0
    for run in waiting:
        never = [
            upstream.describe()
            for upstream in runs.upstream_runs(run, graph)
            if upstream.run is None and (upstream.code not in enabled or upstream.code not in firing)
        ]
        if not never:
            continue
        unmet += 1
        alerts.raise_alert(
            run.job,
            Cause.BLOCKED,
            f"{run.job.code} {run.run_key} waits for {', '.join(never)}, which no schedule will make: ask for "
            "that run, or release this one",
            run=run,
            company_id=run.company_id,
            subject=alerts.run_subject(run),
        )
    if unmet:
        log(f"{unmet} run(s) wait for runs no schedule will make", level=Level.WARNING)
    return unmet


# --- Missed slots -----------------------------------------------------------------------------------------


def missed_slots(now: datetime.datetime, log: Log) -> int:
    """Slots older than the grace period, since the schedule's timing last changed, with no run."""
    grace = datetime.timedelta(seconds=settings.JOB_MISSED_GRACE)
    expected: dict[JobSchedule, dict[str, datetime.datetime]] = {}
    for schedule in JobSchedule.objects.with_timing().firing():
        since = max(now - WATCH_LOOKBACK, schedule.active_since or schedule.created_at)
        try:
            trigger = schedule.trigger()
            fires = calendar.fire_times_between(trigger, since, now - grace, schedule.calendar_rule(), limit=2000)
        except ValueError:
            continue
        zone = calendar.zone_name(trigger)
        if fires:
            expected[schedule] = {slots.slot_for(schedule.job.key_by, at, zone).key: at for at in fires}
    # The runs that exist, for every schedule at once: one query per batch, not one per schedule.
    present: set[tuple[int, str]] = set()
    batch = list(expected.items())
    for start in range(0, len(batch), MISSED_BATCH):
        part = batch[start : start + MISSED_BATCH]
        runs_there = JobRun.objects.filter(
            job_id__in={schedule.job_id for schedule, _ in part},
            run_key__in={key for _, keys in part for key in keys},
        )
        present.update(runs_there.values_list("job_id", "run_key"))
    missed_total = 0
    for schedule, keys in expected.items():
        missing = sorted(at for key, at in keys.items() if (schedule.job_id, key) not in present)
        if missing:
            missed_total += len(missing)
            log(f"{schedule.job.code}: {len(missing)} slot(s) without a run", level=Level.WARNING)
            alerts.raise_alert(
                schedule.job,
                Cause.MISSED_RUN,
                f"{schedule.job.code}: no run for {len(missing)} slot(s) from {missing[0]:%Y-%m-%d %H:%M} to "
                f"{missing[-1]:%Y-%m-%d %H:%M} UTC (is beat running?)",
                severity=Severity.CRITICAL,
            )
    return missed_total
