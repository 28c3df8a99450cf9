"""Job schedules over the API (list, read, make, change, delete) and backfills of a job's
past slots. Staff only, as the rest of the job layer's API.

A schedule is written from its parts: ``cron`` (celery crontab fields and a timezone),
``every_seconds`` or ``once_at``, with an optional calendar rule and deadlines. One that
would fire twice within one of its job's run keys is refused with the reason.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.companies import company_model
from scheduling import calendar
from scheduling.api.jobs import RunSerializer, StaffOnly, param_fields
from scheduling.choices import RuleKind, Scope, Shift
from scheduling.models import BusinessCalendar, JobDefinition, JobSchedule
from scheduling.registry import ParamError
from scheduling.services import backfill, schedules

CRON_FIELDS = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")


class ScheduleSerializer(serializers.ModelSerializer):
    job = serializers.CharField(source="job.code")
    timing = serializers.CharField(source="describe")
    enabled = serializers.BooleanField(source="periodic_task.enabled")
    next_fires = serializers.SerializerMethodField()

    class Meta:
        model = JobSchedule
        fields = [
            "id",
            "job",
            "timing",
            "enabled",
            *schedules.SCHEDULE_FIELDS,
            "next_fire_at",
            "last_slot_at",
            "next_fires",
        ]

    def get_next_fires(self, schedule: JobSchedule) -> list[str] | dict:
        try:
            return [fire.isoformat() for fire in schedule.next_fires(count=10)]
        except ValueError as exc:
            return {"error": str(exc)}


class CronSerializer(serializers.Serializer):
    minute = serializers.CharField(default="*", max_length=240)
    hour = serializers.CharField(default="*", max_length=96)
    day_of_week = serializers.CharField(default="*", max_length=64)
    day_of_month = serializers.CharField(default="*", max_length=124)
    month_of_year = serializers.CharField(default="*", max_length=64)
    timezone = serializers.CharField(default="UTC", max_length=63)

    def validate(self, data: dict) -> calendar.Cron:
        try:
            return calendar.Cron(**data)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc


class ScheduleWriteSerializer(serializers.Serializer):
    """A schedule's parts. Creating one needs ``job`` and one timing; a change sends only
    what changes (a timing given replaces the old one whole)."""

    job = serializers.CharField(required=False)
    cron = CronSerializer(required=False)
    every_seconds = serializers.IntegerField(required=False, min_value=1, max_value=366 * 86400)
    once_at = serializers.DateTimeField(required=False)
    enabled = serializers.BooleanField(required=False)
    company = serializers.IntegerField(required=False, allow_null=True, help_text="fire for this company only")
    rule = serializers.ChoiceField(choices=[("", "none"), *RuleKind.choices], required=False, allow_blank=True)
    rule_n = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=31)
    rule_month = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=12)
    shift = serializers.ChoiceField(choices=Shift.choices, required=False)
    business_calendar = serializers.IntegerField(required=False, allow_null=True)
    start_within = serializers.DurationField(required=False, allow_null=True, help_text="HH:MM:SS after the slot")
    start_by = serializers.TimeField(required=False, allow_null=True, help_text="time of day, the schedule's zone")
    end_within = serializers.DurationField(required=False, allow_null=True, help_text="HH:MM:SS after the slot")
    end_by = serializers.TimeField(required=False, allow_null=True, help_text="time of day, the schedule's zone")

    def validate_job(self, code: str) -> JobDefinition:
        definition = JobDefinition.objects.filter(code=code, registered=True).first()
        if definition is None:
            raise serializers.ValidationError(f"no job {code}")
        return definition

    def validate_company(self, pk: int | None):
        if pk is None:
            return None
        company = company_model().objects.filter(pk=pk).first()
        if company is None:
            raise serializers.ValidationError(f"no company {pk}")
        return company

    def validate_business_calendar(self, pk: int | None) -> BusinessCalendar | None:
        if pk is None:
            return None
        found = BusinessCalendar.objects.filter(pk=pk).first()
        if found is None:
            raise serializers.ValidationError(f"no business calendar {pk}")
        return found

    def save_schedule(self, schedule: JobSchedule | None = None) -> JobSchedule:
        data = dict(self.validated_data)
        definition = schedule.job if schedule else data.pop("job", None)
        data.pop("job", None)
        if definition is None:
            raise serializers.ValidationError({"job": ["a new schedule names its job"]})
        company = data.get("company", schedule.company if schedule else None)
        if company is not None and definition.scope != Scope.COMPANY:
            raise serializers.ValidationError({"company": [f"{definition.code} runs for the whole platform"]})
        timings = {name: data.pop(name) for name in ("cron", "every_seconds", "once_at") if name in data}
        timing = None
        if timings:
            timing = schedules.Timing(
                cron=timings.get("cron"), every=timings.get("every_seconds"), once_at=timings.get("once_at")
            )
        enabled = data.pop("enabled", None)
        try:
            return schedules.save_schedule(definition, timing=timing, enabled=enabled, schedule=schedule, **data)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(_fields(exc)) from exc


def _fields(exc: DjangoValidationError) -> dict:
    """A model's errors in the API's terms: the periodic task is the schedule's timing."""
    if not hasattr(exc, "error_dict"):
        return {"non_field_errors": exc.messages}
    names = {"periodic_task": "timing", "__all__": "non_field_errors"}
    return {names.get(name, name): messages for name, messages in exc.message_dict.items()}


