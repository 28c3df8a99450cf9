"""A run's life outside the worker: created for a slot, held for dependencies, queued,
cancelled, re-run, released, and what follows when it finishes.

Every transition is a conditional update (``filter(status=…).update(…) == 1``), so two
beats, a double click or a redelivered message can race and only one of them wins.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from scheduling import priorities, slots
from scheduling.choices import FINISHED, Level, Offset, RunStatus, Scope, Trigger
from scheduling.models import ChunkStatus, JobChunk, JobDefinition, JobLog, JobRun, JobSchedule
from scheduling.registry import ParamError
from scheduling.services import alerts

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
    slot_at: datetime.datetime | None = None,
    time_zone: str | None = None,
    schedule: JobSchedule | None = None,
    after_run: JobRun | None = None,
    notify: bool = True,
) -> tuple[JobRun, bool]:
    """A run for the slot of ``business_date`` (today by default), or the one that exists.

    ``run_key`` replaces the slot's key for a job run on demand per request rather than
    per slot (an aged report run per report asked for); it is still unique per job.
    ``slot_at`` names the slot by its fire time instead, read in ``time_zone`` (a
    backfill); ``schedule`` is the schedule it belongs to; ``after_run`` a run this one
    waits for besides its dependencies (the slot before it in a backfill); ``notify``
    off keeps its notifications from reaching anybody.

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
    tz = ZoneInfo(time_zone or job_timezone(definition, company))
    if slot_at is not None:
        instant = slot_at
    else:
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
                schedule=schedule,
                after_run=after_run,
                notify=notify,
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
#
# A run waits for the runs of its upstream jobs for the same (or the previous) period: the
# jobs it names in ``depends_on``, and the jobs that name it in their ``before`` (so a job on
# a higher floor can go before a lower floor's job without that job naming it). A run
# backfilled after another waits for that one too. When an upstream run fails, is
# cancelled, skipped or blocked, the run is blocked, and so is everything downstream of it,
# each naming the root run that did not succeed: one alert per root lists what it holds
# back. Re-running or releasing lets the chain move on in dependency order.


class Graph:
    """The job definitions' dependencies, read once for a batch of runs. Only the jobs that
    name a link (``depends_on`` or ``before``: a few) are read whole; any other job the
    links reach is read when first asked for, so ten thousand definitions cost nothing."""

    FIELDS = ("pk", "code", "key_by", "scope", "depends_on", "before")

    def __init__(self) -> None:
        linked = JobDefinition.objects.exclude(depends_on=[], before=[]).only(*self.FIELDS)
        self.jobs: dict[str, JobDefinition | None] = {definition.code: definition for definition in linked}
        self.upstream: dict[str, list[tuple[str, Offset]]] = {}
        self.downstream: dict[str, set[str]] = {}
        for definition in list(self.jobs.values()):
            for code, offset in _entries(definition.dependencies):
                self._link(code, definition.code, offset)
            for code, offset in _entries(definition.before_jobs):
                self._link(definition.code, code, offset)

    def _link(self, upstream: str, downstream: str, offset: Offset) -> None:
        self.upstream.setdefault(downstream, []).append((upstream, offset))
        self.downstream.setdefault(upstream, set()).add(downstream)

    def held(self, code: str) -> bool:
        """Whether this job's runs wait for another job's."""
        return bool(self.upstream.get(code))

    def job(self, code: str) -> JobDefinition | None:
        if code not in self.jobs:
            self.jobs[code] = JobDefinition.objects.only(*self.FIELDS).filter(code=code).first()
        return self.jobs[code]


def _entries(read) -> list[tuple[str, Offset]]:
    try:
        return read()
    except ValueError:
        return []  # a malformed entry is refused by the definition's own check, not here


@dataclass(frozen=True)
class Upstream:
    code: str
    key: str
    run: JobRun | None

    def describe(self) -> str:
        state = self.run.status if self.run else "no run yet"
        return f"{self.code} {self.key} ({state})"


def upstream_slots(run: JobRun, graph: Graph) -> list[tuple[str, str, int | None]]:
    """The (job code, run key, company id) of each upstream slot ``run`` waits for; no query."""
    result = []
    for code, offset in graph.upstream.get(run.job.code, ()):
        upstream = graph.job(code)
        if upstream is None:
            result.append((code, "?", None))
            continue
        instant = run.slot_at
        if offset == Offset.PREVIOUS:
            instant = slots.previous_instant(upstream.key_by, instant, run.time_zone)
        key = slots.slot_for(upstream.key_by, instant, run.time_zone).key
        result.append((code, key, run.company_id if upstream.scope == Scope.COMPANY else None))
    return result


