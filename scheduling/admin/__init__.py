"""The job layer in the admin: definitions and their timing, runs and their logs, alerts.

Runs, logs, alerts and statistics are records, read-only here. What an operator does to
them (run now, cancel, re-run, release, acknowledge) are actions that call the same
services the API and the commands call; a refusal is a message, never a 500.
"""

from __future__ import annotations

import datetime
import json
from zoneinfo import ZoneInfo

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Count, IntegerField, Min, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.forms.models import BaseInlineFormSet, ModelForm
from django.http import HttpResponseBadRequest, HttpResponseRedirect, StreamingHttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator
from django_celery_beat.models import PeriodicTasks

from scheduling import calendar
from scheduling.admin.backfill import backfill_view
from scheduling.choices import RunStatus, Scope, Trigger
from scheduling.models import (
    BeatHeartbeat,
    BeatLease,
    BusinessCalendar,
    Holiday,
    JobAlert,
    JobAttempt,
    JobChunk,
    JobDefinition,
    JobLog,
    JobPerformance,
    JobRun,
    JobSchedule,
)
from scheduling.registry import ParamError
from scheduling.services import alerts, execution, firing, logexport, runs
from scheduling.services.runs import RunError

SUCCESS_WINDOW = datetime.timedelta(days=30)
INLINE_LIMIT = 200  # log lines and chunks shown on a run's page; the log changelist has the rest
EXPORT_FORMATS = tuple(logexport.FORMATS)
STATUS_COLOURS = {
    RunStatus.SUCCEEDED: "#2e7d32",
    RunStatus.FAILED: "#c62828",
    RunStatus.BLOCKED: "#c62828",
    RunStatus.RUNNING: "#1565c0",
    RunStatus.RETRYING: "#ef6c00",
    RunStatus.CANCELLED: "#757575",
    RunStatus.SKIPPED: "#757575",
}


# --- Small helpers ----------------------------------------------------------------------


def _run_link(run_id: int, text) -> str:
    return format_html('<a href="{}">{}</a>', reverse("admin:scheduling_jobrun_change", args=[run_id]), text)


def _pretty_json(value) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, cls=DjangoJSONEncoder))


def _status(status: str) -> str:
    colour = STATUS_COLOURS.get(status)
    return format_html('<span style="color: {}">{}</span>', colour, status) if colour else status


def _download(queryset, fmt: str) -> StreamingHttpResponse:
    return logexport.download(queryset, fmt, f"job-logs-{timezone.now():%Y%m%d-%H%M%S}")


