"""The job layer's tables: definitions, schedules and calendars, runs, chunks, logs, alerts."""

from __future__ import annotations

import datetime
import functools
import hashlib
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from scheduling import calendar, slots
from scheduling.choices import (
    ACTIVE,
    FINISHED,
    AttemptStatus,
    CatchUp,
    Cause,
    KeyBy,
    Level,
    Offset,
    Overlap,
    RuleKind,
    RunStatus,
    Scope,
    Severity,
    Shift,
    Trigger,
)
from scheduling.registry import ParamError

COMPANY_MODEL = settings.SCHEDULING_COMPANY_MODEL
COLLAPSE_FIRES = 100  # fires a schedule is looked at for two in one run key: a monthly one's eight years


class BeatHeartbeat(models.Model):
    """The last tick of each beat process, so health checks can tell a stalled scheduler."""

    hostname = models.CharField(max_length=255, unique=True, help_text="host:pid of the beat process")
    started_at = models.DateTimeField()
    last_tick_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-last_tick_at"]

    def __str__(self) -> str:
        return f"{self.hostname} @ {self.last_tick_at:%Y-%m-%d %H:%M:%S}"


class BeatLease(models.Model):
    """Which beat process fires job schedules. The holder renews it; others wait for it to lapse."""

    BEAT = "beat"  # the one lease beat processes compete for

    name = models.CharField(max_length=50, unique=True)
    holder = models.CharField(max_length=255)
    acquired_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name}: {self.holder} until {self.expires_at:%H:%M:%S}"

    @classmethod
    def live(cls, now: datetime.datetime | None = None) -> BeatLease | None:
        """The beat lease if some beat holds it now, else None."""
        return cls.objects.filter(name=cls.BEAT, expires_at__gt=now or timezone.now()).first()


class JobDefinitionQuerySet(models.QuerySet):
    def registered(self) -> JobDefinitionQuerySet:
        return self.filter(registered=True)