class ScheduleList(generics.ListCreateAPIView):
    """Job schedules with their next 10 fire times (calendar rules and timezones applied).
    POST makes one: 201, or 400 naming each bad part."""

    permission_classes = [StaffOnly]
    serializer_class = ScheduleSerializer
    cursor_ordering = ("pk",)
    queryset = JobSchedule.objects.with_timing()

    @extend_schema(request=ScheduleWriteSerializer, responses={201: ScheduleSerializer})
    def post(self, request: Request) -> Response:
        asked = ScheduleWriteSerializer(data=request.data)
        asked.is_valid(raise_exception=True)
        schedule = asked.save_schedule()
        return Response(ScheduleSerializer(self.queryset.get(pk=schedule.pk)).data, status=status.HTTP_201_CREATED)


class ScheduleDetail(generics.RetrieveDestroyAPIView):
    """One schedule; PATCH changes its parts, DELETE removes it and its timing."""

    permission_classes = [StaffOnly]
    serializer_class = ScheduleSerializer
    queryset = ScheduleList.queryset

    @extend_schema(request=ScheduleWriteSerializer, responses={200: ScheduleSerializer})
    def patch(self, request: Request, pk: int) -> Response:
        schedule = self.get_object()
        asked = ScheduleWriteSerializer(data=request.data, partial=True)
        asked.is_valid(raise_exception=True)
        if "job" in asked.validated_data and asked.validated_data["job"] != schedule.job:
            raise serializers.ValidationError({"job": ["a schedule stays with its job; make a new one"]})
        asked.save_schedule(schedule)
        return Response(ScheduleSerializer(self.queryset.get(pk=schedule.pk)).data)

    def perform_destroy(self, instance: JobSchedule) -> None:
        schedules.delete_schedule(instance)


# --- Backfill ---------------------------------------------------------------------------------------


class BackfillRequestSerializer(serializers.Serializer):
    first = serializers.DateField(help_text="the first day of the range")
    last = serializers.DateField(help_text="the last day of the range (inclusive)")
    company = serializers.IntegerField(required=False, help_text="only this company (a per-company job)")
    params = serializers.DictField(required=False, default=dict, help_text="parameters for every run")
    rerun_failed = serializers.BooleanField(default=False, help_text="re-run slots whose run failed or was cancelled")
    dry_run = serializers.BooleanField(default=False, help_text="say what would be done; make nothing")
    force = serializers.BooleanField(default=False, help_text="allow more runs than JOB_BACKFILL_MAX_RUNS")

    def validate_company(self, pk: int):
        company = company_model().objects.filter(pk=pk).first()
        if company is None:
            raise serializers.ValidationError(f"no company {pk}")
        return company


class SlotSerializer(serializers.Serializer):
    run_key = serializers.CharField()
    at = serializers.DateTimeField(help_text="the slot's fire time")
    company = serializers.IntegerField(allow_null=True)
    action = serializers.ChoiceField(
        choices=["create", "rerun", "succeeded", "failed", "active"],
        help_text="create or rerun: made now; the others left as they are",
    )
    run = serializers.IntegerField(allow_null=True, help_text="its run, made now or found")


class BackfillSerializer(serializers.Serializer):
    summary = serializers.CharField()
    slots = SlotSerializer(many=True)
    runs = RunSerializer(many=True, help_text="the runs made or re-run, in slot order")


class JobBackfill(APIView):
    """Make the runs of every slot of the job's schedule in a range of dates that has none,
    oldest first, each after the one before (202); ``dry_run`` says what would be done (200).
    Succeeded slots are never touched; failed ones only with ``rerun_failed``."""

    permission_classes = [StaffOnly]

    @extend_schema(request=BackfillRequestSerializer, responses={200: BackfillSerializer, 202: BackfillSerializer})
    def post(self, request: Request, code: str) -> Response:
        definition = get_object_or_404(JobDefinition, code=code, registered=True)
        asked = BackfillRequestSerializer(data=request.data)
        asked.is_valid(raise_exception=True)
        data = asked.validated_data
        try:
            made = backfill.backfill(
                definition,
                data["first"],
                data["last"],
                company=data.get("company"),
                params=data["params"],
                rerun_failed=data["rerun_failed"],
                dry_run=data["dry_run"],
                force=data["force"],
                user=request.user,
            )
        except ParamError as exc:
            raise serializers.ValidationError(param_fields(exc)) from exc
        except backfill.BackfillError as exc:
            raise serializers.ValidationError({"non_field_errors": [str(exc)]}) from exc
        body = {
            "summary": made.summary(),
            "slots": [
                {
                    "run_key": slot.key,
                    "at": slot.at,
                    "company": slot.company_id,
                    "action": slot.action,
                    "run": (slot.run or slot.existing).pk if (slot.run or slot.existing) else None,
                }
                for slot in made.slots
            ],
            "runs": RunSerializer(made.runs, many=True).data,
        }
        return Response(body, status=status.HTTP_200_OK if data["dry_run"] else status.HTTP_202_ACCEPTED)
