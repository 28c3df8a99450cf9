"""Jobs, schedules, runs, logs and alerts over the API. Staff only: jobs belong to the
platform, not to one company (a domain app offers its own company-scoped run endpoints)."""

from __future__ import annotations

import datetime

from django.db.models import Prefetch, Q
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import Conflict, FileFormatNegotiation
from config.companies import company_model
from scheduling import slots
from scheduling.choices import RunStatus, Trigger
from scheduling.models import JobAlert, JobAttempt, JobDefinition, JobLog, JobRun, JobSchedule
from scheduling.registry import ParamError
from scheduling.services import alerts, execution, logexport, monitoring, runs


class StaffOnly(permissions.IsAdminUser):
    pass


def param_fields(exc: ParamError) -> dict:
    """A run's refused parameters as the API's field errors: the company on its own field,
    the job's parameters under ``params``."""
    fields = {name: [message] for name, message in exc.errors.items() if name == "company"}
    params = {name: [message] for name, message in exc.errors.items() if name != "company"}
    if params:
        fields["params"] = params
    return fields


# --- Serializers -------------------------------------------------------------------------------


class JobSerializer(serializers.ModelSerializer):
    parameters = serializers.SerializerMethodField()
    schedules = serializers.SerializerMethodField()

    class Meta:
        model = JobDefinition
        fields = ["code", "enabled", "registered", "parameters", *JobDefinition.DECLARED_FIELDS, "schedules"]

    def get_parameters(self, definition: JobDefinition) -> dict:
        spec = definition.spec
        return spec.params.describe() if spec else {}

    def get_schedules(self, definition: JobDefinition) -> list[dict]:
        return [
            {"id": schedule.pk, "timing": schedule.describe(), "next_fire_at": schedule.next_fire_at}
            for schedule in definition.schedules.all()
        ]


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobAttempt
        fields = [
            "number",
            "status",
            "trigger",
            "started_at",
            "finished_at",
            "duration",
            "worker",
            "task_id",
            "result",
            "error",
        ]


class RunSerializer(serializers.ModelSerializer):
    job = serializers.CharField(source="job.code")
    triggered_by = serializers.CharField(source="triggered_by.username", default=None)
    tries = serializers.IntegerField(read_only=True, help_text="attempts in this round (a re-run starts a new one)")
    progress = serializers.SerializerMethodField()
    counts = serializers.SerializerMethodField()
    chunks = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    class Meta:
        model = JobRun
        fields = [
            "id",
            "job",
            "run_key",
            "company",
            "business_date",
            "slot_at",
            "time_zone",
            "params",
            "status",
            "trigger",
            "triggered_by",
            "attempts",
            "tries",
            "notify",
            "blocked_by",
            "after_run",
            "schedule",
            "start_deadline_at",
            "end_deadline_at",
            "created_at",
            "queued_at",
            "started_at",
            "finished_at",
            "duration",
            "progress",
            "counts",
            "chunks",
            "result",
            "error",
            "traceback",
            "worker",
            "task_id",
            "cancel_requested",
            "links",
        ]

    def get_progress(self, run: JobRun) -> dict:
        done, total = execution.live_progress(run)
        return {"done": done, "total": total}

    def get_counts(self, run: JobRun) -> dict:
        return {name: getattr(run, name) for name in execution.COUNTERS}

    def get_chunks(self, run: JobRun) -> dict | None:
        return {"total": run.chunks_total, "done": run.chunks_done} if run.chunks_total is not None else None

    def get_links(self, run: JobRun) -> dict:
        return {
            "self": reverse("run-detail", args=[run.pk]),
            "logs": reverse("run-logs", args=[run.pk]),
        }


class RunDetailSerializer(RunSerializer):
    """One run: besides the list's fields, each attempt, and what a held run waits for."""

    attempt_history = AttemptSerializer(many=True, read_only=True, help_text="every attempt, oldest first")
    waiting_for = serializers.SerializerMethodField()

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "attempt_history", "waiting_for"]

    def get_waiting_for(self, run: JobRun) -> str | None:
        """What a waiting or blocked run waits for, and the root run that blocks it."""
        if run.status not in (RunStatus.WAITING, RunStatus.BLOCKED):
            return None
        return runs.dependency_status(run)[1]


class RunRequestSerializer(serializers.Serializer):
    job = serializers.CharField()
    business_date = serializers.DateField(required=False, help_text="the slot's date; today by default")
    company = serializers.IntegerField(required=False, help_text="company id, for jobs that run per company")
    params = serializers.DictField(required=False, default=dict)

    def validate_job(self, code: str) -> JobDefinition:
        definition = JobDefinition.objects.filter(code=code, registered=True).first()
        if definition is None:
            raise serializers.ValidationError(f"no job {code}")
        return definition

    def validate_company(self, pk: int):
        company = company_model().objects.filter(pk=pk).first()
        if company is None:
            raise serializers.ValidationError(f"no company {pk}")
        return company


