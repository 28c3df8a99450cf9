"""Aged receivables over the API: report runs, imported files and Xero connections.

``POST receivables/aged-reports`` asks for a report and answers 202 with its id and a
``Location``; the report is made by a job run on the ``receivables`` queue.
``GET receivables/aged-reports/<id>`` shows its status, progress, totals, reconciliation and
the tenants left out, and ``…/download`` returns the JSON or Excel file once it is made
(409 before). A report covers:

- ``source=db``: billing's books of ``companies`` (default: every company the caller is a
  member of), reconciled to each company's receivables control account;
- ``source=xero``: the synced Xero organisations of ``connections``, or of ``xero_app``, or
  of ``companies`` (default: every connection the caller may read);
- ``source=file``: one imported ``document_set`` (``POST receivables/document-sets`` with a
  file in the interchange format; a bad line is a 400 naming it, and nothing is kept).
"""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, parsers, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.invoices import run_summary
from config.api import Conflict
from ledger.api.common import ScopedPrimaryKeyRelatedField
from ledger.models import Company
from receivables import engine
from receivables.models import AgedReport, DocumentSet, ReportFormat, ReportSource, XeroApp, XeroConnection
from receivables.models.reports import AgeBy, CreditAging, PeriodType
from receivables.services import reports
from receivables.services.reports import CONTENT_TYPES
from receivables.sources import files
from scheduling.choices import RunStatus, Trigger
from scheduling.models import JobDefinition
from scheduling.registry import ParamError
from scheduling.services import runs
from scheduling.services.execution import live_progress

REPORT_JOB = "RECEIVABLES_AGED_REPORT"
MAX_UPLOAD = 200 * 1024 * 1024


class ReadableDocumentSets(serializers.PrimaryKeyRelatedField):
    """A document set the caller may read; any other id does not exist."""

    def __init__(self, **kwargs):
        super().__init__(queryset=DocumentSet.objects.all(), **kwargs)

    def get_queryset(self):
        return document_sets_for(self.context["request"].user)


class ReadableConnections(ScopedPrimaryKeyRelatedField):
    def __init__(self, **kwargs):
        super().__init__(queryset=XeroConnection.objects.all(), **kwargs)


class CompanyChoice(ScopedPrimaryKeyRelatedField):
    def __init__(self, **kwargs):
        super().__init__(queryset=Company.objects.all(), **kwargs)


def document_sets_for(user):
    if not user.is_authenticated:
        return DocumentSet.objects.none()
    if user.is_staff:
        return DocumentSet.objects.all()
    return DocumentSet.objects.filter(company__memberships__user=user)


class AgedReportRequestSerializer(serializers.Serializer):
    as_of = serializers.DateField()
    periods = serializers.IntegerField(default=4, min_value=1, max_value=engine.MAX_PERIODS)
    period_type = serializers.ChoiceField(choices=PeriodType.choices, default=PeriodType.MONTH)
    period_length = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=engine.MAX_PERIOD_LENGTH,
        help_text="Days (day) or weeks (week) a period; 30 days or 1 week by default. Months are calendar months.",
    )
    age_by = serializers.ChoiceField(choices=AgeBy.choices, default=AgeBy.DUE)
    credit_aging = serializers.ChoiceField(
        choices=CreditAging.choices, default=CreditAging.CURRENT, help_text="Where unallocated credit goes."
    )
    source = serializers.ChoiceField(choices=ReportSource.choices, default=ReportSource.DB)
    format = serializers.ChoiceField(choices=ReportFormat.choices, default=ReportFormat.JSON)
    companies = CompanyChoice(many=True, required=False)
    xero_app = serializers.PrimaryKeyRelatedField(queryset=XeroApp.objects.all(), required=False)
    connections = ReadableConnections(many=True, required=False)
    document_set = ReadableDocumentSets(required=False)

    def validate(self, attrs: dict) -> dict:
        user = self.context["request"].user
        source = attrs["source"]
        attrs.setdefault("period_length", engine.default_period_length(attrs["period_type"]))
        if attrs["period_type"] == "month" and attrs["period_length"] != 1:
            raise serializers.ValidationError({"period_length": ["Month periods are single calendar months."]})
        if source != ReportSource.FILE and "document_set" in attrs:
            raise serializers.ValidationError({"document_set": ["Only a file report reads a document set."]})
        if source != ReportSource.XERO and ("connections" in attrs or "xero_app" in attrs):
            name = "connections" if "connections" in attrs else "xero_app"
            raise serializers.ValidationError({name: ["Only a Xero report reads connections."]})
        if "xero_app" in attrs and not user.is_staff:
            raise serializers.ValidationError({"xero_app": ["Only staff report over a whole Xero app."]})
        if source == ReportSource.DB:
            companies = attrs.get("companies") or list(Company.objects.of_member(user))
            if not companies:
                raise serializers.ValidationError({"companies": ["Name the companies to report on."]})
            attrs["companies"] = companies
        elif source == ReportSource.XERO:
            attrs["connections"] = self._connections(attrs, user)
            attrs["companies"] = sorted({c.company for c in attrs["connections"] if c.company}, key=lambda c: c.pk)
        else:
            if "document_set" not in attrs:
                raise serializers.ValidationError({"document_set": ["A file report names its document set."]})
            if attrs.get("companies"):
                raise serializers.ValidationError({"companies": ["A file report covers its document set."]})
            attrs["companies"] = [attrs["document_set"].company] if attrs["document_set"].company else []
        return attrs

    def _connections(self, attrs: dict, user) -> list[XeroConnection]:
        chosen = attrs.get("connections")
        if not chosen:
            found = XeroConnection.objects.for_user(user).active()
            if "xero_app" in attrs:
                found = found.filter(app=attrs["xero_app"])
            if attrs.get("companies"):
                found = found.filter(company__in=attrs["companies"])
            chosen = list(found.order_by("tenant_name", "pk"))
        if not chosen:
            raise serializers.ValidationError({"connections": ["No Xero organisation to report on."]})
        return chosen


