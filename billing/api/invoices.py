"""Invoices over the API: listed and read with their lines and allocations, fetched as
HTML or PDF, manual drafts created, finalised and deleted; and invoice runs asked for
and followed. Voiding is billing.api.payments'.

An invoice run is the job layer's run of the cadence's job (billing.jobs.invoicing) for
the company and the period; ``POST billing/invoice-runs`` asks for it and answers 202
with the job run's id, or 200 with the run already asked for that period (its
parameters stand: a period is billed by one run). ``GET billing/invoice-run-requests/<run>``
follows it; once its body has run, ``invoice_run`` names the billing record
(``GET billing/invoice-runs/<id>``) with what it created, skipped and notified.
"""

from __future__ import annotations

import datetime
from decimal import Decimal

import django_filters
from django.db.models import Prefetch, Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, permissions, renderers, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api.common import (
    BillingMoney,
    DocumentMoney,
    RateField,
    income_account_error,
    kept_by_others,
    not_the_companys,
    places_error,
    state_conflicts,
)
from billing.errors import BillingStateError
from billing.jobs.invoicing import JOBS
from billing.models import (
    Cadence,
    CreditAllocation,
    Customer,
    Invoice,
    InvoiceLine,
    InvoiceRun,
    InvoiceSource,
    InvoiceStatus,
    PaymentAllocation,
)
from billing.services import documents, finalising, manual, periods
from config.api import Conflict, FileFormatNegotiation
from ledger.api.common import (
    CompanyField,
    CompanyFilterSet,
    MembersWrite,
    ScopedPrimaryKeyRelatedField,
    money,
    scoped,
)
from ledger.models import Account, Company
from ledger.services.periods import EARLIEST, LATEST
from scheduling.choices import RunStatus, Trigger
from scheduling.models import JobDefinition, JobRun
from scheduling.registry import ParamError
from scheduling.services import runs

ZERO = Decimal(0)
MAX_LINES = 500  # a manual invoice is typed or sent by a person's app, not a bulk import
INVOICE_ORDER = ("-issue_date", "-pk")
AMOUNTS = ("subtotal", "tax", "total", "paid", "credited", "due")

# --- Out ----------------------------------------------------------------------------------


class InvoiceSerializer(DocumentMoney, serializers.ModelSerializer):
    """An invoice without its lines, as lists show it."""

    customer_name = serializers.CharField(source="customer.name", read_only=True)
    period = serializers.SerializerMethodField(help_text="The billed period's name (2026-01), for run invoices.")
    links = serializers.SerializerMethodField()
    money_fields = AMOUNTS

    class Meta:
        model = Invoice
        fields = [
            "id",
            "company",
            "customer",
            "customer_name",
            "number",
            "status",
            "source",
            "issue_date",
            "due_date",
            "cadence",
            "period",
            "period_start",
            "period_end",
            "consolidated",
            "currency",
            *AMOUNTS,
            "memo",
            "journal_entry",
            "finalised_at",
            "void_date",
            "created_at",
            "links",
        ]
        read_only_fields = fields

    def get_period(self, invoice: Invoice) -> str | None:
        if invoice.cadence and invoice.period_start:
            return periods.key(invoice.cadence, invoice.period_start)
        return None

    def get_links(self, invoice: Invoice) -> dict:
        document = reverse("billing-invoice-document", args=[invoice.pk])
        return {
            "self": reverse("billing-invoice-detail", args=[invoice.pk]),
            "html": f"{document}?format=html",
            "pdf": f"{document}?format=pdf",
        }


