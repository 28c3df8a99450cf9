"""Making and changing a job's schedule from its parts: a timing (a crontab in a timezone,
an interval, or one moment), the calendar rule and deadlines. The API comes here; the
timing is kept in django-celery-beat's tables, as the admin keeps it.

A schedule is checked whole before anything is saved (``JobSchedule.clean``: a rule needs a
crontab, deadlines give an offset or a time of day, a timing that fires twice in one of its
job's run keys is refused), and beat learns of the change at once.
"""

from __future__ import annotations

import datetime
import json
import uuid
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, PeriodicTasks

from scheduling import calendar
from scheduling.models import JobDefinition, JobSchedule
from scheduling.services import firing

FIRE_TASK = "scheduling.fire_job"
SCHEDULE_FIELDS = (
    "company",
    "rule",
    "rule_n",
    "rule_month",
    "shift",
    "business_calendar",
    "start_within",
    "start_by",
    "end_within",
    "end_by",
)


@dataclass(frozen=True)
class Timing:
    """Exactly one of: ``cron`` (celery crontab fields and a timezone), ``every`` seconds, or ``once_at``."""

    cron: calendar.Cron | None = None
    every: int | None = None
    once_at: datetime.datetime | None = None

    @classmethod
    def declared(cls, timing: calendar.Cron | calendar.Every) -> Timing:
        """A job's declared timing (``@job(schedule=…)``)."""
        return cls(cron=timing) if isinstance(timing, calendar.Cron) else cls(every=timing.seconds)

    def check(self) -> None:
        given = [part for part in (self.cron, self.every, self.once_at) if part is not None]
        if len(given) != 1:
            raise ValidationError({"timing": "give exactly one of cron, every_seconds or once_at"})
        if self.every is not None and self.every < 1:
            raise ValidationError({"timing": "every_seconds must be a positive whole number"})


@transaction.atomic
def save_schedule(
    definition: JobDefinition,
    *,
    timing: Timing | None,
    enabled: bool | None = None,
    schedule: JobSchedule | None = None,
    **fields,
) -> JobSchedule:
    """A new schedule for ``definition``, or ``schedule`` changed: the timing (if given),
    enabled, and any of SCHEDULE_FIELDS. Raises ValidationError naming each bad field."""
    unknown = set(fields) - set(SCHEDULE_FIELDS)
    if unknown:
        raise ValueError(f"not schedule fields: {sorted(unknown)}")
    if schedule is None:
        if timing is None:
            raise ValidationError({"timing": "a new schedule needs a timing"})
        task = new_task(definition, f"{definition.code} ({uuid.uuid4().hex[:8]})")
        schedule = JobSchedule(job=definition)
    else:
        task = schedule.periodic_task
    if timing is not None:
        timing.check()
        apply_timing(task, timing)
    if enabled is not None:
        task.enabled = enabled
    for name, value in fields.items():
        setattr(schedule, name, value)
    task.full_clean(exclude=["crontab", "interval", "clocked", "solar"])
    task.save()
    schedule.periodic_task = task
    schedule.full_clean(exclude=["job", "periodic_task"])
    schedule.save()
    PeriodicTasks.update_changed()  # beat recomputes; next_fire_at is right at once too
    firing.refresh_schedules(schedules=JobSchedule.objects.filter(pk=schedule.pk))
    schedule.refresh_from_db()
    return schedule


def new_task(definition: JobDefinition, name: str) -> PeriodicTask:
    """The periodic task that holds a job schedule's timing, not yet saved."""
    return PeriodicTask(
        name=name,
        task=FIRE_TASK,
        kwargs=json.dumps({"job": definition.code}),
        description=f"{definition.title}. Timing for the job layer; beat fires it as keyed runs.",
    )


def apply_timing(task: PeriodicTask, timing: Timing) -> None:
    """Point ``task`` at the timing's crontab, interval or clocked time (shared rows, as
    django-celery-beat keeps them), dropping the one it had."""
    task.crontab = task.interval = task.clocked = None
    task.one_off = False
    if timing.cron is not None:
        cron = timing.cron
        task.crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=cron.minute,
            hour=cron.hour,
            day_of_week=cron.day_of_week,
            day_of_month=cron.day_of_month,
            month_of_year=cron.month_of_year,
            timezone=cron.timezone,
        )
    elif timing.every is not None:
        task.interval, _ = IntervalSchedule.objects.get_or_create(every=timing.every, period=IntervalSchedule.SECONDS)
    else:
        task.clocked, _ = ClockedSchedule.objects.get_or_create(clocked_time=timing.once_at)
        task.one_off = True


@transaction.atomic
def delete_schedule(schedule: JobSchedule) -> None:
    """The schedule and its timing: beat stops firing it at once."""
    task = schedule.periodic_task
    schedule.delete()
    task.delete()
    PeriodicTasks.update_changed()
