"""A run's life outside the worker: created for a slot, held for dependencies, queued,
cancelled, re-run, released, and what follows when it finishes.

Every transition is a conditional update (``filter(status=…).update(…) == 1``), so two
beats, a double click or a redelivered message can race and only one of them wins.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from scheduling import slots
from scheduling.choices import FINISHED, Level, Offset, RunStatus, Scope, Trigger
from scheduling.models import ChunkStatus, JobChunk, JobDefinition, JobLog, JobRun
from scheduling.registry import ParamError

logger = logging.getLogger(__name__)

QUEUE_LIMIT_GRACE = 60  # seconds the worker's hard limit exceeds a job's own limit
UPSTREAM_FAILED = frozenset({RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.BLOCKED, RunStatus.SKIPPED})
RERUNNABLE = frozenset({RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.SKIPPED, RunStatus.SUCCEEDED})


class RunError(Exception):
    """An operator asked for something a run's state does not allow."""


def job_timezone(definition: JobDefinition, company=None) -> str:
    """The timezone a job's business dates are read in: the company's, else its schedule's."""
    if company is not None and getattr(company, "timezone", None):
        return str(company.timezone)
    schedule = definition.schedules.select_related("periodic_task__crontab").first()
    if schedule is not None and schedule.periodic_task.crontab_id:
        return str(schedule.periodic_task.crontab.timezone)
    return settings.TIME_ZONE


def log(run: JobRun | int, message: str, level: int = Level.INFO, **data) -> None:
    """One log line from outside the job function (transitions, operators' actions)."""
    run_id = getattr(run, "pk", run)
    attempt = getattr(run, "attempts", 0) or 1
    JobLog.objects.create(run_id=run_id, attempt=attempt, level=level, message=message, data=data)


# --- Creating runs -------------------------------------------------------------------


def request_run(
    definition: JobDefinition,
    *,
    business_date: datetime.date | None = None,
    company=None,
    params: dict | None = None,
    trigger: Trigger = Trigger.MANUAL,
    user=None,
    run_key: str | None = None,
) -> tuple[JobRun, bool]:
    """A run for the slot of ``business_date`` (today by default), or the one that exists.

    ``run_key`` replaces the slot's key for a job run on demand per request rather than
    per slot (an aged report run per report asked for); it is still unique per job.

    Returns ``(run, created)``. Parameters are validated first (ParamError lists every bad
    one). A second request for the same slot returns the first run untouched: re-running
    a finished run is an explicit operator action (``rerun``).
    """
    spec = definition.spec
    if spec is None:
        raise RunError(f"{definition.code} is not declared by any installed app's jobs.py")
    if definition.scope == Scope.COMPANY and company is None:
        raise ParamError({"company": f"{definition.code} runs per company; name one"})
    if definition.scope == Scope.GLOBAL and company is not None:
        raise ParamError({"company": f"{definition.code} runs for the whole platform, not per company"})
    cleaned = spec.params.clean(params, definition.default_params)
    tz = ZoneInfo(job_timezone(definition, company))
    instant = timezone.now() if business_date is None else slots.start_of_day(business_date, tz)
    slot = slots.slot_for(definition.key_by, instant, tz)
    # The run keeps the parameters asked for; the worker records the effective ones (with defaults).
    given = spec.params.dump({name: cleaned[name] for name in params or {}})
    if run_key is not None and not 0 < len(run_key) <= JobRun._meta.get_field("run_key").max_length:
        raise RunError(f"a run key is 1 to {JobRun._meta.get_field('run_key').max_length} characters")
    lookup = {"job": definition, "run_key": run_key or slot.key, "company": company}
    try:
        # The run and its first move (queued, waiting or blocked) commit together: no run is
        # left pending with nobody to move it. Called outside a transaction, this is one
        # transaction without a savepoint.
        with transaction.atomic():
            run = JobRun.objects.create(
                **lookup,
                business_date=slot.business_date,
                slot_at=slot.at,
                time_zone=str(tz),
                params=given,
                trigger=trigger,
                triggered_by=user,
            )
            advance(run)  # who asked, how and with what is on the run itself: trigger, triggered_by, params
    except IntegrityError:
        # The slot's run exists: somebody else (a second beat, a double click) got there first.
        return JobRun.objects.get(**lookup), False
    return run, True


