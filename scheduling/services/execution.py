"""Executing runs and their chunks on a worker, and the ``JobContext`` a job function sees.

The guarantees, and how they are kept:
- A run is claimed with a conditional update, so a duplicate message does nothing.
- An atomic job's writes commit in the same transaction that records its success (or its
  fan-out), so a worker killed mid-run leaves nothing; the redelivered message finds the
  run still "running" under the same task id, and runs it again from the start.
- A chunk is marked done in the transaction that does its work and counts it on the run,
  so a redelivered chunk finds itself done and does nothing twice; the chunk that brings
  the count to the total finishes the run. No chords.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import time
import traceback
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.module_loading import import_string

from config.companies import company_model
from scheduling import infrastructure, registry
from scheduling.choices import CLAIMABLE, FINISHED, AttemptStatus, Level, Overlap, RunStatus, Trigger
from scheduling.models import ChunkStatus, JobAttempt, JobChunk, JobDefinition, JobLog, JobRun
from scheduling.registry import JobCancelled, JobSpec, backoff
from scheduling.services import runs

logger = logging.getLogger(__name__)

LOG_FLUSH_LINES = 200
LOG_FLUSH_SECONDS = 2.0
CHECKPOINT_SECONDS = 2.0  # how often a running job looks for a cancellation
OVERLAP_REQUEUE_SECONDS = 15
INFRASTRUCTURE_TRIES = 10  # tries beyond a job's own retry limit when the database or broker went away
COUNTERS = ("processed", "created", "skipped", "failed")
LEVELS = {level.name.lower(): level for level in Level}  # "debug" … "error", as callers name them


@dataclass(frozen=True)
class RetryLater:
    delay: float


class LogBuffer:
    """Log lines written in batches. Lines flushed inside a transaction that then rolls back
    (the attempt failed) are written again afterwards: a failure keeps its story."""

    def __init__(self, run_id: int, attempt: int) -> None:
        self.run_id, self.attempt = run_id, attempt
        self.pending: list[tuple] = []
        self.unsettled: list[tuple] = []
        self.last_flush = time.monotonic()

    def add(self, level: int, message: str, data: dict) -> None:
        self.pending.append((timezone.now(), level, str(message), data))
        if len(self.pending) >= LOG_FLUSH_LINES or time.monotonic() - self.last_flush >= LOG_FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.pending:
            return
        lines, self.pending = self.pending, []
        self._write(lines)
        if transaction.get_connection().in_atomic_block:
            self.unsettled.extend(lines)
            transaction.on_commit(self.unsettled.clear)

    def recover(self) -> None:
        """After a rollback: write what the rollback took, and what never got written."""
        lines, self.unsettled, self.pending = self.unsettled + self.pending, [], []
        self._write(lines)

    def _write(self, lines: list[tuple]) -> None:
        JobLog.objects.bulk_create(
            [
                JobLog(run_id=self.run_id, attempt=self.attempt, at=at, level=level, message=message, data=data)
                for at, level, message, data in lines
            ]
        )


class JobContext:
    """What a job function gets: its run's slot, parameters, logging, progress, counters
    and fan-out."""

    def __init__(self, run: JobRun, spec: JobSpec, definition: JobDefinition, chunk: JobChunk | None = None) -> None:
        self.run = run
        self.spec = spec
        self.definition = definition
        self.chunk = chunk
        self.params: dict[str, Any] = {}
        self.result: dict[str, Any] = {}
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.chunks: list[dict] | None = None
        self.done, self.total = run.progress_done, run.progress_total
        self.logs = LogBuffer(run.pk, run.attempts or 1)
        self._last_check = time.monotonic()

    # The slot
    @property
    def business_date(self):
        return self.run.business_date

    @property
    def run_key(self) -> str:
        return self.run.run_key

    @property
    def attempt(self) -> int:
        return self.run.attempts

    @cached_property
    def company(self):
        if self.run.company_id is None:
            return None
        return company_model().objects.get(pk=self.run.company_id)

    # Reporting
    def log(self, message: str, level: str | int = "info", **data: Any) -> None:
        self.logs.add(LEVELS.get(level, level) if isinstance(level, str) else level, message, data)
        self.checkpoint()

    def debug(self, message: str, **data: Any) -> None:
        self.log(message, Level.DEBUG, **data)

    def info(self, message: str, **data: Any) -> None:
        self.log(message, Level.INFO, **data)

    def warning(self, message: str, **data: Any) -> None:
        self.log(message, Level.WARNING, **data)

    def error(self, message: str, **data: Any) -> None:
        self.log(message, Level.ERROR, **data)

    def progress(self, done: int, total: int | None = None) -> None:
        """Progress shows live in the admin and API (through the cache), and is saved with the run."""
        self.done, self.total = done, total if total is not None else self.total
        cache.set(progress_key(self.run.pk), (self.done, self.total), timeout=settings.CELERY_TASK_TIME_LIMIT)
        self.checkpoint()

    def count(self, processed: int = 0, created: int = 0, skipped: int = 0, failed: int = 0) -> None:
        for name, value in zip(COUNTERS, (processed, created, skipped, failed), strict=True):
            self.counts[name] += value

    def fan_out(self, chunks) -> int:
        """Cut the work into chunks (JSON-able dicts, e.g. keyset id ranges). Each chunk runs
        as its own task through the job's chunk function, after this function returns."""
        if self.chunk is not None:
            raise RuntimeError("a chunk cannot fan out again")
        if self.chunks is not None:
            raise RuntimeError("fan_out may be called once per run")
        if self.spec.chunk_func is None:
            raise RuntimeError(f"{self.spec.code} has no chunk function (decorate one with @{self.spec.code}.chunk)")
        self.chunks = list(chunks)
        return len(self.chunks)

    def checkpoint(self) -> None:
        """Raise JobCancelled if an operator cancelled the run; cheap, checked every few seconds."""
        now = time.monotonic()
        if now - self._last_check < CHECKPOINT_SECONDS:
            return
        self._last_check = now
        if cache.get(runs.cancel_key(self.run.pk)):
            raise JobCancelled()