class JobDefinition(models.Model):
    """A job as the database knows it: the code's declaration, as edited by admins."""

    # Fields that sync_jobs copies from the declaration, unless an admin has changed them.
    DECLARED_FIELDS = (
        "title",
        "description",
        "queue",
        "priority",
        "default_params",
        "max_retries",
        "backoff_base",
        "backoff_cap",
        "time_limit",
        "overlap",
        "max_concurrent",
        "runtime_threshold",
        "failure_alert_after",
        "depends_on",
        "before",
        "backfill_notifies",
        "catch_up",
        "catch_up_window",
        "key_by",
        "scope",
    )

    code = models.CharField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True, help_text="A disabled job is not fired by its schedules.")
    registered = models.BooleanField(default=True, editable=False, help_text="The code still declares this job.")
    queue = models.CharField(max_length=50, default="default")
    priority = models.PositiveSmallIntegerField(
        default=5,
        validators=[MaxValueValidator(9)],
        help_text="0 to 9, 9 the most urgent (5 normal): a queued run of higher priority starts first",
    )
    default_params = models.JSONField(default=dict, blank=True, help_text="Overrides of the declared defaults.")
    max_retries = models.PositiveSmallIntegerField(default=3)
    backoff_base = models.PositiveIntegerField(default=30, help_text="seconds before the first retry")
    backoff_cap = models.PositiveIntegerField(default=3600, help_text="longest wait between retries, seconds")
    time_limit = models.PositiveIntegerField(default=3300, validators=[MinValueValidator(1)], help_text="seconds")
    overlap = models.CharField(max_length=10, choices=Overlap.choices, default=Overlap.SKIP)
    max_concurrent = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1)], help_text="runs at once (per company, for a per-company job)"
    )
    runtime_threshold = models.PositiveIntegerField(
        null=True, blank=True, help_text="seconds; a slower run raises an alert"
    )
    failure_alert_after = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(1)], help_text="consecutive failures that raise an alert"
    )
    depends_on = models.JSONField(
        default=list, blank=True, help_text='Upstream jobs: [{"job": "GL_DAILY_CLOSE", "offset": "same|previous"}]'
    )
    before = models.JSONField(
        default=list,
        blank=True,
        help_text='Jobs whose run of the same period waits for this one: [{"job": "GL_PERIOD_CLOSE"}]',
    )
    backfill_notifies = models.BooleanField(
        default=False, help_text="A backfilled run may notify people (off: its notifications are not sent)."
    )
    catch_up = models.CharField(max_length=10, choices=CatchUp.choices, default=CatchUp.LATEST)
    catch_up_window = models.PositiveIntegerField(default=86400, help_text="seconds back that catch-up looks")
    key_by = models.CharField(max_length=10, choices=KeyBy.choices, default=KeyBy.DAY)
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.GLOBAL)
    declared = models.JSONField(default=dict, editable=False, help_text="The declaration at the last sync.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = JobDefinitionQuerySet.as_manager()

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code

    @property
    def spec(self):
        from scheduling import registry

        return registry.get(self.code)

    def clean(self) -> None:
        errors = {}
        if self.queue not in settings.QUEUES:
            errors["queue"] = f"choose from {', '.join(settings.QUEUES)}"
        if self.backoff_cap < self.backoff_base:
            errors["backoff_cap"] = "must be at least the backoff base"
        if self.time_limit >= settings.CELERY_TASK_TIME_LIMIT:
            errors["time_limit"] = f"must be below the worker's hard limit ({settings.CELERY_TASK_TIME_LIMIT}s)"
        spec = self.spec
        if spec is not None:
            try:
                spec.params.clean({}, self.default_params)
            except ParamError as exc:
                errors["default_params"] = str(exc)
        for name in ("depends_on", "before"):
            try:
                _read_dependencies(self.code, getattr(self, name))
            except ValueError as exc:
                errors[name] = str(exc)
        if self.pk and "key_by" not in errors:
            for schedule in self.schedules.with_timing():
                schedule.job = self  # judged by the key this edit would give
                problem = schedule.collapse_problem()
                if problem:
                    errors["key_by"] = problem
                    break
        if errors:
            raise ValidationError(errors)

    def dependencies(self) -> list[tuple[str, Offset]]:
        """``depends_on`` read back, raising ValueError on a malformed entry. The jobs that
        name this one in their ``before`` are upstream too: ``runs.upstream_runs`` adds them."""
        return _read_dependencies(self.code, self.depends_on)

    def before_jobs(self) -> list[tuple[str, Offset]]:
        """``before`` read back: the jobs whose runs wait for this job's run of their period."""
        return _read_dependencies(self.code, self.before)


def _read_dependencies(code: str, entries) -> list[tuple[str, Offset]]:
    result = []
    if not isinstance(entries, list):
        raise ValueError("must be a list")
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("job"), str):
            raise ValueError('each entry needs "job"')
        offset = entry.get("offset", Offset.SAME)
        if offset not in Offset.values:
            raise ValueError(f"offset must be one of {', '.join(Offset.values)}")
        if entry["job"] == code:
            raise ValueError("a job cannot depend on itself")
        result.append((entry["job"], Offset(offset)))
    return result


class BusinessCalendar(models.Model):
    """Working days: which weekdays are the weekend, and which dates are holidays."""

    name = models.CharField(max_length=100, unique=True)
    weekend = models.JSONField(default=list, help_text="weekday numbers, Monday = 0; [5, 6] is Saturday and Sunday")
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not isinstance(self.weekend, list) or any(day not in range(7) for day in self.weekend):
            raise ValidationError({"weekend": "a list of weekday numbers 0 (Monday) to 6 (Sunday)"})
        if len(set(self.weekend)) == 7:
            raise ValidationError({"weekend": "at least one day of the week must be a working day"})

    def as_working_days(self) -> calendar.WorkingDays:
        holidays = frozenset(holiday.date for holiday in self.holidays.all())  # prefetched by beat
        return calendar.WorkingDays(weekend=frozenset(self.weekend), holidays=holidays)


class Holiday(models.Model):
    calendar = models.ForeignKey(BusinessCalendar, on_delete=models.CASCADE, related_name="holidays")
    date = models.DateField()
    name = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["date"]
        constraints = [models.UniqueConstraint(fields=["calendar", "date"], name="holiday_once_per_calendar")]

    def __str__(self) -> str:
        return f"{self.date} {self.name}".strip()