class InvoiceDetailSerializer(InvoiceSerializer):
    """An invoice with its lines, the enrolments it bills and what settled it."""

    enrolments = serializers.SerializerMethodField()
    lines = serializers.SerializerMethodField()
    allocations = serializers.SerializerMethodField()

    class Meta(InvoiceSerializer.Meta):
        fields = [
            *InvoiceSerializer.Meta.fields[:-1],
            "billing_key",
            "enrolment",
            "enrolments",
            "template",
            "charged_for",
            "void_reason",
            "void_entry",
            "lines",
            "allocations",
            "links",
        ]
        read_only_fields = fields

    def get_enrolments(self, invoice: Invoice) -> list[int]:
        return sorted({line.enrolment_id for line in invoice.lines.all() if line.enrolment_id})

    def get_lines(self, invoice: Invoice) -> list[dict]:
        currency = invoice.currency
        return [
            {
                "id": line.pk,
                "position": line.position,
                "description": line.description,
                "enrolment": line.enrolment_id,
                "fee_structure": line.fee_structure_id,
                "period_start": line.period_start,
                "amount": money(line.amount, currency),
                "tax_rate": str(line.tax_rate),
                "tax": money(line.tax, currency),
                "total": money(line.total, currency),
                "income_account": line.income_account_id,
                "billed": line.billed,
            }
            for line in invoice.lines.all()
        ]

    def get_allocations(self, invoice: Invoice) -> dict:
        currency = invoice.currency
        return {
            "payments": [
                {"payment": a.payment_id, "amount": money(a.amount, currency), "date": a.date}
                for a in invoice.payment_allocations.all()
            ],
            "credit_notes": [
                {
                    "credit_note": a.credit_note_id,
                    "number": a.credit_note.number,
                    "amount": money(a.amount, currency),
                    "date": a.date,
                }
                for a in invoice.credit_allocations.all()
            ],
        }


def invoice_list(queryset):
    return queryset.select_related("customer")


def invoice_detail(queryset):
    return queryset.select_related("customer", "company").prefetch_related(
        Prefetch("lines", InvoiceLine.objects.order_by("position", "pk")),
        Prefetch("payment_allocations", PaymentAllocation.objects.order_by("date", "pk")),
        Prefetch("credit_allocations", CreditAllocation.objects.select_related("credit_note").order_by("date", "pk")),
    )


# --- In -----------------------------------------------------------------------------------


class InvoiceLineInputSerializer(serializers.Serializer):
    description = serializers.CharField(max_length=300)
    amount = BillingMoney(min_value=ZERO, help_text="Before tax, as a string.")
    tax_rate = RateField(default=ZERO, help_text="Percent, as a string.")
    income_account = ScopedPrimaryKeyRelatedField(
        queryset=Account.objects.all(), allow_null=True, default=None, help_text="The company's sales account if empty."
    )


class InvoiceInputSerializer(serializers.Serializer):
    """A manual invoice, saved as a draft: finalise it to number, post and send it."""

    company = CompanyField()
    customer = ScopedPrimaryKeyRelatedField(queryset=Customer.objects.all())
    issue_date = serializers.DateField(required=False, help_text="The company's today by default.")
    due_date = serializers.DateField(required=False, help_text="The customer's payment terms after issue by default.")
    memo = serializers.CharField(max_length=500, allow_blank=True, default="")
    lines = InvoiceLineInputSerializer(many=True, allow_empty=False, max_length=MAX_LINES)

    def validate(self, attrs: dict) -> dict:
        company, customer = attrs["company"], attrs["customer"]
        errors: dict = {}
        wrong = not_the_companys(customer, company)
        if wrong:
            errors["customer"] = [wrong]
        for name in ("issue_date", "due_date"):
            if name in attrs and not EARLIEST <= attrs[name] <= LATEST:
                errors[name] = [f"Give a date between {EARLIEST} and {LATEST}."]
        # As DRF reports a nested list: the failing lines by index.
        line_errors = {i: found for i, line in enumerate(attrs["lines"]) if (found := self._line_errors(line, company))}
        if line_errors:
            errors["lines"] = line_errors
        if errors:
            raise serializers.ValidationError(errors)
        attrs.setdefault("issue_date", company.today())
        attrs.setdefault("due_date", attrs["issue_date"] + datetime.timedelta(days=customer.payment_terms_days))
        if attrs["due_date"] < attrs["issue_date"]:
            raise serializers.ValidationError({"due_date": [f"It is before the issue date ({attrs['issue_date']})."]})
        return attrs

    @staticmethod
    def _line_errors(line: dict, company: Company) -> dict:
        errors = {}
        places = places_error(line["amount"], company.base_currency)
        if places:
            errors["amount"] = [places]
        account = income_account_error(line["income_account"], company)
        if account:
            errors["income_account"] = [account]
        return errors


# --- Invoices -------------------------------------------------------------------------------


