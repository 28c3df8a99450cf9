"""Beat's side of the job layer: which schedules are due, which of their slots to run
(the catch-up policy), and one batch of runs per tick.

Each job schedule carries ``next_fire_at``, indexed, so a tick is one query for what is
due however many schedules exist, plus set-based writes for what fires.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable

from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from config.companies import company_model
from scheduling import calendar, slots
from scheduling.choices import CatchUp, Cause, RunStatus, Scope, Trigger
from scheduling.models import JobDefinition, JobRun, JobSchedule
from scheduling.services import alerts, runs

logger = logging.getLogger(__name__)

FIRE_BATCH = 2000  # schedules handled per tick; more are picked up by the next, immediate, tick
ON_TIME_GRACE = datetime.timedelta(seconds=60)  # a slot fired later than this was missed
SCAN_LIMIT = 10_000  # missed slots looked at per schedule (an every-minute job down for a week)
MAX_SLEEP = 5.0
UPDATE_BATCH = 100
# Fires looked at for a collapsing timing when beat reads a changed schedule: its admin page
# and the API look at a hundred; beat, reading ten thousand at once, at two years of a monthly one.
COLLAPSE_FIRES = 25


def first_fire(schedule: JobSchedule, after: datetime.datetime) -> datetime.datetime | None:
    """The schedule's first fire after ``after`` (never before its start time), or None."""
    try:
        fires = schedule.next_fires(after, count=1)
    except ValueError as exc:
        logger.warning("schedule %s cannot fire: %s", schedule.pk, exc)
        return None
    return fires[0] if fires else None


def refresh_schedules(now: datetime.datetime | None = None, schedules=None) -> int:
    """Recompute ``next_fire_at`` of every schedule whose timing changed (an admin edit, a
    new holiday, re-enabling). Edited schedules start from now: old slots of a timing that
    did not exist then are not "missed"."""
    now = now or timezone.now()
    changed = []
    schedules = JobSchedule.objects.all() if schedules is None else schedules
    for schedule in schedules.with_timing().iterator(chunk_size=2000):
        fingerprint = schedule.current_fingerprint()
        if fingerprint == schedule.fingerprint:
            continue
        schedule.fingerprint = fingerprint
        schedule.next_fire_at = first_fire(schedule, now)
        schedule.active_since = now
        changed.append(schedule)
        # Its admin page refuses such a timing; an edit of the periodic task on its own is told here.
        problem = schedule.collapse_problem(fires=COLLAPSE_FIRES) if schedule.next_fire_at else ""
        if problem:
            alerts.raise_alert(
                schedule.job,
                Cause.SCHEDULE,
                f"schedule {schedule.pk} of {schedule.job.code} ({schedule.describe()}) {problem}",
                subject=f"schedule:{schedule.pk}",
            )
    JobSchedule.objects.bulk_update(changed, ["fingerprint", "next_fire_at", "active_since"], batch_size=UPDATE_BATCH)
    return len(changed)


def choose_slots(
    due: list[datetime.datetime], now: datetime.datetime, policy: str, window: int
) -> list[datetime.datetime]:
    """Which due slots to run. On time means within a minute; the rest were missed while
    no beat was running, and the job's catch-up policy decides."""
    if not due:
        return []
    on_time = [slot for slot in due if now - slot <= ON_TIME_GRACE]
    match policy:
        case CatchUp.SKIP:
            return on_time
        case CatchUp.LATEST:
            return [due[-1]]
        case _:
            horizon = max(datetime.timedelta(seconds=window), ON_TIME_GRACE)
            return [slot for slot in due if now - slot <= horizon]


def fire_due(now: datetime.datetime | None = None, *, limit: int = FIRE_BATCH) -> tuple[int, float]:
    """Fire every due schedule. Returns (runs queued, seconds until the next fire)."""
    now = now or timezone.now()
    due = list(
        JobSchedule.objects.with_timing().firing().filter(next_fire_at__lte=now).order_by("next_fire_at", "pk")[:limit]
    )
    queued = 0
    if due:
        with transaction.atomic():
            queued = _fire(due, now)
    if len(due) >= limit:
        return queued, 0.0
    upcoming = JobSchedule.objects.firing().aggregate(at=Min("next_fire_at"))["at"]
    wait = MAX_SLEEP if upcoming is None else max(0.0, (upcoming - timezone.now()).total_seconds())
    return queued, min(wait, MAX_SLEEP)