def progress_key(run_id: int) -> str:
    return f"scheduling:run:{run_id}:progress"


def live_progress(run: JobRun) -> tuple[int, int | None]:
    if run.status == RunStatus.RUNNING:
        if run.chunks_total:
            return run.chunks_done, run.chunks_total
        value = cache.get(progress_key(run.pk))
        if value:
            return tuple(value)
    return run.progress_done, run.progress_total


# --- Runs ---------------------------------------------------------------------------------


def execute_run(run_id: int, *, task_id: str, worker: str, after_outage: bool = False) -> str:
    """Claim the run and execute its job function. Returns what happened, for the task result.
    ``after_outage``: this is the task trying again after the database or broker went away."""
    claimed = claim(run_id, task_id, worker, after_outage=after_outage)
    if isinstance(claimed, str):
        return claimed
    run, spec = claimed
    if run.body_finished_at is not None and run.chunks_total is not None:
        # The function had returned and fanned out (before its worker died, or before the run
        # failed or was cancelled and then re-run): only its chunks remain. Running the body
        # again would start the run's own records over and lose what the done chunks did.
        return resume_chunks(run)
    return _run_body(run, spec, task_id, worker)


def claim(run_id: int, task_id: str, worker: str, *, after_outage: bool = False) -> str | tuple[JobRun, JobSpec]:
    now = timezone.now()
    with transaction.atomic():
        run = JobRun.objects.select_related("job").filter(pk=run_id).first()
        if run is None:
            return "no such run"
        definition = run.job
        if definition.overlap != Overlap.ALLOW:
            # Lock the definition: claims of one job are serialised, so max_concurrent holds.
            definition = JobDefinition.objects.select_for_update().get(pk=run.job_id)
            run.job = definition
        spec = registry.get(definition.code)
        if run.status == RunStatus.RUNNING and run.task_id == task_id:
            # Our own message again: the worker that had it died (kill -9, out of memory), or
            # the task is trying again after an outage interrupted the attempt.
            why = "interrupted by an outage" if after_outage else f"lost with worker {run.worker}"
            close_attempt(run, AttemptStatus.LOST, now=now, error=why)
            limit = definition.max_retries + (INFRASTRUCTURE_TRIES if after_outage else 0)
            if run.tries > limit:
                _fail(run, f"{why} {run.tries} times; giving up", "", now=now)
                return "lost too often; failed"
            JobRun.objects.filter(pk=run.pk).update(
                attempts=F("attempts") + 1, worker=worker, started_at=now, progress_at=now
            )
            runs.log(run, f"attempt {run.attempts} was {why}; running again", Level.WARNING)
            run.refresh_from_db()
            open_attempt(run, now=now, worker=worker, task_id=task_id)
            return (run, spec) if spec else _unregistered(run)
        if run.status not in CLAIMABLE:
            return f"run is {run.status}; nothing to do"
        if run.cancel_requested:
            _finish(run, RunStatus.CANCELLED, now=now)
            return "cancelled before it started"
        if spec is None:
            return _unregistered(run)
        if definition.overlap != Overlap.ALLOW:
            # A per-company job's limit is per company: one company's run never holds up another's.
            running = JobRun.objects.filter(job=definition, status=RunStatus.RUNNING, company=run.company_id)
            running = running.exclude(pk=run.pk).count()
            if running >= definition.max_concurrent:
                # A backfilled slot waits its turn instead: skipping it would lose the slot it was made for.
                backfilled = run.trigger == Trigger.BACKFILL or run.after_run_id is not None
                if definition.overlap == Overlap.SKIP and not backfilled:
                    _finish(run, RunStatus.SKIPPED, now=now, error=f"{running} run(s) of this job already running")
                    return "skipped: overlap"
                # Its message is due again later: the watchdog must not take it for lost meanwhile.
                due = now + datetime.timedelta(seconds=OVERLAP_REQUEUE_SECONDS)
                JobRun.objects.filter(pk=run.pk).update(due_at=due)
                runs.send(run, countdown=OVERLAP_REQUEUE_SECONDS)
                return "requeued: overlap"
        claimed = JobRun.objects.filter(pk=run.pk, status__in=CLAIMABLE).update(
            status=RunStatus.RUNNING,
            attempts=F("attempts") + 1,
            started_at=now,
            progress_at=now,
            worker=worker,
            task_id=task_id,
        )
        if not claimed:
            return "claimed by another worker"
        run.status, run.attempts, run.started_at, run.worker, run.task_id = (
            RunStatus.RUNNING,
            run.attempts + 1,
            now,
            worker,
            task_id,
        )
        open_attempt(run, now=now, worker=worker, task_id=task_id)
    return run, spec