class InvoiceFilter(CompanyFilterSet):
    customer = django_filters.ModelChoiceFilter(queryset=scoped(Customer))
    status = django_filters.ChoiceFilter(choices=InvoiceStatus.choices)
    source = django_filters.ChoiceFilter(choices=InvoiceSource.choices)
    cadence = django_filters.ChoiceFilter(choices=Cadence.choices)
    period_start = django_filters.DateFilter()
    number = django_filters.CharFilter()
    issued_from = django_filters.DateFilter(field_name="issue_date", lookup_expr="gte")
    issued_to = django_filters.DateFilter(field_name="issue_date", lookup_expr="lte")
    due_from = django_filters.DateFilter(field_name="due_date", lookup_expr="gte")
    due_to = django_filters.DateFilter(field_name="due_date", lookup_expr="lte")
    overdue = django_filters.BooleanFilter(
        method="filter_overdue", help_text="Open with something due after its due date, on overdue_on."
    )
    overdue_on = django_filters.DateFilter(
        method="given", help_text="The day overdue is judged on: the company's today (UTC's without company)."
    )

    class Meta:
        model = Invoice
        fields = ["company", "customer", "status", "source", "cadence", "period_start", "number"]

    def given(self, queryset, name, value):
        return queryset  # read by filter_overdue

    def filter_overdue(self, queryset, name, value):
        if value is None:
            return queryset
        day = self.form.cleaned_data.get("overdue_on")
        if day is None:
            company = self.form.cleaned_data.get("company")
            day = company.today() if company else timezone.now().date()
        overdue = Q(status=InvoiceStatus.OPEN, due_date__lt=day, due__gt=0)
        return queryset.filter(overdue if value else ~overdue)


class DocumentRenderer(renderers.BaseRenderer):
    """Names a document format for content negotiation; the view writes the bytes."""

    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class HTMLDocumentRenderer(DocumentRenderer):
    media_type = "text/html"
    format = "html"


class PDFDocumentRenderer(DocumentRenderer):
    media_type = "application/pdf"
    format = "pdf"


DOCUMENT_FORMATS = ("html", "pdf")