def create_scheduled_runs(rows: Iterable[JobRun]) -> list[tuple[int, int]]:
    """Insert-or-ignore a batch of scheduled runs; returns (id, job id) of those still pending.

    Used by beat: one statement for a whole tick's fires instead of a query per slot.
    """
    rows = list(rows)
    if not rows:
        return []
    JobRun.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    wanted = {(row.job_id, row.run_key, row.company_id) for row in rows}
    job_ids = sorted({row.job_id for row in rows})
    keys = sorted({row.run_key for row in rows})
    found = []
    # One query for the batch: a superset by job and by key, narrowed to the exact triples here.
    pending = JobRun.objects.filter(status=RunStatus.PENDING, trigger=Trigger.SCHEDULE)
    for start in range(0, len(job_ids), 500):
        candidates = pending.filter(job_id__in=job_ids[start : start + 500], run_key__in=keys)
        for pk, job_id, run_key, company_id in candidates.values_list("pk", "job_id", "run_key", "company_id"):
            if (job_id, run_key, company_id) in wanted:
                found.append((pk, job_id))
    return found


# --- Dependencies and queueing --------------------------------------------------------


def upstream_runs(run: JobRun) -> list[tuple[str, str, JobRun | None]]:
    """Each upstream (code, run_key, its run or None) that ``run`` waits for."""
    result = []
    for code, offset in run.job.dependencies():
        upstream = JobDefinition.objects.filter(code=code).first()
        if upstream is None:
            result.append((code, "?", None))
            continue
        instant = run.slot_at
        if offset == Offset.PREVIOUS:
            instant = slots.previous_instant(upstream.key_by, instant, run.time_zone)
        key = slots.slot_for(upstream.key_by, instant, run.time_zone).key
        company_id = run.company_id if upstream.scope == Scope.COMPANY else None
        found = JobRun.objects.filter(job=upstream, run_key=key, company_id=company_id).first()
        result.append((code, key, found))
    return result


def dependency_status(run: JobRun) -> tuple[RunStatus, str]:
    """Where ``run`` should go: queued when every upstream succeeded, blocked when one
    failed, waiting otherwise; with a sentence saying why."""
    waiting, failed = [], []
    for code, key, upstream in upstream_runs(run):
        if upstream is None:
            waiting.append(f"{code} {key} (no run yet)")
        elif upstream.status in UPSTREAM_FAILED:
            failed.append(f"{code} {key} ({upstream.status})")
        elif upstream.status != RunStatus.SUCCEEDED:
            waiting.append(f"{code} {key} ({upstream.status})")
    if failed:
        return RunStatus.BLOCKED, "upstream did not succeed: " + ", ".join(failed)
    if waiting:
        return RunStatus.WAITING, "waiting for " + ", ".join(waiting)
    return RunStatus.QUEUED, "dependencies met" if run.job.depends_on else ""


def advance(run: JobRun, *, from_states: Iterable[str] = (RunStatus.PENDING,)) -> RunStatus | None:
    """Move a run on from pending, waiting or blocked by its dependencies."""
    from scheduling.services import alerts

    target, reason = dependency_status(run)
    now = timezone.now()
    changes = {"status": target}
    if target == RunStatus.QUEUED:
        changes["queued_at"] = now
    moved = JobRun.objects.filter(pk=run.pk, status__in=list(from_states)).update(**changes)
    if not moved:
        return None
    run.queued_at = changes.get("queued_at", run.queued_at)
    if reason and target != run.status:
        log(run, reason, level=Level.WARNING if target == RunStatus.BLOCKED else Level.INFO)
    if target == RunStatus.QUEUED:
        send(run)
    elif target == RunStatus.BLOCKED:
        alerts.blocked(run, reason)
    run.status = target
    return target


def task_options(definition: JobDefinition) -> dict:
    """How a job's tasks (its runs and its chunks) travel: its queue, priority and time limits."""
    return {
        "queue": definition.queue,
        "routing_key": definition.queue,
        "priority": definition.priority,
        "soft_time_limit": definition.time_limit,
        "time_limit": min(definition.time_limit + QUEUE_LIMIT_GRACE, settings.CELERY_TASK_TIME_LIMIT),
    }


def send(run: JobRun, countdown: float | None = None) -> None:
    """Queue the run's execution on its job's queue, once the current transaction commits."""
    from scheduling import tasks

    options = {"args": (run.pk,), **task_options(run.job)}
    if countdown:
        options["countdown"] = countdown
    # robust: a broker that is down must not turn a recorded run into an error for the caller;
    # the run stays queued and the watchdog sends it again.
    transaction.on_commit(lambda: tasks.execute_run.apply_async(**options), robust=True)


def queue_pending(run_ids: Iterable[int]) -> int:
    """Advance a batch of pending runs (beat's fires). Returns how many were queued."""
    queued = 0
    for run in JobRun.objects.filter(pk__in=list(run_ids)).select_related("job"):
        if advance(run) == RunStatus.QUEUED:
            queued += 1
    return queued