def open_attempt(run: JobRun, *, now, worker: str, task_id: str) -> None:
    """The record of the attempt just claimed, numbered as the run's attempts are counted
    (the claim's conditional update gave it that number: no other claim has it)."""
    attempt = JobAttempt(
        run_id=run.pk, number=run.attempts, trigger=run.trigger, started_at=now, worker=worker, task_id=task_id
    )
    JobAttempt.objects.bulk_create([attempt], ignore_conflicts=True)  # one INSERT, no read first


def close_attempt(run: JobRun, status: AttemptStatus, *, now, **fields) -> None:
    """The run's current attempt ends with ``status`` (once: a finished attempt stays so)."""
    JobAttempt.objects.filter(run_id=run.pk, number=run.attempts, status=AttemptStatus.RUNNING).update(
        status=status, finished_at=now, duration=_seconds(run, now), **fields
    )


def _unregistered(run: JobRun) -> str:
    _fail(run, f"{run.job.code} is not declared by any installed app's jobs.py", "", now=timezone.now())
    return "failed: not registered"


def _run_body(run: JobRun, spec: JobSpec, task_id: str, worker: str) -> str:
    definition = run.job
    ctx = JobContext(run, spec, definition)
    try:
        ctx.params = spec.params.clean(run.params, definition.default_params)
        ctx.info(f"attempt {run.attempts} started on {worker}")
        with quiet(run):
            if spec.atomic:
                with transaction.atomic():
                    spec.func(ctx)
                    outcome = _body_done(ctx, task_id)
            else:
                spec.func(ctx)
                with transaction.atomic():
                    outcome = _body_done(ctx, task_id)
    except JobCancelled:
        ctx.logs.recover()
        ctx.logs.add(Level.WARNING, "cancelled by an operator; an atomic job's writes were rolled back", {})
        ctx.logs.flush()
        _finish(run, RunStatus.CANCELLED, now=timezone.now())
        return "cancelled"
    except SoftTimeLimitExceeded as exc:
        ctx.logs.recover()
        return _failed(ctx, exc, retryable=False, error=f"time limit of {definition.time_limit}s exceeded")
    except Exception as exc:
        if infrastructure.is_infrastructure_error(exc) and not infrastructure.database_usable():
            raise  # nothing can be recorded now: the task retries it once the database is back
        ctx.logs.recover()
        return _failed(ctx, exc, retryable=spec.retry.is_retryable(exc) or infrastructure.is_infrastructure_error(exc))
    ctx.logs.flush()
    return outcome