class AgedReportSerializer(serializers.ModelSerializer):
    companies = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    connections = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = AgedReport
        fields = [
            "id",
            "as_of",
            "periods",
            "period_type",
            "period_length",
            "age_by",
            "credit_aging",
            "source",
            "format",
            "companies",
            "xero_app",
            "connections",
            "document_set",
            "created_at",
            "finished_at",
            "from_cache",
            "totals",
            "reconciliation",
            "failures",
        ]
        read_only_fields = fields

    def to_representation(self, report: AgedReport) -> dict:
        data = super().to_representation(report)
        run = report.job_run
        ready = report.finished_at is not None
        data["status"] = "succeeded" if ready else (run.status if run else "pending")
        data["run"] = run_summary(run) if run else None
        if run is not None and not ready:
            done, total = live_progress(run)
            data["progress"] = {"done": done, "total": total}
        data["links"] = {
            "self": reverse("receivables-aged-report-detail", args=[report.pk]),
            "download": reverse("receivables-aged-report-download", args=[report.pk]) if ready else None,
        }
        return data


class AgedReportViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """The caller's aged receivables reports, newest first (see the module docstring)."""

    serializer_class = AgedReportSerializer
    permission_classes = [permissions.IsAuthenticated]
    cursor_ordering = ("-created_at", "-pk")
    lookup_value_converter = "int"

    def get_queryset(self):
        return (
            AgedReport.objects.for_user(self.request.user)
            .select_related("job_run__job")
            .prefetch_related("companies", "connections")
            .defer("output")
        )

    @extend_schema(request=AgedReportRequestSerializer, responses={202: AgedReportSerializer})
    def create(self, request: Request) -> Response:
        asked = AgedReportRequestSerializer(data=request.data, context=self.get_serializer_context())
        asked.is_valid(raise_exception=True)
        data = asked.validated_data
        definition = JobDefinition.objects.filter(code=REPORT_JOB, registered=True).first()
        if definition is None:
            raise Conflict("The aged report job is not installed; ask an operator to sync the jobs.")
        options = engine.Options(
            data["as_of"],
            data["periods"],
            data["period_type"],
            data["period_length"],
            data["age_by"],
            data["credit_aging"],
        )
        report = reports.create(
            options=options,
            source=data["source"],
            fmt=data["format"],
            companies=data["companies"],
            connections=data.get("connections", ()),
            xero_app=data.get("xero_app"),
            document_set=data.get("document_set"),
            user=request.user,
        )
        try:
            run, _ = runs.request_run(
                definition,
                params={"report": report.pk},
                trigger=Trigger.API,
                user=request.user,
                run_key=f"report-{report.pk}",
            )
        except (ParamError, runs.RunError) as exc:
            report.delete()
            raise Conflict(str(exc)) from exc
        AgedReport.objects.filter(pk=report.pk).update(job_run=run)
        report.job_run = run
        body = AgedReportSerializer(report, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["links"]["self"]})

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def download(self, request: Request, pk=None) -> HttpResponse:
        """The report's JSON or Excel file (409 until it is made)."""
        report = get_object_or_404(AgedReport.objects.for_user(request.user), pk=pk)
        if report.finished_at is None or report.output is None:
            state = report.job_run.status if report.job_run else "pending"
            if state in (RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.BLOCKED):
                raise Conflict(f"The report was not made: its run {state}.")
            raise Conflict("The report is not made yet; follow its link until it has a download.")
        return report_file(report)