def release_dependents(run: JobRun) -> None:
    """Re-evaluate runs that wait for (or were blocked by) this job's runs."""
    code = run.job.code
    with_dependencies = JobDefinition.objects.exclude(depends_on=[]).only("pk", "code", "depends_on")
    downstream = [
        definition
        for definition in with_dependencies
        if any(entry.get("job") == code for entry in definition.depends_on if isinstance(entry, dict))
    ]
    if not downstream:
        return
    states = [RunStatus.WAITING, RunStatus.BLOCKED]
    candidates = JobRun.objects.filter(job__in=downstream, status__in=states).select_related("job")
    if run.company_id:
        # A company's run affects that company's dependents (and global ones), nobody else's.
        candidates = candidates.filter(Q(company_id=run.company_id) | Q(company__isnull=True))
    for candidate in candidates.order_by("pk")[:1000]:
        advance(candidate, from_states=states)


# --- Operator actions -------------------------------------------------------------------


@transaction.atomic
def cancel(run: JobRun, user=None) -> JobRun:
    """Cancel a run that has not finished. A running one stops at its next log or progress
    call (and an atomic job's writes are rolled back); its chunks stop before they start."""
    from django.core.cache import cache

    who = f" by {user}" if user else ""
    now = timezone.now()
    not_started = [RunStatus.PENDING, RunStatus.WAITING, RunStatus.QUEUED, RunStatus.RETRYING, RunStatus.BLOCKED]
    if JobRun.objects.filter(pk=run.pk, status__in=not_started).update(
        status=RunStatus.CANCELLED, finished_at=now, cancel_requested=True
    ):
        log(run, f"cancelled{who}", level=Level.WARNING)
        run.refresh_from_db()
        transaction.on_commit(lambda: after_finish(run.pk), robust=True)
        return run
    if JobRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(cancel_requested=True):
        cache.set(cancel_key(run.pk), True, timeout=settings.CELERY_TASK_TIME_LIMIT * 2)
        log(run, f"cancellation requested{who}; the run stops at its next checkpoint", level=Level.WARNING)
        run.refresh_from_db()
        return run
    run.refresh_from_db()
    raise RunError(f"a {run.status} run cannot be cancelled")


def cancel_key(run_id: int) -> str:
    return f"scheduling:run:{run_id}:cancel"


def rerun(run: JobRun, user=None) -> JobRun:
    """Run a finished run's slot again. A failed or cancelled fan-out resumes: chunks that
    completed stay done. A succeeded or skipped run starts over."""
    from django.core.cache import cache

    if run.status not in RERUNNABLE:
        raise RunError(f"a {run.status} run cannot be re-run; only {', '.join(sorted(RERUNNABLE))} runs can")
    resume = run.status in (RunStatus.FAILED, RunStatus.CANCELLED)
    with transaction.atomic():
        changes = dict(
            status=RunStatus.PENDING,
            attempts=0,
            cancel_requested=False,
            error="",
            traceback="",
            finished_at=None,
            duration=None,
            trigger=Trigger.RETRY,
            triggered_by=user,
        )
        if not resume:
            changes.update(
                processed=0,
                created=0,
                skipped=0,
                failed=0,
                progress_done=0,
                progress_total=None,
                chunks_total=None,
                chunks_done=0,
                body_finished_at=None,
                result={},
            )
        if not JobRun.objects.filter(pk=run.pk, status=run.status).update(**changes):
            raise RunError("the run changed meanwhile; reload and try again")
        if resume:
            JobChunk.objects.filter(run=run, status=ChunkStatus.FAILED).update(status=ChunkStatus.PENDING, error="")
        else:
            JobChunk.objects.filter(run=run).delete()
        cache.delete(cancel_key(run.pk))
        run.refresh_from_db()
        log(run, f"re-run by {user or 'an operator'}" + (" (resuming its chunks)" if resume else ""))
        advance(run)
    run.refresh_from_db()
    return run


def release(run: JobRun, user=None) -> JobRun:
    """Queue a waiting or blocked run now, whatever its upstream runs say."""
    with transaction.atomic():
        if not JobRun.objects.filter(pk=run.pk, status__in=[RunStatus.WAITING, RunStatus.BLOCKED]).update(
            status=RunStatus.QUEUED, queued_at=timezone.now()
        ):
            run.refresh_from_db()
            raise RunError(f"only waiting or blocked runs can be released; this one is {run.status}")
        log(run, f"released by {user or 'an operator'} without its dependencies", level=Level.WARNING)
        send(run)
    run.refresh_from_db()
    return run


# --- After a run finishes -------------------------------------------------------------------


def after_finish(run_id: int) -> None:
    """Dependents released or blocked, alerts raised or resolved. Runs after commit, so a
    failure here never undoes the run's own record."""
    from scheduling.services import alerts

    run = JobRun.objects.select_related("job").filter(pk=run_id).first()
    if run is None or run.status not in FINISHED:
        return
    try:
        alerts.evaluate_finished(run)
        release_dependents(run)
    except Exception:
        logger.exception("follow-up of run %s failed", run_id)