def upstream_runs(run: JobRun, graph: Graph | None = None) -> list[Upstream]:
    """Each upstream run that ``run`` waits for (or None where there is no run yet)."""
    graph = graph or Graph()
    result = []
    for code, key, company_id in upstream_slots(run, graph):
        upstream = graph.job(code)
        found = None
        if upstream is not None:
            found = JobRun.objects.filter(job_id=upstream.pk, run_key=key, company_id=company_id).first()
        result.append(Upstream(code, key, found))
    if run.after_run_id:
        after = JobRun.objects.select_related("job").filter(pk=run.after_run_id).first()
        if after is not None:
            result.append(Upstream(after.job.code, after.run_key, after))
    return result


def dependency_status(run: JobRun, graph: Graph | None = None) -> tuple[RunStatus, str, JobRun | None]:
    """Where ``run`` should go, why, and the root run that blocks it: queued when every
    upstream succeeded, blocked when one did not, waiting otherwise."""
    graph = graph or Graph()
    waiting, failed, roots = [], [], []
    for upstream in upstream_runs(run, graph):
        if upstream.run is None or upstream.run.status not in UPSTREAM_FAILED | {RunStatus.SUCCEEDED}:
            waiting.append(upstream.describe())
        elif upstream.run.status in UPSTREAM_FAILED:
            failed.append(upstream.describe())
            blocked = upstream.run.status == RunStatus.BLOCKED and upstream.run.blocked_by_id
            roots.append(upstream.run.blocked_by_id if blocked else upstream.run.pk)
    if failed:
        root = JobRun.objects.select_related("job").filter(pk=roots[0]).first()
        reason = "upstream did not succeed: " + ", ".join(failed)
        if root is not None:
            reason += f"; the root is {root.job.code} {root.run_key} (run {root.pk}, {root.status})"
        return RunStatus.BLOCKED, reason, root
    if waiting:
        return RunStatus.WAITING, "waiting for " + ", ".join(waiting), None
    held = graph.held(run.job.code) or run.after_run_id
    return RunStatus.QUEUED, "dependencies met" if held else "", None


def advance(
    run: JobRun, *, from_states: Iterable[str] = (RunStatus.PENDING,), graph: Graph | None = None
) -> RunStatus | None:
    """Move a run on from pending, waiting or blocked by its dependencies. Returns where it
    went, or None when it was no longer in ``from_states``."""
    graph = graph or Graph()
    target, reason, root = dependency_status(run, graph)
    now = timezone.now()
    changes = {"status": target, "blocked_by": root}
    if target == RunStatus.QUEUED:
        changes.update(queued_at=now, due_at=now)
    moved = JobRun.objects.filter(pk=run.pk, status__in=list(from_states)).update(**changes)
    if not moved:
        return None
    previous_status, previous_root = run.status, run.blocked_by_id
    run.status, run.blocked_by = target, root
    if target == RunStatus.QUEUED:
        run.queued_at = run.due_at = now
    if reason and (target != previous_status or (root and root.pk != previous_root)):
        log(run, reason, level=Level.WARNING if target == RunStatus.BLOCKED else Level.INFO)
    if target == RunStatus.QUEUED:
        send(run)
    if root is not None:
        alerts.blocked_chain(root)
    if previous_root and previous_root != (root.pk if root else None):
        former = JobRun.objects.select_related("job").filter(pk=previous_root).first()
        if former is not None:
            alerts.blocked_chain(former)  # one run fewer held back by it, or none
    return target


