"""Backfill: the runs a job's schedule would have made over a past range, made now.

Every slot of the job's schedules between two dates (in each schedule's zone) that has no
run gets one, triggered ``backfill``. Per company the runs go one after another in slot
order: each waits for the one before it (``JobRun.after_run``) as well as for its own
dependencies, so a job that allows one run at a time is never skipped by its own backfill,
and last January's invoices are numbered before February's. A slot whose run failed
blocks the slots after it, with one alert; re-running it lets the rest go on.

A slot that succeeded is never touched. One that failed, was cancelled or was skipped is
re-run only when asked (``rerun_failed``); one that is still on its way is left to finish.
A backfill's runs notify nobody unless the job declares ``backfill_notifies``: their
notifications are recorded as suppressed. A backfill over ``JOB_BACKFILL_MAX_RUNS`` runs is
refused unless forced. The command (``manage.py backfill``), the API and the admin action
all come here.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from config.companies import company_model
from scheduling import calendar, slots
from scheduling.choices import ACTIVE, RunStatus, Scope, Trigger
from scheduling.models import JobDefinition, JobRun, JobSchedule
from scheduling.registry import ParamError
from scheduling.services import runs

RERUNNABLE_SLOT = frozenset({RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.SKIPPED})
SCAN_LIMIT = 100_000  # fires looked at per schedule: an every-minute job over two months


class BackfillError(ValueError):
    """A backfill that cannot be made as asked; the message says why and what to do."""


class Action:
    CREATE = "create"
    RERUN = "rerun"
    SUCCEEDED = "succeeded"  # never touched
    FAILED = "failed"  # left as it is: re-run only when asked
    ACTIVE = "active"  # on its way: left to finish


@dataclass
class Slot:
    at: datetime.datetime
    key: str
    business_date: datetime.date
    company_id: int | None
    schedule: JobSchedule | None
    zone: str
    existing: JobRun | None = None
    action: str = Action.CREATE
    run: JobRun | None = None  # the run made or re-run for it

    def describe(self) -> str:
        return f"{self.key}" + (f" (company {self.company_id})" if self.company_id else "")


@dataclass
class Backfill:
    definition: JobDefinition
    first: datetime.date
    last: datetime.date
    slots: list[Slot] = field(default_factory=list)
    dry_run: bool = False

    def counted(self, action: str) -> int:
        return sum(1 for slot in self.slots if slot.action == action)

    @property
    def to_run(self) -> list[Slot]:
        return [slot for slot in self.slots if slot.action in (Action.CREATE, Action.RERUN)]

    @property
    def runs(self) -> list[JobRun]:
        return [slot.run for slot in self.to_run if slot.run is not None]

    def summary(self) -> str:
        verb = "would create" if self.dry_run else "created"
        again = "would re-run" if self.dry_run else "re-ran"
        return (
            f"{self.definition.code} {self.first} to {self.last}: {verb} {self.counted(Action.CREATE)} run(s), "
            f"{again} {self.counted(Action.RERUN)} failed, left {self.counted(Action.SUCCEEDED)} succeeded, "
            f"{self.counted(Action.FAILED)} failed and {self.counted(Action.ACTIVE)} on their way"
        )


def backfill(
    definition: JobDefinition,
    first: datetime.date,
    last: datetime.date,
    *,
    company=None,
    params: dict | None = None,
    rerun_failed: bool = False,
    dry_run: bool = False,
    force: bool = False,
    user=None,
) -> Backfill:
    """Plan the range's slots and, unless ``dry_run``, make their runs (one transaction)."""
    plan = plan_backfill(definition, first, last, company=company, rerun_failed=rerun_failed)
    plan.dry_run = dry_run
    limit = settings.JOB_BACKFILL_MAX_RUNS
    if len(plan.to_run) > limit and not force:
        raise BackfillError(
            f"{len(plan.to_run)} runs is more than JOB_BACKFILL_MAX_RUNS ({limit}); narrow the range, or force it"
        )
    spec = definition.spec
    if spec is None:
        raise BackfillError(f"{definition.code} is not declared by any installed app's jobs.py")
    spec.params.clean(params, definition.default_params)  # every bad parameter named before anything is made
    if dry_run:
        return plan
    with transaction.atomic():
        previous: dict[int | None, JobRun] = {}
        for slot in plan.to_run:
            after = previous.get(slot.company_id)
            slot.run = _make(definition, slot, params, after, user)
            previous[slot.company_id] = slot.run
    return plan