class ReadOnlyAdmin(admin.ModelAdmin):
    """A record kept by the job layer: viewed here, changed only through actions."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class LimitedFormSet(BaseInlineFormSet):
    """An inline of at most INLINE_LIMIT rows: a run can log hundreds of thousands of lines."""

    def get_queryset(self):
        if getattr(self, "_limited", None) is None:
            self._limited = super().get_queryset()[:INLINE_LIMIT]
        return self._limited


class JobCodeFilter(admin.SimpleListFilter):
    """Job codes, from one query over the definitions instead of the (large) runs table."""

    title = "job"
    parameter_name = "job"
    field = "job__code"

    def lookups(self, request, model_admin):
        return [(code, code) for code in JobDefinition.objects.values_list("code", flat=True).order_by("code")]

    def queryset(self, request, queryset):
        return queryset.filter(**{self.field: self.value()}) if self.value() else queryset


# --- Definitions and timing ----------------------------------------------------------------


def _runs_since(since: datetime.datetime, *statuses: str) -> Coalesce:
    counted = (
        JobRun.objects.filter(job=OuterRef("pk"), created_at__gte=since, status__in=statuses)
        .order_by()
        .values("job")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


@admin.register(JobDefinition)
class JobDefinitionAdmin(admin.ModelAdmin):
    list_display = ["code", "title", "queue", "enabled", "registered", "last_run", "next_fire", "success_rate"]
    list_filter = ["enabled", "registered", "queue", "scope"]
    search_fields = ["code", "title"]
    readonly_fields = ["code", "registered", "backfill", "parameters", "declared_json", "created_at", "updated_at"]
    actions = ["run_now", "backfill_range"]
    fieldsets = [
        (None, {"fields": ["code", "title", "description", "enabled", "registered", "backfill"]}),
        ("Execution", {"fields": ["queue", "priority", "time_limit", "overlap", "max_concurrent"]}),
        ("Retries", {"fields": ["max_retries", "backoff_base", "backoff_cap"]}),
        ("Alerts", {"fields": ["runtime_threshold", "failure_alert_after"]}),
        (
            "Schedule behaviour",
            {
                "fields": [
                    "catch_up",
                    "catch_up_window",
                    "key_by",
                    "scope",
                    "depends_on",
                    "before",
                    "backfill_notifies",
                ]
            },
        ),
        ("Parameters", {"fields": ["parameters", "default_params"]}),
        ("Declaration", {"classes": ["collapse"], "fields": ["declared_json", "created_at", "updated_at"]}),
    ]

    def get_queryset(self, request):
        last = JobRun.objects.filter(job=OuterRef("pk")).order_by("-created_at", "-pk")
        next_fire = (
            JobSchedule.objects.filter(job=OuterRef("pk"), periodic_task__enabled=True)
            .order_by()
            .values("job")
            .annotate(at=Min("next_fire_at"))
            .values("at")
        )
        since = timezone.now() - SUCCESS_WINDOW
        return (
            super()
            .get_queryset(request)
            .annotate(
                last_run_id=Subquery(last.values("pk")[:1]),
                last_run_status=Subquery(last.values("status")[:1]),
                last_run_key=Subquery(last.values("run_key")[:1]),
                last_run_at=Subquery(last.values("created_at")[:1]),
                next_fire_at=Subquery(next_fire),
                succeeded_30d=_runs_since(since, RunStatus.SUCCEEDED),
                finished_30d=_runs_since(since, RunStatus.SUCCEEDED, RunStatus.FAILED),
            )
        )

    def has_add_permission(self, request) -> bool:
        return False  # definitions come from the code's declarations (sync_jobs)

    def has_delete_permission(self, request, obj=None) -> bool:
        # A declared job would come straight back at the next sync; only leftovers can go.
        return super().has_delete_permission(request, obj) and (obj is None or not obj.registered)

    @admin.display(description="last run", ordering="last_run_at")
    def last_run(self, obj):
        if obj.last_run_id is None:
            return "—"
        return _run_link(obj.last_run_id, format_html("{} {}", _status(obj.last_run_status), obj.last_run_key))

    @admin.display(description="next fire", ordering="next_fire_at")
    def next_fire(self, obj):
        if not (obj.enabled and obj.registered):
            return "not firing"
        return obj.next_fire_at or "—"

    @admin.display(description="success (30 days)")
    def success_rate(self, obj) -> str:
        if not obj.finished_30d:
            return "—"
        return f"{obj.succeeded_30d}/{obj.finished_30d} ({obj.succeeded_30d / obj.finished_30d:.0%})"

    def get_urls(self):
        view = self.admin_site.admin_view(lambda request, object_id: backfill_view(self, request, object_id))
        return [
            path("<path:object_id>/backfill/", view, name="scheduling_jobdefinition_backfill"),
            *super().get_urls(),
        ]

    @admin.display(description="backfill")
    def backfill(self, obj):
        if obj is None or obj.pk is None or not obj.registered:
            return "—"
        url = reverse("admin:scheduling_jobdefinition_backfill", args=[obj.pk])
        return format_html('<a href="{}">Backfill a range of past slots…</a>', url)

    @admin.action(description="Backfill a range of past slots…", permissions=["change"])
    def backfill_range(self, request, queryset):
        chosen = list(queryset[:2])
        if len(chosen) != 1:
            self.message_user(request, "Choose one job to backfill.", messages.WARNING)
            return None
        return HttpResponseRedirect(reverse("admin:scheduling_jobdefinition_backfill", args=[chosen[0].pk]))

    @admin.display(description="declared parameters")
    def parameters(self, obj):
        spec = obj.spec if obj else None
        if spec is None:
            return "not declared"
        return _pretty_json(spec.params.describe()) if spec.params.params else "none"

    @admin.display(description="declared")
    def declared_json(self, obj):
        return _pretty_json(obj.declared)

    @admin.action(description="Run now (today's slot)", permissions=["change"])
    def run_now(self, request, queryset):
        for definition in queryset:
            if definition.scope == Scope.COMPANY:
                self.message_user(
                    request,
                    f"{definition.code} runs per company: request it for a company through the API "
                    f"or `manage.py run_job {definition.code} --company …`.",
                    messages.WARNING,
                )
                continue
            try:
                run, created = runs.request_run(definition, trigger=Trigger.MANUAL, user=request.user)
            except (ParamError, RunError) as exc:
                self.message_user(request, f"{definition.code}: {exc}", messages.ERROR)
                continue
            what = "created" if created else "already existed"
            link = _run_link(run.pk, f"#{run.pk}")
            self.message_user(
                request,
                format_html("{}: run {} for {} {} ({})", definition.code, link, run.run_key, what, run.status),
                messages.SUCCESS if created else messages.INFO,
            )


class JobScheduleForm(ModelForm):
    def _post_clean(self):
        # JobSchedule.clean() reads the calendar rule through the periodic task; without a
        # valid one it would raise instead of reporting, and the field error already says why.
        if self.has_error("periodic_task"):
            return
        super()._post_clean()


@admin.register(JobSchedule)
class JobScheduleAdmin(admin.ModelAdmin):
    form = JobScheduleForm
    list_display = ["job", "timing", "company", "enabled", "next_fire_at", "last_slot_at"]
    list_select_related = [
        "job",
        "company",
        "periodic_task__crontab",
        "periodic_task__interval",
        "periodic_task__clocked",
    ]
    search_fields = ["job__code", "periodic_task__name"]
    raw_id_fields = ["periodic_task", "company"]
    fields = [
        "job",
        "periodic_task",
        "company",
        "rule",
        "rule_n",
        "rule_month",
        "shift",
        "business_calendar",
        ("start_within", "start_by"),
        ("end_within", "end_by"),
        "next_fire_times",
        "next_fire_at",
        "last_slot_at",
        "active_since",
    ]
    readonly_fields = ["next_fire_times", "next_fire_at", "last_slot_at", "active_since"]

    @admin.display(description="timing")
    def timing(self, obj) -> str:
        return obj.describe()

    @admin.display(description="enabled", boolean=True, ordering="periodic_task__enabled")
    def enabled(self, obj) -> bool:
        return obj.periodic_task.enabled

    @admin.display(description="next 10 fire times")
    def next_fire_times(self, obj):
        if obj is None or obj.pk is None:
            return "shown once saved"
        try:
            fires = obj.next_fires(count=10)  # never before the periodic task's start time, as beat
            zone = ZoneInfo(calendar.zone_name(obj.trigger()))
        except ValueError as exc:
            return f"cannot fire: {exc}"
        if not fires:
            return "no further fire times"
        rows = (
            (
                f"{fire.astimezone(datetime.UTC):%a %Y-%m-%d %H:%M} UTC",
                f"{fire.astimezone(zone):%a %Y-%m-%d %H:%M}",
                zone,
            )
            for fire in fires
        )
        return format_html("<ol>{}</ol>", format_html_join("", "<li>{} &nbsp;·&nbsp; {} {}</li>", rows))

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        # Beat recomputes its own schedule on a change; next_fire_at is right at once.
        PeriodicTasks.update_changed()
        firing.refresh_schedules(schedules=JobSchedule.objects.filter(pk=obj.pk))


class HolidayInline(admin.TabularInline):
    model = Holiday
    extra = 1


@admin.register(BusinessCalendar)
class BusinessCalendarAdmin(admin.ModelAdmin):
    list_display = ["name", "weekend", "description"]
    search_fields = ["name"]
    inlines = [HolidayInline]

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        # Holidays move the fire times of every schedule on this calendar.
        PeriodicTasks.update_changed()
        firing.refresh_schedules(schedules=JobSchedule.objects.filter(business_calendar=form.instance))


# --- Runs and their logs ----------------------------------------------------------------------


class JobChunkInline(ReadOnlyInline):
    model = JobChunk
    formset = LimitedFormSet
    fields = ["index", "status", "attempts", "error", "finished_at"]
    ordering = ["index"]
    verbose_name_plural = f"chunks (first {INLINE_LIMIT})"


class JobAttemptInline(ReadOnlyInline):
    model = JobAttempt
    fields = ["number", "status", "trigger", "started_at", "finished_at", "duration", "worker", "error"]
    ordering = ["number"]
    verbose_name_plural = "attempts"


class JobLogInline(ReadOnlyInline):
    model = JobLog
    formset = LimitedFormSet
    fields = ["at", "attempt", "level", "message", "data"]
    ordering = ["-pk"]
    verbose_name_plural = f"log (latest {INLINE_LIMIT} lines, newest first)"


def _operate(modeladmin, request, queryset, verb: str, service) -> None:
    """Apply a runs service to each selected run; one refusal does not stop the others."""
    done, refused = 0, []
    for run in queryset.select_related("job").order_by("pk"):
        try:
            service(run, user=request.user)  # each service is one transaction
        except RunError as exc:
            refused.append(f"#{run.pk}: {exc}")
        else:
            done += 1
    message = f"{verb}: {done} done"
    if refused:
        message += f", {len(refused)} refused: " + "; ".join(refused)
    level = messages.SUCCESS if not refused else messages.WARNING if done else messages.ERROR
    modeladmin.message_user(request, message, level)


@admin.register(JobRun)
class JobRunAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "job_code",
        "run_key",
        "company",
        "coloured_status",
        "trigger",
        "attempts",
        "created_at",
        "started_at",
        "took",
        "progress",
        "counts",
    ]
    list_display_links = ["id", "run_key"]
    list_filter = [JobCodeFilter, "status", "trigger", "company"]
    list_select_related = ["job", "company"]
    date_hierarchy = "created_at"
    search_fields = ["run_key", "job__code", "error"]
    show_full_result_count = False  # a second COUNT over the whole runs table, for a number nobody reads
    actions = ["cancel_runs", "rerun_runs", "release_runs"]
    inlines = [JobAttemptInline, JobChunkInline, JobLogInline]
    readonly_fields = ["progress", "log_links", "waiting_for"]
    fieldsets = [
        (None, {"fields": ["job", "run_key", "company", "business_date", "slot_at", "time_zone", "params"]}),
        (
            "State",
            {
                "fields": [
                    "status",
                    "waiting_for",
                    "blocked_by",
                    "after_run",
                    "trigger",
                    "triggered_by",
                    "schedule",
                    ("attempts", "first_attempt"),
                    "notify",
                    "cancel_requested",
                    "log_links",
                ]
            },
        ),
        (
            "Timing",
            {
                "fields": [
                    "created_at",
                    "queued_at",
                    "due_at",
                    "started_at",
                    "progress_at",
                    "body_finished_at",
                    "finished_at",
                    "duration",
                    ("start_deadline_at", "end_deadline_at"),
                ]
            },
        ),
        (
            "Progress",
            {
                "fields": [
                    "progress",
                    ("progress_done", "progress_total"),
                    ("chunks_done", "chunks_total"),
                    ("processed", "created", "skipped", "failed"),
                ]
            },
        ),
        ("Outcome", {"fields": ["result", "error", "traceback", "worker", "task_id"]}),
    ]

    def has_operate_permission(self, request) -> bool:
        return request.user.has_perm("scheduling.change_jobrun")

    @admin.display(description="job", ordering="job__code")
    def job_code(self, obj) -> str:
        return obj.job.code

    @admin.display(description="status", ordering="status")
    def coloured_status(self, obj):
        return _status(obj.status)

    @admin.display(description="duration", ordering="duration")
    def took(self, obj) -> str:
        return "—" if obj.duration is None else f"{obj.duration:.1f}s"

    @admin.display(description="progress")
    def progress(self, obj) -> str:
        done, total = execution.live_progress(obj)
        return f"{done}/{total}" if total else str(done)

    @admin.display(description="processed/created/skipped/failed")
    def counts(self, obj) -> str:
        return "/".join(str(getattr(obj, name)) for name in execution.COUNTERS)

    @admin.display(description="waiting for")
    def waiting_for(self, obj) -> str:
        if obj.status not in (RunStatus.WAITING, RunStatus.BLOCKED):
            return "—"
        return runs.dependency_status(obj)[1]

    @admin.display(description="log")
    def log_links(self, obj):
        query = f"run__id__exact={obj.pk}"
        lines = reverse("admin:scheduling_joblog_changelist")
        export = reverse("admin:scheduling_joblog_export")
        downloads = format_html_join(
            " ", '<a href="{}?format={}&amp;{}">{}</a>', ((export, fmt, query, fmt.upper()) for fmt in EXPORT_FORMATS)
        )
        return format_html('<a href="{}?{}">all log lines</a> · export {}', lines, query, downloads)

    @admin.action(description="Cancel the selected runs", permissions=["operate"])
    def cancel_runs(self, request, queryset):
        _operate(self, request, queryset, "Cancel", runs.cancel)

    @admin.action(description="Re-run the selected runs", permissions=["operate"])
    def rerun_runs(self, request, queryset):
        _operate(self, request, queryset, "Re-run", runs.rerun)

    @admin.action(description="Release the selected runs (ignore their dependencies)", permissions=["operate"])
    def release_runs(self, request, queryset):
        _operate(self, request, queryset, "Release", runs.release)


class LogJobCodeFilter(JobCodeFilter):
    field = "run__job__code"


class LogRunFilter(admin.SimpleListFilter):
    """``?run__id__exact=N``, as a run's page links to it; listed only while in use, since
    a list of every run would be the whole runs table."""

    title = "run"
    parameter_name = "run__id__exact"

    def lookups(self, request, model_admin):
        return [(self.value(), f"#{self.value()}")] if self.value() else []

    def queryset(self, request, queryset):
        return queryset.filter(run_id=self.value()) if self.value() else queryset


def _export_action(fmt: str):
    def action(modeladmin, request, queryset):
        return _download(queryset, fmt)

    action.__name__ = f"export_{fmt}"
    return admin.action(description=f"Export as {fmt.upper()}")(action)


@admin.register(JobLog)
class JobLogAdmin(ReadOnlyAdmin):
    list_display = ["at", "run_link", "job_code", "attempt", "level", "short_message"]
    list_filter = ["level", LogJobCodeFilter, LogRunFilter, ("at", admin.DateFieldListFilter)]
    list_select_related = ["run__job"]
    search_fields = ["message"]
    ordering = ["-at", "-pk"]
    show_full_result_count = False
    change_list_template = "admin/scheduling/joblog/change_list.html"
    actions = [_export_action(fmt) for fmt in EXPORT_FORMATS]

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}), "export_formats": EXPORT_FORMATS})

    def get_urls(self):
        export = self.admin_site.admin_view(self.export_view)
        return [path("export/", export, name="scheduling_joblog_export"), *super().get_urls()]

    def export_view(self, request):
        """The whole filtered changelist (every page), as ?format=csv|json|txt."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        fmt = request.GET.get("format", "")
        request.GET = request.GET.copy()
        request.GET.pop("format", None)  # not a filter: the changelist would refuse it
        try:
            queryset = self.get_changelist_instance(request).get_queryset(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest("those filters are not valid")
        try:
            return _download(queryset, fmt)
        except ValueError as exc:
            return HttpResponseBadRequest(str(exc))

    @admin.display(description="run", ordering="run")
    def run_link(self, obj):
        return _run_link(obj.run_id, f"#{obj.run_id} {obj.run.run_key}")

    @admin.display(description="job", ordering="run__job__code")
    def job_code(self, obj) -> str:
        return obj.run.job.code

    @admin.display(description="message")
    def short_message(self, obj) -> str:
        return Truncator(obj.message).chars(120)


# --- Alerts and statistics -------------------------------------------------------------------


class AlertStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "open"), ("acknowledged", "acknowledged"), ("resolved", "resolved")]

    def queryset(self, request, queryset):
        match self.value():
            case "open":
                return queryset.open()
            case "acknowledged":
                return queryset.filter(acknowledged_at__isnull=False)
            case "resolved":
                return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(JobAlert)
class JobAlertAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "severity",
        "job",
        "company",
        "cause",
        "short_message",
        "occurrences",
        "last_seen_at",
        "state",
        "acknowledged_by",
    ]
    list_filter = ["severity", "cause", AlertStateFilter, "company"]
    list_select_related = ["job", "company", "acknowledged_by"]
    search_fields = ["job__code", "message"]
    actions = ["acknowledge"]

    def has_acknowledge_permission(self, request) -> bool:
        return request.user.has_perm("scheduling.change_jobalert")

    @admin.display(description="message")
    def short_message(self, obj) -> str:
        return Truncator(obj.message).chars(120)

    @admin.display(description="state")
    def state(self, obj) -> str:
        if obj.resolved_at:
            return "resolved"
        return "acknowledged" if obj.acknowledged_at else "open"

    @admin.action(description="Acknowledge", permissions=["acknowledge"])
    def acknowledge(self, request, queryset):
        selected = list(queryset)
        done = sum(alerts.acknowledge(alert, request.user) for alert in selected)
        message = f"{done} acknowledged"
        if done < len(selected):
            message += f", {len(selected) - done} already closed"
        self.message_user(request, message, messages.SUCCESS if done else messages.WARNING)


@admin.register(JobPerformance)
class JobPerformanceAdmin(ReadOnlyAdmin):
    list_display = ["job", "window", "runs", "succeeded", "failed", "p50", "p95", "p99", "longest", "computed_at"]
    list_filter = [JobCodeFilter]
    list_select_related = ["job"]

    @admin.display(description="window", ordering="window_start")
    def window(self, obj) -> str:
        return f"{obj.window_start:%Y-%m-%d} to {obj.window_end:%Y-%m-%d}"


@admin.register(BeatLease)
class BeatLeaseAdmin(ReadOnlyAdmin):
    list_display = ["name", "holder", "acquired_at", "expires_at"]


@admin.register(BeatHeartbeat)
class BeatHeartbeatAdmin(admin.ModelAdmin):
    list_display = ["hostname", "started_at", "last_tick_at"]
    readonly_fields = ["hostname", "started_at", "last_tick_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