def task_options(definition: JobDefinition) -> dict:
    """How a job's tasks (its runs and its chunks) travel: its queue, priority and time limits."""
    return {
        "queue": definition.queue,
        "routing_key": definition.queue,
        "priority": priorities.message_priority(definition.priority, settings.CELERY_BROKER_URL),
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
    # the run stays queued and the watchdog sends it again once the grace for a stalled run passes.
    transaction.on_commit(lambda: tasks.execute_run.apply_async(**options), robust=True)


def queue_pending(run_ids: Iterable[int], graph: Graph | None = None) -> int:
    """Advance a batch of pending runs (beat's fires). Returns how many were queued."""
    queued = 0
    graph = graph or Graph()
    for run in JobRun.objects.filter(pk__in=list(run_ids)).select_related("job"):
        if advance(run, graph=graph) == RunStatus.QUEUED:
            queued += 1
    return queued


def release_dependents(run: JobRun, graph: Graph | None = None) -> int:
    """Re-evaluate everything downstream of ``run``, breadth first: runs waiting for it are
    queued or blocked, and a change travels on to their own dependents (a blocked period
    close blocks the year-end close waiting for it; a re-run root puts the chain back to
    waiting). Returns how many runs changed state."""
    graph = graph or Graph()
    changed, seen, frontier = 0, {run.pk}, [run]
    while frontier:
        current = frontier.pop(0)
        for candidate in _held_by(current, graph):
            if candidate.pk in seen:
                continue
            seen.add(candidate.pk)
            before = (candidate.status, candidate.blocked_by_id)
            after = advance(candidate, from_states=HELD, graph=graph)
            if after is not None and (after, candidate.blocked_by_id) != before:
                changed += 1
                frontier.append(candidate)
    return changed


HELD = (RunStatus.WAITING, RunStatus.BLOCKED)
HELD_SCAN = 1000  # held runs of one downstream job looked at per upstream run


def _held_by(run: JobRun, graph: Graph) -> list[JobRun]:
    """Waiting or blocked runs that wait for ``run``: of its downstream jobs, for its slot
    and company (a global run holds every company's), and runs backfilled after it."""
    found = list(JobRun.objects.filter(after_run=run, status__in=HELD).select_related("job"))
    downstream = graph.downstream.get(run.job.code)
    if downstream:
        candidates = JobRun.objects.filter(job__code__in=downstream, status__in=HELD).select_related("job")
        if run.company_id:
            candidates = candidates.filter(Q(company_id=run.company_id) | Q(company__isnull=True))
        mine = (run.job.code, run.run_key, run.company_id)
        for candidate in candidates.order_by("-slot_at", "-pk")[:HELD_SCAN]:
            if mine in upstream_slots(candidate, graph):
                found.append(candidate)
    return found


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
    """Run a finished run's slot again, as a new attempt: the earlier attempts keep their
    own record and log lines. A failed or cancelled fan-out resumes: chunks that completed
    stay done and its body is not run again. A succeeded or skipped run starts over. Runs
    that its failure blocked go back to waiting for it."""
    from django.core.cache import cache

    if run.status not in RERUNNABLE:
        raise RunError(f"a {run.status} run cannot be re-run; only {', '.join(sorted(RERUNNABLE))} runs can")
    resume = run.status in (RunStatus.FAILED, RunStatus.CANCELLED)
    with transaction.atomic():
        changes = dict(
            status=RunStatus.PENDING,
            first_attempt=run.attempts + 1,  # a new round: the retry limit counts from here
            cancel_requested=False,
            error="",
            traceback="",
            finished_at=None,
            duration=None,
            trigger=Trigger.RETRY,
            triggered_by=user,
            blocked_by=None,
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
        graph = Graph()
        advance(run, graph=graph)
        release_dependents(run, graph)
    run.refresh_from_db()
    return run


def release(run: JobRun, user=None) -> JobRun:
    """Queue a waiting or blocked run now, whatever its upstream runs say. What waits for
    it goes back from blocked to waiting for it."""
    with transaction.atomic():
        now = timezone.now()
        root_id = JobRun.objects.filter(pk=run.pk).values_list("blocked_by", flat=True).first()
        if not JobRun.objects.filter(pk=run.pk, status__in=[RunStatus.WAITING, RunStatus.BLOCKED]).update(
            status=RunStatus.QUEUED, queued_at=now, due_at=now, blocked_by=None
        ):
            run.refresh_from_db()
            raise RunError(f"only waiting or blocked runs can be released; this one is {run.status}")
        log(run, f"released by {user or 'an operator'} without its dependencies", level=Level.WARNING)
        send(run)
        run.refresh_from_db()
        release_dependents(run)
        if root_id:
            alerts.blocked_chain(JobRun.objects.select_related("job").get(pk=root_id))
    run.refresh_from_db()
    return run


# --- After a run finishes -------------------------------------------------------------------


def after_finish(run_id: int) -> None:
    """Dependents released or blocked (all the way down the chain), alerts raised or
    resolved. Runs after commit, so a failure here never undoes the run's own record."""
    run = JobRun.objects.select_related("job").filter(pk=run_id).first()
    if run is None or run.status not in FINISHED:
        return
    try:
        alerts.evaluate_finished(run)
        release_dependents(run)
    except Exception:
        logger.exception("follow-up of run %s failed", run_id)