def _make(definition: JobDefinition, slot: Slot, params: dict | None, after: JobRun | None, user) -> JobRun:
    if slot.action == Action.RERUN:
        JobRun.objects.filter(pk=slot.existing.pk).update(after_run=after, notify=definition.backfill_notifies)
        slot.existing.refresh_from_db()
        return runs.rerun(slot.existing, user=user)
    company = company_model().objects.get(pk=slot.company_id) if slot.company_id else None
    run, created = runs.request_run(
        definition,
        company=company,
        params=params,
        trigger=Trigger.BACKFILL,
        user=user,
        slot_at=slot.at,
        time_zone=slot.zone,
        schedule=slot.schedule,
        after_run=after,
        notify=definition.backfill_notifies,
    )
    if not created:  # made meanwhile (beat, a second backfill): it stands for the slot
        slot.action = Action.ACTIVE
    return run


def plan_backfill(
    definition: JobDefinition,
    first: datetime.date,
    last: datetime.date,
    *,
    company=None,
    rerun_failed: bool = False,
) -> Backfill:
    """The range's slots, each with what a backfill would do with it, in slot order."""
    if last < first:
        raise BackfillError(f"--to {last} is before --from {first}")
    if definition.scope == Scope.GLOBAL and company is not None:
        raise ParamError({"company": f"{definition.code} runs for the whole platform, not per company"})
    plan = Backfill(definition, first, last)
    seen: set[tuple[str, int | None]] = set()
    for schedule, trigger, rule in _timings(definition, company):
        zone = calendar.zone_name(trigger)
        start = slots.start_of_day(first, zone) - datetime.timedelta(microseconds=1)
        end = slots.start_of_day(last + datetime.timedelta(days=1), zone) - datetime.timedelta(microseconds=1)
        fires = calendar.fire_times_between(trigger, start, end, rule, limit=SCAN_LIMIT)
        for company_id in _targets(definition, schedule, company):
            for at in fires:
                slot = slots.slot_for(definition.key_by, at, zone)
                if (slot.key, company_id) in seen:
                    continue  # two schedules (or two fires) in one slot: its run is one
                seen.add((slot.key, company_id))
                plan.slots.append(Slot(at, slot.key, slot.business_date, company_id, schedule, zone))
    plan.slots.sort(key=lambda slot: (slot.at, slot.company_id or 0))
    _judge(plan, rerun_failed)
    return plan


def _timings(definition: JobDefinition, company) -> Iterable[tuple[JobSchedule | None, object, object]]:
    """The job's schedules (their timing and calendar rule), or its declared timing if it has none."""
    schedules = list(definition.schedules.with_timing().filter(periodic_task__enabled=True))
    if company is not None:
        schedules = [s for s in schedules if s.company_id in (None, company.pk)]
    if schedules:
        for schedule in schedules:
            try:
                yield schedule, schedule.trigger(), schedule.calendar_rule()
            except ValueError as exc:
                raise BackfillError(f"schedule {schedule.pk} of {definition.code} cannot fire: {exc}") from exc
        return
    spec = definition.spec
    if spec is None or spec.schedule is None:
        raise BackfillError(f"{definition.code} has no enabled schedule whose slots could be backfilled")
    yield None, spec.schedule, spec.rule


def _targets(definition: JobDefinition, schedule: JobSchedule | None, company) -> list[int | None]:
    if definition.scope != Scope.COMPANY:
        return [None]
    if company is not None:
        return [company.pk]
    if schedule is not None and schedule.company_id:
        return [schedule.company_id]
    return list(company_model().objects.order_by("pk").values_list("pk", flat=True))


def _judge(plan: Backfill, rerun_failed: bool) -> None:
    keys = {slot.key for slot in plan.slots}
    existing = {
        (run.run_key, run.company_id): run for run in JobRun.objects.filter(job=plan.definition, run_key__in=keys)
    }
    for slot in plan.slots:
        slot.existing = existing.get((slot.key, slot.company_id))
        if slot.existing is None:
            slot.action = Action.CREATE
        elif slot.existing.status == RunStatus.SUCCEEDED:
            slot.action = Action.SUCCEEDED
        elif slot.existing.status in RERUNNABLE_SLOT:
            slot.action = Action.RERUN if rerun_failed else Action.FAILED
        elif slot.existing.status in ACTIVE:
            slot.action = Action.ACTIVE


def parse_range(first: str, last: str) -> tuple[datetime.date, datetime.date]:
    """``--from`` and ``--to`` as dates, with one readable error."""
    try:
        dates = datetime.date.fromisoformat(first.strip()), datetime.date.fromisoformat(last.strip())
    except ValueError:
        raise BackfillError(f"--from {first!r} and --to {last!r} must be dates, YYYY-MM-DD") from None
    return dates