def document_response(request: Request, name: str, *, html, pdf) -> HttpResponse:
    """A printed document (``?format=html|pdf``, or by ``Accept``; PDF by default) from its
    ``html()`` or ``pdf()`` renderer. A bad format is a 400 in the API's error shape."""
    asked = request.query_params.get("format")
    if asked is not None and asked not in DOCUMENT_FORMATS:
        raise serializers.ValidationError({"format": [f"Choose from {', '.join(DOCUMENT_FORMATS)}."]})
    fmt = asked or (request.accepted_renderer.format if request.accepted_renderer.format in DOCUMENT_FORMATS else "pdf")
    if fmt == "html":
        response = HttpResponse(html(), content_type="text/html; charset=utf-8")
    else:
        response = HttpResponse(pdf(), content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{name}.{fmt}"'
    response["Vary"] = "Accept"
    return response


class DocumentErrorsAsJSON:
    """A viewset mixin: the ``document`` action's renderers only name formats, so its errors
    go out as JSON like everyone's."""

    def finalize_response(self, request, response, *args, **kwargs):
        if self.action == "document" and isinstance(response, Response):
            request.accepted_renderer = renderers.JSONRenderer()
            request.accepted_media_type = request.accepted_renderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


class InvoiceViewSet(DocumentErrorsAsJSON, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    """The caller's companies' invoices, newest issue first.

    POST creates a manual draft; ``finalise`` numbers, posts and sends a draft (409 once it
    is not one); DELETE removes a draft (409 otherwise: void an issued invoice instead).
    ``document`` is the invoice as HTML or PDF, chosen by ``?format=html|pdf`` or else the
    Accept header (text/html, application/pdf); PDF when neither names one.
    """

    permission_classes = [permissions.IsAuthenticated, MembersWrite]
    filterset_class = InvoiceFilter
    cursor_ordering = INVOICE_ORDER
    lookup_value_converter = "int"

    def get_queryset(self):
        invoices = Invoice.objects.for_user(self.request.user)
        return invoice_list(invoices) if self.action == "list" else invoice_detail(invoices)

    def get_serializer_class(self):
        return InvoiceSerializer if self.action == "list" else InvoiceDetailSerializer

    def answer(self, invoice: Invoice, code: int = status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().get(pk=invoice.pk)
        return Response(InvoiceDetailSerializer(fresh, context=self.get_serializer_context()).data, status=code)

    @extend_schema(request=InvoiceInputSerializer, responses={201: InvoiceDetailSerializer})
    def create(self, request: Request) -> Response:
        given = InvoiceInputSerializer(data=request.data, context=self.get_serializer_context())
        given.is_valid(raise_exception=True)
        data = dict(given.validated_data)
        invoice = manual.draft_invoice(data.pop("company"), data.pop("customer"), **data)
        return self.answer(invoice, status.HTTP_201_CREATED)

    def destroy(self, request: Request, pk=None) -> Response:
        invoice = self.get_object()
        try:
            with kept_by_others(f"Draft {invoice.pk}", "delete what refers to it first."):
                manual.delete_draft(invoice)
        except BillingStateError as exc:
            raise Conflict(str(exc)) from None
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=InvoiceDetailSerializer)
    @action(detail=True, methods=["post"])
    def finalise(self, request: Request, pk=None) -> Response:
        invoice = self.get_object()
        if invoice.status != InvoiceStatus.DRAFT:
            raise Conflict(f"Invoice {invoice.label} is {invoice.status}; only drafts are finalised.")
        with state_conflicts():
            done = finalising.finalise(invoice.company, [invoice.pk])
        if not done.invoices:
            raise Conflict(f"Invoice {invoice.pk} was finalised or deleted meanwhile.")
        return self.answer(invoice)

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=list(DOCUMENT_FORMATS))],
        responses={200: OpenApiResponse(OpenApiTypes.BINARY, description="text/html or application/pdf")},
    )
    @action(
        detail=True,
        methods=["get"],
        renderer_classes=[renderers.JSONRenderer, HTMLDocumentRenderer, PDFDocumentRenderer],
        content_negotiation_class=FileFormatNegotiation,
    )
    def document(self, request: Request, pk=None) -> HttpResponse:
        invoice = self.get_object()
        return document_response(
            request,
            invoice.number or f"draft-{invoice.pk}",
            html=lambda: documents.render_html(invoice),
            pdf=lambda: documents.render_pdf(invoice),
        )


# --- Invoice runs -----------------------------------------------------------------------------