class JobScheduleQuerySet(models.QuerySet):
    def with_timing(self) -> JobScheduleQuerySet:
        """With everything fire times are computed from, so a loop over schedules queries nothing."""
        return self.select_related(
            "job",
            "periodic_task__crontab",
            "periodic_task__interval",
            "periodic_task__clocked",
            "business_calendar",
        ).prefetch_related(
            models.Prefetch("business_calendar__holidays", queryset=Holiday.objects.only("calendar_id", "date"))
        )

    def firing(self) -> JobScheduleQuerySet:
        """Schedules beat should fire: enabled task, enabled and registered job."""
        return self.filter(
            periodic_task__enabled=True, job__enabled=True, job__registered=True, next_fire_at__isnull=False
        )


class JobSchedule(models.Model):
    """When a job fires: a django-celery-beat periodic task (crontab, interval or clocked,
    edited in its admin) plus what crontab cannot say, a calendar rule."""

    job = models.ForeignKey(JobDefinition, on_delete=models.CASCADE, related_name="schedules")
    periodic_task = models.OneToOneField(PeriodicTask, on_delete=models.CASCADE, related_name="job_schedule")
    company = models.ForeignKey(
        COMPANY_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Fire for this company only; empty fires a company job for every company.",
    )
    rule = models.CharField(max_length=30, choices=RuleKind.choices, blank=True, help_text="optional calendar rule")
    rule_n = models.PositiveSmallIntegerField(null=True, blank=True, help_text="n for day n / n-th working day")
    rule_month = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(12)], help_text="year end month"
    )
    shift = models.CharField(max_length=10, choices=Shift.choices, default=Shift.NONE)
    business_calendar = models.ForeignKey(BusinessCalendar, null=True, blank=True, on_delete=models.PROTECT)
    start_within = models.DurationField(
        null=True, blank=True, help_text="deadline: the run must start within this long of its slot (HH:MM:SS)"
    )
    start_by = models.TimeField(
        null=True, blank=True, help_text="deadline: the run must start by this time of day (the schedule's zone)"
    )
    end_within = models.DurationField(
        null=True, blank=True, help_text="deadline: the run must end within this long of its slot (HH:MM:SS)"
    )
    end_by = models.TimeField(
        null=True, blank=True, help_text="deadline: the run must end by this time of day (the schedule's zone)"
    )
    next_fire_at = models.DateTimeField(null=True, blank=True, db_index=True, editable=False)
    last_slot_at = models.DateTimeField(null=True, blank=True, editable=False)
    fingerprint = models.CharField(max_length=500, blank=True, editable=False)
    active_since = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="since when the current timing holds (missed-run checks)"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = JobScheduleQuerySet.as_manager()

    class Meta:
        ordering = ["job__code", "pk"]

    def __str__(self) -> str:
        return f"{self.job.code}: {self.describe()}"

    def clean(self) -> None:
        errors = {}
        for within, by in (("start_within", "start_by"), ("end_within", "end_by")):
            if getattr(self, within) is not None and getattr(self, by) is not None:
                errors[by] = f"give {within.replace('_', ' ')} or {by.replace('_', ' ')}, not both"
            if getattr(self, within) is not None and getattr(self, within) <= datetime.timedelta(0):
                errors[within] = "must be positive"
        if self.periodic_task_id:  # without one, the form reports the missing periodic task itself
            try:
                self.calendar_rule()
            except ValueError as exc:
                errors["rule"] = str(exc)
            else:
                problem = self.collapse_problem() if self.job_id else ""
                if problem:
                    errors["periodic_task"] = problem
        if errors:
            raise ValidationError(errors)

    def collapse_problem(self, fires: int = COLLAPSE_FIRES) -> str:
        """Why this schedule would do less than it says, or "": a schedule that fires twice
        within one of its job's run keys (every minute for a job keyed by business date)
        makes one run where its preview promises many, since a slot runs once.

        Refused rather than previewed as collapsed: an operator who asks for a run a minute
        and gets one a day learns it from a missing report, not from the preview."""
        try:
            upcoming = self.next_fires(count=fires)
            zone = calendar.zone_name(self.trigger())
        except ValueError:
            return ""  # an unusable timing is reported by the rule's and the task's own checks
        seen: dict[str, datetime.datetime] = {}
        for fire in upcoming:
            key = slots.slot_for(self.job.key_by, fire, zone).key
            if key in seen:
                return (
                    f"fires at {seen[key]:%Y-%m-%d %H:%M} and {fire:%Y-%m-%d %H:%M} UTC, both in {self.job.code}'s "
                    f"run key {key} (one run per {self.job.get_key_by_display()}): the second fire would make no "
                    f"run. Fire at most once per {self.job.get_key_by_display()}, or change the job's run key."
                )
            seen[key] = fire
        return ""

    def deadlines(self, slot_at: datetime.datetime) -> tuple[datetime.datetime | None, datetime.datetime | None]:
        """When a run of the slot at ``slot_at`` must have started, and ended, if this
        schedule sets deadlines. A time of day is the first such time at or after the slot
        in the schedule's zone (a 23:00 slot due to end by 06:00 ends by 06:00 next day)."""
        try:
            zone = ZoneInfo(calendar.zone_name(self.trigger()))
        except ValueError:
            zone = ZoneInfo("UTC")
        return (
            _deadline(slot_at, self.start_within, self.start_by, zone),
            _deadline(slot_at, self.end_within, self.end_by, zone),
        )

    def trigger(self) -> calendar.Cron | calendar.Every | calendar.Once:
        """The periodic task's schedule as the calendar module reads it; ValueError if unusable."""
        task = self.periodic_task
        if task.crontab_id:
            c = task.crontab
            return _cron(c.minute, c.hour, c.day_of_week, c.day_of_month, c.month_of_year, str(c.timezone))
        if task.interval_id:
            seconds = int(datetime.timedelta(**{task.interval.period: task.interval.every}).total_seconds())
            return calendar.Every(seconds=seconds, anchor=task.start_time)
        if task.clocked_id:
            return calendar.Once(at=task.clocked.clocked_time)
        raise ValueError("a job schedule needs a crontab, an interval or a clocked time (solar is not supported)")

    def calendar_rule(self) -> calendar.CalendarRule | None:
        if not self.rule:
            return None
        if not self.periodic_task.crontab_id:
            raise ValueError("a calendar rule needs a crontab schedule for its time of day")
        working = self.business_calendar.as_working_days() if self.business_calendar_id else calendar.WorkingDays()
        return calendar.CalendarRule(
            kind=calendar.RuleKind(self.rule),
            n=self.rule_n,
            month=self.rule_month,
            shift=calendar.Shift(self.shift),
            calendar=working,
        )

    def current_fingerprint(self) -> str:
        """Everything a fire time depends on, so an edit anywhere shows as a change."""
        task = self.periodic_task
        holidays = ""
        if self.business_calendar_id:
            holidays = ",".join(sorted(str(holiday.date) for holiday in self.business_calendar.holidays.all()))
            holidays = f"{self.business_calendar.weekend}|{holidays}"
        parts = [
            str(task.crontab_id and task.crontab),
            str(task.crontab_id and task.crontab.timezone),
            str(task.interval_id and task.interval),
            str(task.clocked_id and task.clocked.clocked_time),
            str(task.start_time),
            str(task.enabled),
            f"{self.rule}|{self.rule_n}|{self.rule_month}|{self.shift}",
        ]
        digest = hashlib.sha256(holidays.encode()).hexdigest()[:16]  # stable across processes, unlike hash()
        return "|".join([*parts, digest])[:500]

    def next_fires(self, after: datetime.datetime | None = None, count: int = 10) -> list[datetime.datetime]:
        after = after or timezone.now()
        start = self.periodic_task.start_time
        if start and start > after:
            after = start - datetime.timedelta(microseconds=1)  # nothing fires before the start time
        fires = calendar.next_fire_times(self.trigger(), after, count=count, rule=self.calendar_rule())
        expires = self.periodic_task.expires
        return [fire for fire in fires if expires is None or fire <= expires]

    def describe(self) -> str:
        task = self.periodic_task
        what = str(task.crontab or task.interval or task.clocked or "no schedule")
        if self.rule:
            what += f", {self.get_rule_display()}"
            if self.rule_n:
                what += f" (n={self.rule_n})"
            if self.shift != Shift.NONE:
                what += f", {self.get_shift_display()}"
        return what