def quiet(run: JobRun):
    """Notifications a run makes reach nobody when it may not notify (a backfilled slot of a
    job that does not notify on backfill): ``settings.JOB_SILENCE`` says how, so the job
    layer imports no notifications app."""
    if run.notify:
        return contextlib.nullcontext()
    return import_string(settings.JOB_SILENCE)(f"backfill run {run.pk} of {run.job.code}")


def _body_done(ctx: JobContext, task_id: str) -> str:
    """Record the function's return, in its transaction when the job is atomic."""
    run, now = ctx.run, timezone.now()
    ctx.logs.flush()
    fields = {
        **ctx.counts,
        "params": ctx.spec.params.dump(ctx.params),  # the effective parameters, defaults included
        "result": ctx.result,
        "progress_done": ctx.done,
        "progress_total": ctx.total,
        "body_finished_at": now,
        "progress_at": now,
    }
    if ctx.chunks:
        JobChunk.objects.bulk_create(
            [JobChunk(run=run, index=i, payload=payload) for i, payload in enumerate(ctx.chunks)],
            ignore_conflicts=True,
            batch_size=1000,
        )
        fields["chunks_total"] = len(ctx.chunks)
    else:
        fields.update(status=RunStatus.SUCCEEDED, finished_at=now, duration=_seconds(run, now))
    current = JobRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING, task_id=task_id, cancel_requested=False)
    if not current.update(**fields):
        raise JobCancelled()
    if ctx.chunks:
        transaction.on_commit(lambda: send_chunks(run), robust=True)
        return f"fanned out into {len(ctx.chunks)} chunks"
    close_attempt(run, AttemptStatus.SUCCEEDED, now=now, result=ctx.result)
    transaction.on_commit(lambda: runs.after_finish(run.pk), robust=True)
    return "succeeded"


def _failed(ctx: JobContext, exc: BaseException, *, retryable: bool, error: str = "") -> str:
    run, definition, now = ctx.run, ctx.definition, timezone.now()
    error = error or f"{type(exc).__name__}: {exc}"
    trace = traceback.format_exc()
    # A database or broker that went away is no fault of the job: it gets a few more tries
    # than the job's own limit, so an outage of minutes does not fail the run.
    limit = definition.max_retries + (INFRASTRUCTURE_TRIES if infrastructure.is_infrastructure_error(exc) else 0)
    if retryable and run.tries <= limit:
        delay = backoff(run.tries, definition.backoff_base, definition.backoff_cap)
        with transaction.atomic():
            if JobRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
                status=RunStatus.RETRYING,
                error=error,
                traceback=trace,
                queued_at=now,
                due_at=now + datetime.timedelta(seconds=delay),
            ):
                close_attempt(run, AttemptStatus.FAILED, now=now, error=error, traceback=trace)
                runs.log(run, f"attempt {run.attempts} failed: {error}; retrying in {delay:.0f}s", Level.WARNING)
                runs.send(run, countdown=delay)
        return f"retrying in {delay:.0f}s"
    _fail(run, error, trace, now=now, counts=ctx.counts)
    return "failed"