class RunFilterSerializer(serializers.Serializer):
    job = serializers.CharField(required=False)
    status = serializers.CharField(required=False, help_text="one or more statuses, comma-separated")
    trigger = serializers.ChoiceField(choices=Trigger.choices, required=False)
    company = serializers.IntegerField(required=False)
    run_key = serializers.CharField(required=False)
    created_from = serializers.DateField(required=False)
    created_to = serializers.DateField(required=False)

    def validate_status(self, value: str) -> list[str]:
        statuses = [part.strip() for part in value.split(",") if part.strip()]
        unknown = [s for s in statuses if s not in RunStatus.values]
        if unknown:
            raise serializers.ValidationError(f"unknown status {', '.join(unknown)}; choose from {RunStatus.values}")
        return statuses


class AlertSerializer(serializers.ModelSerializer):
    job = serializers.CharField(source="job.code")
    acknowledged_by = serializers.CharField(source="acknowledged_by.username", default=None)
    is_open = serializers.BooleanField(read_only=True)

    class Meta:
        model = JobAlert
        fields = [
            "id",
            "job",
            "run",
            "company",
            "subject",
            "cause",
            "severity",
            "message",
            "occurrences",
            "created_at",
            "last_seen_at",
            "notified_at",
            "acknowledged_at",
            "acknowledged_by",
            "resolved_at",
            "is_open",
        ]


# --- Jobs and schedules -------------------------------------------------------------------------


class JobList(generics.ListAPIView):
    """Every job the platform knows, with its parameters and schedules."""

    permission_classes = [StaffOnly]
    serializer_class = JobSerializer
    cursor_ordering = ("code",)
    queryset = JobDefinition.objects.prefetch_related(Prefetch("schedules", JobSchedule.objects.with_timing()))


class JobDetail(generics.RetrieveAPIView):
    permission_classes = [StaffOnly]
    serializer_class = JobSerializer
    lookup_field = "code"
    queryset = JobList.queryset


@extend_schema(responses=OpenApiTypes.OBJECT)
class JobsStatus(APIView):
    """What the job layer is doing now: active runs by status, running runs, beat's leader."""

    permission_classes = [StaffOnly]

    def get(self, request: Request) -> Response:
        return Response(monitoring.jobs_status())


@extend_schema(responses=OpenApiTypes.OBJECT)
class JobsHealth(APIView):
    """Per job: last run, last success, failures, consecutive failures, time since the last
    success, open alerts, and health good / warning / critical."""

    permission_classes = [StaffOnly]

    def get(self, request: Request) -> Response:
        rows = monitoring.job_health()
        return Response({"health": monitoring.overall_health(rows), "jobs": rows})


# --- Runs ------------------------------------------------------------------------------------------


class RunList(generics.ListAPIView):
    """Runs, newest first, filtered by job, status, trigger, company, key and creation date.
    POST asks for a run: 202 with its id (an existing run of the same slot is returned)."""

    permission_classes = [StaffOnly]
    serializer_class = RunSerializer
    cursor_ordering = ("-created_at", "-pk")

    def get_queryset(self):
        queryset = JobRun.objects.select_related("job", "triggered_by")
        filters = RunFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        wanted = filters.validated_data
        conditions = Q()
        if "job" in wanted:
            conditions &= Q(job__code=wanted["job"])
        if "status" in wanted:
            conditions &= Q(status__in=wanted["status"])
        for name in ("trigger", "company", "run_key"):
            if name in wanted:
                conditions &= Q(**{name: wanted[name]})
        if "created_from" in wanted:
            conditions &= Q(created_at__gte=slots.start_of_day(wanted["created_from"], "UTC"))
        if "created_to" in wanted:
            conditions &= Q(created_at__lt=slots.start_of_day(wanted["created_to"] + datetime.timedelta(days=1), "UTC"))
        return queryset.filter(conditions)

    @extend_schema(request=RunRequestSerializer, responses={202: RunSerializer})
    def post(self, request: Request) -> Response:
        asked = RunRequestSerializer(data=request.data)
        asked.is_valid(raise_exception=True)
        data = asked.validated_data
        try:
            run, created = runs.request_run(
                data["job"],
                business_date=data.get("business_date"),
                company=data.get("company"),
                params=data.get("params"),
                trigger=Trigger.API,
                user=request.user,
            )
        except ParamError as exc:
            raise serializers.ValidationError(param_fields(exc)) from exc
        except runs.RunError as exc:
            raise serializers.ValidationError({"job": [str(exc)]}) from exc
        body = {"id": run.pk, "created": created, "run": RunSerializer(run).data}
        return Response(
            body, status=status.HTTP_202_ACCEPTED, headers={"Location": reverse("run-detail", args=[run.pk])}
        )