def _fire(due: list[JobSchedule], now: datetime.datetime) -> int:
    rows: list[JobRun] = []
    company_ids: list[int] | None = None
    tasks = []
    for schedule in due:
        definition, task = schedule.job, schedule.periodic_task
        try:
            trigger, rule = schedule.trigger(), schedule.calendar_rule()
            later = calendar.fire_times_between(trigger, schedule.next_fire_at, now, rule, limit=SCAN_LIMIT)
        except ValueError as exc:
            logger.error("schedule %s of %s cannot fire: %s", schedule.pk, definition.code, exc)
            schedule.next_fire_at = None
            continue
        slots_due = [schedule.next_fire_at, *later]
        if task.expires:
            slots_due = [slot for slot in slots_due if slot <= task.expires]
        chosen = choose_slots(slots_due, now, definition.catch_up, definition.catch_up_window)
        missed = [slot for slot in slots_due if slot not in chosen]
        if missed:
            alerts.raise_alert(
                definition,
                Cause.MISSED_RUN,
                f"{definition.code}: {len(missed)} slot(s) from {missed[0]:%Y-%m-%d %H:%M} to "
                f"{missed[-1]:%Y-%m-%d %H:%M} UTC were not run (no beat was firing; catch-up policy "
                f"{definition.get_catch_up_display()})",
            )
        tz = calendar.zone_name(trigger)
        if definition.scope != Scope.COMPANY:
            targets: list[int | None] = [None]
        elif schedule.company_id:
            targets = [schedule.company_id]
        else:
            if company_ids is None:  # read once per tick, and only when a company job fires for all
                company_ids = list(company_model().objects.order_by("pk").values_list("pk", flat=True))
            targets = company_ids
        for slot_at in chosen:
            slot = slots.slot_for(definition.key_by, slot_at, tz)
            deadlines = schedule.deadlines(slot_at)
            for company_id in targets:
                rows.append(_row(definition, slot, tz, company_id, schedule, deadlines))
        schedule.last_slot_at = slots_due[-1] if slots_due else schedule.last_slot_at
        schedule.next_fire_at = first_fire(schedule, now)
        if chosen:
            task.last_run_at = now
            task.total_run_count += len(chosen)
            tasks.append(task)
    # Small batches: bulk_update writes CASE WHEN per row, quadratic in the batch size.
    JobSchedule.objects.bulk_update(due, ["next_fire_at", "last_slot_at"], batch_size=UPDATE_BATCH)
    # bulk_update, not save(): saving a periodic task would tell every beat the schedule changed.
    PeriodicTask.objects.bulk_update(tasks, ["last_run_at", "total_run_count"], batch_size=UPDATE_BATCH)
    pending = runs.create_scheduled_runs(rows)
    return queue_batch(pending, {schedule.job_id: schedule.job for schedule in due})


def _row(
    definition: JobDefinition,
    slot: slots.Slot,
    tz: str,
    company_id: int | None,
    schedule: JobSchedule,
    deadlines: tuple[datetime.datetime | None, datetime.datetime | None],
) -> JobRun:
    return JobRun(
        job=definition,
        run_key=slot.key,
        company_id=company_id,
        business_date=slot.business_date,
        slot_at=slot.at,
        time_zone=tz,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.PENDING,
        schedule_id=schedule.pk,
        start_deadline_at=deadlines[0],
        end_deadline_at=deadlines[1],
    )


def queue_batch(pending: Iterable[tuple[int, int]], definitions: dict[int, JobDefinition]) -> int:
    """Queue pending runs, given as (id, job id): those of jobs without dependencies in one
    statement, the rest through their dependency check. Only runs this call moved out of
    pending are sent, so a second beat racing on the same slots sends nothing."""
    job_of = dict(pending)
    if not job_of:
        return 0
    graph = runs.Graph()  # one small query: the jobs that name a dependency
    free = [pk for pk, job_id in job_of.items() if not graph.held(definitions[job_id].code)]
    held = [pk for pk, job_id in job_of.items() if graph.held(definitions[job_id].code)]
    queued = runs.queue_pending(held, graph)
    now = timezone.now()
    table = connection.ops.quote_name(JobRun._meta.db_table)
    for start in range(0, len(free), 500):
        batch = free[start : start + 500]
        marks = ", ".join(["%s"] * len(batch))
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET status = %s, queued_at = %s WHERE id IN ({marks}) AND status = %s RETURNING id",
                [RunStatus.QUEUED, now, *batch, RunStatus.PENDING],
            )
            moved = [row[0] for row in cursor.fetchall()]
        for pk in moved:
            runs.send(JobRun(pk=pk, job=definitions[job_of[pk]]))
        queued += len(moved)
    return queued