def _fail(run: JobRun, error: str, trace: str, *, now, counts: dict | None = None) -> None:
    runs.log(run, f"failed: {error}", Level.ERROR)
    _finish(run, RunStatus.FAILED, now=now, error=error, traceback=trace, **(counts or {}))


ATTEMPT_ENDING = {
    RunStatus.SUCCEEDED: AttemptStatus.SUCCEEDED,
    RunStatus.FAILED: AttemptStatus.FAILED,
    RunStatus.CANCELLED: AttemptStatus.CANCELLED,
}


def _finish(run: JobRun, status: RunStatus, *, now, **fields) -> bool:
    """Move a run that has not finished to a final state, once."""
    with transaction.atomic():
        done = JobRun.objects.filter(pk=run.pk).exclude(status__in=FINISHED)
        if not done.update(status=status, finished_at=now, duration=_seconds(run, now), **fields):
            return False
        if status in ATTEMPT_ENDING:
            ending = {name: fields[name] for name in ("error", "traceback") if name in fields}
            close_attempt(run, ATTEMPT_ENDING[status], now=now, **ending)
        transaction.on_commit(lambda: runs.after_finish(run.pk), robust=True)
    return True


def _seconds(run: JobRun, now) -> float | None:
    return (now - run.started_at).total_seconds() if run.started_at else None


# --- Chunks --------------------------------------------------------------------------------


def send_chunks(run: JobRun, indexes: list[int] | None = None) -> int:
    """Send the run's pending chunks (or just ``indexes``) to its job's queue."""
    from scheduling import tasks

    if indexes is None:
        indexes = list(JobChunk.objects.filter(run=run, status=ChunkStatus.PENDING).values_list("index", flat=True))
    options = runs.task_options(run.job)
    for index in indexes:
        tasks.execute_chunk.apply_async(args=(run.pk, index), **options)
    return len(indexes)


def resume_chunks(run: JobRun) -> str:
    """Carry on a fanned-out run from its pending chunks; finish it if none is left."""
    sent = send_chunks(run)
    if sent:
        runs.log(run, f"resuming: {sent} chunk(s) still to do, {run.chunks_done} done")
        return "resumed its chunks"
    finished = _complete_fan_out(run)
    return "succeeded" if finished else "resumed: nothing left to do"


def _complete_fan_out(run: JobRun) -> bool:
    """The run succeeds once every chunk is done; called by the chunk that completes it."""
    done, total = JobRun.objects.filter(pk=run.pk).values_list("chunks_done", "chunks_total").get()
    if total is None or done < total:
        return False
    finished_at = timezone.now()
    with transaction.atomic():
        if not JobRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
            status=RunStatus.SUCCEEDED,
            finished_at=finished_at,
            duration=_seconds(run, finished_at),
            progress_done=done,
            progress_total=total,
        ):
            return False
        result = JobRun.objects.filter(pk=run.pk).values_list("result", flat=True).get()
        close_attempt(run, AttemptStatus.SUCCEEDED, now=finished_at, result=result)
        transaction.on_commit(lambda: runs.after_finish(run.pk), robust=True)
    return True