class RunDetail(generics.RetrieveAPIView):
    permission_classes = [StaffOnly]
    serializer_class = RunDetailSerializer
    queryset = JobRun.objects.select_related("job", "triggered_by").prefetch_related("attempt_history")


@extend_schema(responses=OpenApiTypes.OBJECT)
class RunLogs(APIView):
    """A run's log lines as JSON (paged by ``after`` id), or whole as CSV, JSON or TXT with
    ``?format=csv|json|txt``; ``level`` keeps lines at or above it."""

    permission_classes = [StaffOnly]
    content_negotiation_class = FileFormatNegotiation
    page_size = 1000

    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=list(logexport.FORMATS)),
            OpenApiParameter("level", str, enum=list(execution.LEVELS)),
            OpenApiParameter("after", int, description="log id to continue after"),
        ]
    )
    def get(self, request: Request, pk: int):
        run = get_object_or_404(JobRun.objects.select_related("job"), pk=pk)
        lines = JobLog.objects.filter(run=run).order_by("pk")
        level = request.query_params.get("level")
        if level:
            if level not in execution.LEVELS:
                raise serializers.ValidationError({"level": [f"choose from {', '.join(execution.LEVELS)}"]})
            lines = lines.filter(level__gte=execution.LEVELS[level])
        fmt = request.query_params.get("format")
        if fmt:
            filename = f"{run.job.code}-{run.run_key}-run{run.pk}".replace(":", "")
            try:
                return logexport.download(lines, fmt, filename)
            except ValueError as exc:
                raise serializers.ValidationError({"format": [str(exc)]}) from exc
        after = request.query_params.get("after", "0")
        if not after.isdigit():
            raise serializers.ValidationError({"after": ["a log id"]})
        page = list(lines.filter(pk__gt=int(after))[: self.page_size + 1])
        more = len(page) > self.page_size
        page = page[: self.page_size]
        return Response(
            {
                "run": run.pk,
                "lines": [
                    {
                        "id": line.pk,
                        "at": line.at,
                        "attempt": line.attempt,
                        "level": line.get_level_display().lower(),
                        "message": line.message,
                        "data": line.data,
                    }
                    for line in page
                ],
                "next_after": page[-1].pk if more else None,
            }
        )


class RunAction(APIView):
    """Cancel, re-run or release a run. 409 when its state does not allow it."""

    permission_classes = [StaffOnly]
    action = ""

    @extend_schema(request=None, responses={200: RunDetailSerializer})
    def post(self, request: Request, pk: int) -> Response:
        run = get_object_or_404(JobRun.objects.select_related("job"), pk=pk)
        operation = {"cancel": runs.cancel, "rerun": runs.rerun, "release": runs.release}[self.action]
        try:
            run = operation(run, user=request.user)
        except runs.RunError as exc:
            raise Conflict(str(exc)) from exc
        # the services reload the run; read it back with what the serializer shows, in one query
        return Response(RunDetailSerializer(RunDetail.queryset.get(pk=run.pk)).data)


# --- Alerts ------------------------------------------------------------------------------------------


class AlertList(generics.ListAPIView):
    """Alerts, newest first; ``?open=true`` for those nobody has acknowledged or resolved."""

    permission_classes = [StaffOnly]
    serializer_class = AlertSerializer
    cursor_ordering = ("-created_at", "-pk")

    def get_queryset(self):
        queryset = JobAlert.objects.select_related("job", "acknowledged_by")
        wanted = self.request.query_params.get("open")
        if wanted in ("true", "1"):
            return queryset.open()
        if wanted in ("false", "0"):
            return queryset.exclude(acknowledged_at=None, resolved_at=None)
        if wanted is not None:
            raise serializers.ValidationError({"open": ["true or false"]})
        return queryset


class AlertAcknowledge(APIView):
    permission_classes = [StaffOnly]

    @extend_schema(request=None, responses={200: AlertSerializer})
    def post(self, request: Request, pk: int) -> Response:
        alert = get_object_or_404(JobAlert, pk=pk)
        alerts.acknowledge(alert, request.user)
        alert.refresh_from_db()
        return Response(AlertSerializer(alert).data)