def _deadline(slot_at, within, by, zone: ZoneInfo) -> datetime.datetime | None:
    if within is not None:
        return slot_at + within
    if by is None:
        return None
    local = slot_at.astimezone(zone)
    at = datetime.datetime.combine(local.date(), by, tzinfo=zone)
    if at < local:
        at = datetime.datetime.combine(local.date() + datetime.timedelta(days=1), by, tzinfo=zone)
    return at.astimezone(datetime.UTC)


@functools.lru_cache(maxsize=4096)
def _cron(minute: str, hour: str, day_of_week: str, day_of_month: str, month_of_year: str, tz: str) -> calendar.Cron:
    """Crontabs are shared by many schedules and parsing one is not free: parse each once."""
    return calendar.Cron(
        minute=minute,
        hour=hour,
        day_of_week=day_of_week,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        timezone=tz,
    )


class JobRunQuerySet(models.QuerySet):
    def active(self) -> JobRunQuerySet:
        """Runs that have not finished: the ones an operator can still cancel."""
        return self.filter(status__in=ACTIVE)


class JobRun(models.Model):
    """One execution of a job for one slot: unique per (job, run_key[, company])."""

    job = models.ForeignKey(JobDefinition, on_delete=models.PROTECT, related_name="runs")
    run_key = models.CharField(max_length=40, help_text="the slot: business date, period or minute")
    company = models.ForeignKey(COMPANY_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    business_date = models.DateField()
    slot_at = models.DateTimeField(help_text="the instant the slot stands for")
    time_zone = models.CharField(max_length=64, default="UTC", help_text="the zone business dates are read in")
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.PENDING)
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True, help_text="seconds")
    progress_done = models.PositiveBigIntegerField(default=0)
    progress_total = models.PositiveBigIntegerField(null=True, blank=True)
    processed = models.PositiveBigIntegerField(default=0)
    created = models.PositiveBigIntegerField(default=0)
    skipped = models.PositiveBigIntegerField(default=0)
    failed = models.PositiveBigIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(null=True, blank=True)
    chunks_done = models.PositiveIntegerField(default=0)
    body_finished_at = models.DateTimeField(
        null=True, blank=True, help_text="when the job function returned; its chunks may still be running"
    )
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    worker = models.CharField(max_length=255, blank=True)
    task_id = models.CharField(max_length=255, blank=True, db_index=True)
    cancel_requested = models.BooleanField(default=False)
    first_attempt = models.PositiveIntegerField(
        default=1, help_text="the number of this round's first attempt: a re-run starts a new round of retries"
    )
    schedule = models.ForeignKey(
        "JobSchedule", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs", help_text="what fired it"
    )
    start_deadline_at = models.DateTimeField(null=True, blank=True, help_text="must have started by (its schedule's)")
    end_deadline_at = models.DateTimeField(null=True, blank=True, help_text="must have ended by (its schedule's)")
    blocked_by = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="the run that did not succeed and holds this one back (the root of the chain)",
    )
    after_run = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="a run that must finish first: the slot before this one in a backfill",
    )
    due_at = models.DateTimeField(
        null=True, blank=True, help_text="when its message is due at a worker (after a retry's or a requeue's delay)"
    )
    progress_at = models.DateTimeField(null=True, blank=True, help_text="when it last moved: started, a chunk done")
    notify = models.BooleanField(
        default=True,
        help_text="its notifications reach people; off for a backfilled slot of a job that does not notify on backfill",
    )

    objects = JobRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "run_key"], condition=Q(company__isnull=True), name="jobrun_once_per_slot"
            ),
            models.UniqueConstraint(
                fields=["job", "run_key", "company"],
                condition=Q(company__isnull=False),
                name="jobrun_once_per_slot_and_company",
            ),
        ]
        indexes = [
            models.Index(fields=["job", "-created_at"], name="jobrun_job_recent"),
            models.Index(fields=["status", "job"], name="jobrun_status"),
            models.Index(fields=["-created_at"], name="jobrun_recent"),
        ]

    def __str__(self) -> str:
        suffix = f" ({self.company_id})" if self.company_id else ""
        return f"{self.job.code} {self.run_key}{suffix}"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def tries(self) -> int:
        """Attempts in this round: what the job's retry limit counts (a re-run starts over)."""
        return max(self.attempts - self.first_attempt + 1, 0)