def execute_chunk(run_id: int, index: int, *, retries: int, worker: str = "") -> str | RetryLater:
    run = JobRun.objects.select_related("job").filter(pk=run_id).first()
    if run is None or run.status != RunStatus.RUNNING:
        return "run is not running"
    now = timezone.now()
    if run.cancel_requested or cache.get(runs.cancel_key(run.pk)):
        _finish(run, RunStatus.CANCELLED, now=now)
        return "cancelled"
    definition, spec = run.job, registry.get(run.job.code)
    if spec is None or spec.chunk_func is None:
        _fail(run, f"{definition.code} has no chunk function registered", "", now=now)
        return "failed: no chunk function"
    chunk = JobChunk.objects.filter(run=run, index=index).first()
    if chunk is None or chunk.status != ChunkStatus.PENDING:
        return "chunk already done"
    # Begun, outside the chunk's transaction: the watchdog sends again only chunks that no
    # worker has begun (or began so long ago that the worker must be gone).
    JobChunk.objects.filter(pk=chunk.pk, status=ChunkStatus.PENDING).update(started_at=now, worker=worker)
    ctx = JobContext(run, spec, definition, chunk=chunk)
    try:
        ctx.params = spec.params.clean(run.params, definition.default_params)
        with quiet(run):
            if not spec.atomic_chunks:
                spec.chunk_func(ctx, chunk.payload)  # committing as it goes; safe to repeat (see @job)
            with transaction.atomic():
                mine = JobChunk.objects.filter(pk=chunk.pk, status=ChunkStatus.PENDING).update(
                    status=ChunkStatus.DONE, attempts=F("attempts") + 1, finished_at=timezone.now(), error=""
                )
                if not mine:
                    return "chunk already done"  # a duplicate message got here first
                if spec.atomic_chunks:
                    spec.chunk_func(ctx, chunk.payload)
                ctx.logs.flush()
                counted = {name: F(name) + value for name, value in ctx.counts.items() if value}
                JobRun.objects.filter(pk=run.pk).update(
                    chunks_done=F("chunks_done") + 1, progress_at=timezone.now(), **counted
                )
                _complete_fan_out(run)
    except JobCancelled:
        ctx.logs.recover()
        _finish(run, RunStatus.CANCELLED, now=timezone.now())
        return "cancelled"
    except Exception as exc:
        if infrastructure.is_infrastructure_error(exc) and not infrastructure.database_usable():
            raise  # nothing can be recorded now: the task retries it once the database is back
        ctx.logs.recover()
        return _chunk_failed(ctx, exc, retries)
    return "chunk done"


def _chunk_failed(ctx: JobContext, exc: BaseException, retries: int) -> str | RetryLater:
    run, chunk, definition = ctx.run, ctx.chunk, ctx.definition
    error = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, SoftTimeLimitExceeded):
        error = f"chunk time limit of {definition.time_limit}s exceeded"
    JobChunk.objects.filter(pk=chunk.pk).update(attempts=F("attempts") + 1, error=error)
    infra = infrastructure.is_infrastructure_error(exc)
    retryable = (ctx.spec.retry.is_retryable(exc) or infra) and not isinstance(exc, SoftTimeLimitExceeded)
    limit = definition.max_retries + (INFRASTRUCTURE_TRIES if infra else 0)
    if retryable and retries < limit:
        delay = backoff(retries + 1, definition.backoff_base, definition.backoff_cap)
        runs.log(run, f"chunk {chunk.index} failed: {error}; retrying in {delay:.0f}s", Level.WARNING)
        return RetryLater(delay)
    JobChunk.objects.filter(pk=chunk.pk).update(status=ChunkStatus.FAILED)
    _fail(run, f"chunk {chunk.index} failed: {error}", traceback.format_exc(), now=timezone.now())
    return "failed"


def run_here(run: JobRun) -> JobRun:
    """Claim and execute the run, its retries and its chunks in this process, and return it
    finished (or blocked, waiting). A message already on the broker for it does nothing
    when a worker gets it: the run is claimed once."""
    while True:
        run.refresh_from_db()
        if run.status in CLAIMABLE:
            execute_run(run.pk, task_id=f"inline-{run.pk}-{time.time_ns()}", worker="inline")
            continue
        pending = list(run.chunks.filter(status=ChunkStatus.PENDING).values_list("index", flat=True))
        if run.status != RunStatus.RUNNING or not pending:
            return run
        for index in pending:
            outcome = execute_chunk(run.pk, index, retries=0)
            retries = 0
            while isinstance(outcome, RetryLater):
                retries += 1
                outcome = execute_chunk(run.pk, index, retries=retries)