def report_file(report: AgedReport) -> HttpResponse:
    """A made report's file, as an attachment (the API's download and the admin's)."""
    response = HttpResponse(bytes(report.output), content_type=CONTENT_TYPES[report.format])
    response["Content-Disposition"] = f'attachment; filename="{report.output_name}"'
    return response


class DocumentSetSerializer(serializers.ModelSerializer):
    class Meta:
        model = DocumentSet
        fields = ["id", "name", "company", "documents", "allocations", "sha256", "created_at"]
        read_only_fields = fields


class DocumentSetUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="JSON Lines or CSV in the interchange format.")
    name = serializers.CharField(max_length=200, required=False)
    company = CompanyChoice(required=False, help_text="Whose members may read it; staff only when left out.")

    def validate_company(self, company: Company) -> Company:
        if not Company.objects.of_member(self.context["request"].user).filter(pk=company.pk).exists():
            raise serializers.ValidationError("Only members of the company import files for it.")
        return company

    def validate(self, attrs: dict) -> dict:
        user = self.context["request"].user
        if "company" not in attrs and not user.is_staff:
            raise serializers.ValidationError({"company": ["Name the company the file is for."]})
        if attrs["file"].size > MAX_UPLOAD:
            raise serializers.ValidationError({"file": [f"Files are at most {MAX_UPLOAD // 1024 // 1024} MB."]})
        return attrs


class DocumentSetViewSet(mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    """Imported files of documents to age. POST a file (multipart); a bad line is a 400
    naming it, and nothing is kept. Deleting one deletes the reports over it."""

    serializer_class = DocumentSetSerializer
    permission_classes = [permissions.IsAuthenticated]
    parser_classes = [parsers.MultiPartParser, parsers.FormParser]
    cursor_ordering = ("-created_at", "-pk")
    lookup_value_converter = "int"

    def get_queryset(self):
        return document_sets_for(self.request.user)

    @extend_schema(request=DocumentSetUploadSerializer, responses={201: DocumentSetSerializer})
    def create(self, request: Request) -> Response:
        given = DocumentSetUploadSerializer(data=request.data, context=self.get_serializer_context())
        given.is_valid(raise_exception=True)
        upload = given.validated_data["file"]
        try:
            document_set = files.import_file(
                upload,
                name=given.validated_data.get("name") or upload.name,
                company=given.validated_data.get("company"),
                user=request.user,
            )
        except files.FileError as exc:
            raise serializers.ValidationError({"file": [str(exc)]}) from exc
        return Response(DocumentSetSerializer(document_set).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: DocumentSet) -> None:
        user = self.request.user
        if instance.company_id and not Company.objects.of_member(user).filter(pk=instance.company_id).exists():
            raise Conflict("Only members of the company delete its files.")
        instance.delete()


class XeroConnectionSerializer(serializers.ModelSerializer):
    app = serializers.CharField(source="app.name")

    class Meta:
        model = XeroConnection
        fields = [
            "id",
            "app",
            "tenant_id",
            "tenant_name",
            "business_unit",
            "company",
            "base_currency",
            "active",
            "last_synced_at",
            "last_error",
            "failed_at",
            "data_version",
        ]
        read_only_fields = fields


class XeroConnectionViewSet(viewsets.ReadOnlyModelViewSet):
    """The Xero organisations the caller may read, with how their last sync went."""

    serializer_class = XeroConnectionSerializer
    permission_classes = [permissions.IsAuthenticated]
    cursor_ordering = ("tenant_name", "pk")
    lookup_value_converter = "int"

    def get_queryset(self):
        return XeroConnection.objects.for_user(self.request.user).select_related("app")


routes = [
    ("receivables/aged-reports", AgedReportViewSet, "receivables-aged-report"),
    ("receivables/document-sets", DocumentSetViewSet, "receivables-document-set"),
    ("receivables/xero-connections", XeroConnectionViewSet, "receivables-xero-connection"),
]
urlpatterns = []