class JobAttempt(models.Model):
    """One execution of a run: its own start, end, outcome and log lines. A retry and a
    re-run each add one; the run's own fields show the latest."""

    run = models.ForeignKey(JobRun, on_delete=models.CASCADE, related_name="attempt_history")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=AttemptStatus.choices, default=AttemptStatus.RUNNING)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, help_text="what asked for it")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True, help_text="seconds")
    worker = models.CharField(max_length=255, blank=True)
    task_id = models.CharField(max_length=255, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="jobattempt_once_per_number")]

    def __str__(self) -> str:
        return f"{self.run_id} attempt {self.number} {self.status}"


class ChunkStatus(models.TextChoices):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class JobChunk(models.Model):
    """One piece of a fanned-out run. Marked done in the transaction that does its work (after
    it, for a job whose chunks are not atomic)."""

    run = models.ForeignKey(JobRun, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=ChunkStatus.choices, default=ChunkStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(
        null=True, blank=True, help_text="when a worker last began it: a chunk begun and not done is in flight"
    )
    worker = models.CharField(max_length=255, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="jobchunk_once_per_run")]

    def __str__(self) -> str:
        return f"{self.run_id}#{self.index} {self.status}"


class JobLog(models.Model):
    run = models.ForeignKey(JobRun, on_delete=models.CASCADE, related_name="logs")
    attempt = models.PositiveIntegerField(default=1)
    at = models.DateTimeField(default=timezone.now)
    level = models.PositiveSmallIntegerField(choices=Level.choices, default=Level.INFO)
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["run", "pk"]
        indexes = [
            models.Index(fields=["at"], name="joblog_at"),
            models.Index(fields=["level", "at"], name="joblog_level_at"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.get_level_display()} {self.message[:80]}"


class JobAlertQuerySet(models.QuerySet):
    def open(self) -> JobAlertQuerySet:
        return self.filter(acknowledged_at__isnull=True, resolved_at__isnull=True)


class JobAlert(models.Model):
    """Something an operator should look at. One open alert per (job, cause, subject): no
    storms. The subject is the company for a per-company job's failures, the root run for
    a blocked chain, the late or stalled run; empty for what concerns the whole job."""

    job = models.ForeignKey(JobDefinition, on_delete=models.CASCADE, related_name="alerts")
    run = models.ForeignKey(JobRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    company = models.ForeignKey(COMPANY_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    subject = models.CharField(
        max_length=60, blank=True, help_text="what this alert is about, within its job and cause"
    )
    cause = models.CharField(max_length=30, choices=Cause.choices)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    message = models.TextField()
    occurrences = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    notified_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    objects = JobAlertQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "cause", "subject"],
                condition=Q(acknowledged_at__isnull=True, resolved_at__isnull=True),
                name="jobalert_one_open_per_subject",
            )
        ]

    def __str__(self) -> str:
        about = f" ({self.subject})" if self.subject else ""
        return f"[{self.severity}] {self.job.code}: {self.get_cause_display()}{about}"

    @property
    def is_open(self) -> bool:
        return self.acknowledged_at is None and self.resolved_at is None


class JobPerformance(models.Model):
    """Per-job duration percentiles over a window, written by SYS_PERFORMANCE_STATS."""

    job = models.ForeignKey(JobDefinition, on_delete=models.CASCADE, related_name="performance")
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    runs = models.PositiveIntegerField()
    succeeded = models.PositiveIntegerField()
    failed = models.PositiveIntegerField()
    p50 = models.FloatField(null=True)
    p95 = models.FloatField(null=True)
    p99 = models.FloatField(null=True)
    longest = models.FloatField(null=True)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-computed_at", "job"]
        verbose_name_plural = "job performance"

    def __str__(self) -> str:
        return f"{self.job.code} {self.window_start:%Y-%m-%d} to {self.window_end:%Y-%m-%d}"