class InvoiceRunSerializer(serializers.ModelSerializer):
    period = serializers.SerializerMethodField(help_text="2026-01, 2026-W03, 2026-Q1 or 2026.")
    total = serializers.SerializerMethodField(help_text="Invoiced, tax included.")
    run = serializers.SerializerMethodField(help_text="The job run: its status and counters.")

    class Meta:
        model = InvoiceRun
        fields = [
            "id",
            "company",
            "cadence",
            "period",
            "period_start",
            "period_end",
            "issue_date",
            "consolidate",
            "finalise",
            "enrolments",
            "created",
            "skipped",
            "notified",
            "total",
            "run",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_period(self, record: InvoiceRun) -> str:
        return periods.key(record.cadence, record.period_start)

    def get_total(self, record: InvoiceRun) -> str:
        return money(record.total, record.company.base_currency)

    def get_run(self, record: InvoiceRun) -> dict | None:
        return run_summary(record.job_run) if record.job_run_id else None


def run_summary(run: JobRun) -> dict:
    return {
        "id": run.pk,
        "status": run.status,
        "run_key": run.run_key,
        "business_date": run.business_date,
        "trigger": run.trigger,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "counts": {"processed": run.processed, "created": run.created, "skipped": run.skipped, "failed": run.failed},
        "chunks": {"total": run.chunks_total, "done": run.chunks_done} if run.chunks_total is not None else None,
        "error": run.error if run.status == RunStatus.FAILED else "",
    }


class InvoiceRunRequestSerializer(serializers.Serializer):
    company = CompanyField()
    cadence = serializers.ChoiceField(choices=Cadence.choices)
    period = serializers.CharField(max_length=10, help_text="2026-01 monthly, 2026-W03 weekly, 2026-Q1, 2026.")
    consolidate = serializers.BooleanField(default=True, help_text="One invoice per customer; off: per enrolment.")
    finalise = serializers.BooleanField(default=True, help_text="Number, post and send; off: leave drafts.")
    issue_date = serializers.DateField(required=False, help_text="The period's first day by default.")

    def validate(self, attrs: dict) -> dict:
        try:
            start = periods.parse_period(attrs["cadence"], attrs["period"])
        except ValueError as exc:
            raise serializers.ValidationError({"period": [str(exc)]}) from exc
        errors = {}
        if not EARLIEST <= start <= LATEST:
            errors["period"] = [f"Name a period between {EARLIEST.year} and {LATEST.year}."]
        if "issue_date" in attrs and not EARLIEST <= attrs["issue_date"] <= LATEST:
            errors["issue_date"] = [f"Give a date between {EARLIEST} and {LATEST}."]
        if errors:
            raise serializers.ValidationError(errors)
        attrs["period_start"] = start
        return attrs


class InvoiceRunFilter(CompanyFilterSet):
    cadence = django_filters.ChoiceFilter(choices=Cadence.choices)
    period_start = django_filters.DateFilter()

    class Meta:
        model = InvoiceRun
        fields = ["company", "cadence", "period_start"]


def request_state(run: JobRun) -> dict:
    """What ``POST billing/invoice-runs`` and the request's page answer about its run."""
    record = InvoiceRun.objects.filter(job_run=run).values_list("pk", flat=True).first()
    return {
        **run_summary(run),
        "run": run.pk,
        "job": run.job.code,
        "company": run.company_id,
        "invoice_run": record,
        "links": {"self": reverse("billing-invoice-run-request", args=[run.pk])},
    }


class InvoiceRunViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """The caller's companies' invoice runs, newest first, with their job runs' status and
    counters. POST asks for the period's run (see the module docstring)."""

    serializer_class = InvoiceRunSerializer
    permission_classes = [permissions.IsAuthenticated, MembersWrite]
    filterset_class = InvoiceRunFilter
    cursor_ordering = ("-created_at", "-pk")
    lookup_value_converter = "int"

    def get_queryset(self):
        return InvoiceRun.objects.for_user(self.request.user).select_related("company", "job_run")

    @extend_schema(request=InvoiceRunRequestSerializer, responses={202: OpenApiTypes.OBJECT, 200: OpenApiTypes.OBJECT})
    def create(self, request: Request) -> Response:
        asked = InvoiceRunRequestSerializer(data=request.data, context=self.get_serializer_context())
        asked.is_valid(raise_exception=True)
        data = asked.validated_data
        definition = JobDefinition.objects.filter(code=JOBS[Cadence(data["cadence"])], registered=True).first()
        if definition is None:
            raise Conflict(f"The {data['cadence']} invoice run is not installed; ask an operator to sync the jobs.")
        params = {"consolidate": data["consolidate"], "finalise": data["finalise"]}
        if "issue_date" in data:
            params["issue_date"] = data["issue_date"].isoformat()
        try:
            run, created = runs.request_run(
                definition,
                company=data["company"],
                business_date=data["period_start"],
                params=params,
                trigger=Trigger.API,
                user=request.user,
            )
        except ParamError as exc:
            raise serializers.ValidationError({name: [message] for name, message in exc.errors.items()}) from exc
        except runs.RunError as exc:
            raise Conflict(str(exc)) from exc
        body = {**request_state(run), "created": created}
        return Response(
            body,
            status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK,
            headers={"Location": body["links"]["self"]},
        )


class InvoiceRunRequestView(APIView):
    """A requested invoice run by its job run id: status and counters, and its billing
    record (``invoice_run``) once the job has started it."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, pk: int) -> Response:
        run = get_object_or_404(
            JobRun.objects.select_related("job").filter(
                job__code__in=list(JOBS.values()), company__in=Company.objects.for_user(request.user)
            ),
            pk=pk,
        )
        return Response(request_state(run))


routes = [
    ("billing/invoices", InvoiceViewSet, "billing-invoice"),
    ("billing/invoice-runs", InvoiceRunViewSet, "billing-invoice-run"),
]
urlpatterns = [
    path("billing/invoice-run-requests/<int:pk>", InvoiceRunRequestView.as_view(), name="billing-invoice-run-request"),
]
