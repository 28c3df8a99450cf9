"""Recurring templates over the API (seed 001): CRUD, pause / resume / cancel, the history
of what each generated, what is coming up, and generate-all by hand. Every check is the
service's (billing.services.recurring); this module turns requests into its calls."""

from __future__ import annotations

import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.common import BillingMoney
from billing.errors import BillingStateError
from billing.models import (
    Customer,
    Frequency,
    Generates,
    RecurringGeneration,
    RecurringTemplate,
    TemplateStatus,
)
from billing.services import recurring
from config.api import Conflict
from ledger import currencies
from ledger.api.common import (
    CompanyField,
    CompanyFilterSet,
    CompanyImmutable,
    CompanyMoney,
    CompanyQuery,
    MembersWrite,
    ScopedPrimaryKeyRelatedField,
    money,
    scoped,
)
from ledger.models import Account

# --- Templates ------------------------------------------------------------------------------


class TemplateSerializer(CompanyMoney, CompanyImmutable, serializers.ModelSerializer):
    """A template in and out. ``status``, ``next_generation_date`` and the counts are the
    service's: they move through the actions and generation, not through a PATCH."""

    money_fields = ("amount",)

    company = CompanyField()
    amount = BillingMoney(help_text='Before tax, as a string ("120.00").')
    currency = serializers.ChoiceField(
        choices=currencies.CHOICES, required=False, help_text="The company's currency, the only one allowed."
    )
    customer = ScopedPrimaryKeyRelatedField(
        queryset=Customer.objects.all(), allow_null=True, required=False, help_text="An invoice template's customer."
    )
    customer_name = serializers.CharField(source="customer.name", default=None, read_only=True)
    income_account = ScopedPrimaryKeyRelatedField(
        queryset=Account.objects.all(),
        allow_null=True,
        required=False,
        help_text="An invoice template's income account; the company's sales account when empty.",
    )
    debit_account = ScopedPrimaryKeyRelatedField(queryset=Account.objects.all(), allow_null=True, required=False)
    credit_account = ScopedPrimaryKeyRelatedField(queryset=Account.objects.all(), allow_null=True, required=False)

    class Meta:
        model = RecurringTemplate
        fields = [
            "id",
            "company",
            "name",
            "description",
            "frequency",
            "amount",
            "currency",
            "generates",
            "customer",
            "customer_name",
            "tax_rate",
            "income_account",
            "debit_account",
            "credit_account",
            "auto_generate",
            "days_ahead",
            "start_date",
            "end_date",
            "max_occurrences",
            "status",
            "next_generation_date",
            "total_generated",
            "last_generated_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "status",
            "next_generation_date",
            "total_generated",
            "last_generated_at",
            "created_at",
            "updated_at",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance is not None:
            self.fields["company"].required = False

    def create(self, validated_data: dict) -> RecurringTemplate:
        return recurring.save_template(RecurringTemplate(**validated_data))

    def update(self, template: RecurringTemplate, validated_data: dict) -> RecurringTemplate:
        for name, value in validated_data.items():
            setattr(template, name, value)
        try:
            return recurring.save_template(template)
        except BillingStateError as exc:
            raise Conflict(str(exc)) from exc


class TemplateFilter(CompanyFilterSet):
    status = django_filters.ChoiceFilter(choices=TemplateStatus.choices)
    generates = django_filters.ChoiceFilter(choices=Generates.choices)
    frequency = django_filters.ChoiceFilter(choices=Frequency.choices)
    customer = django_filters.ModelChoiceFilter(queryset=scoped(Customer))

    class Meta:
        model = RecurringTemplate
        fields = ["company", "status", "generates", "frequency", "customer", "auto_generate"]


class GenerationSerializer(serializers.ModelSerializer):
    invoice_number = serializers.CharField(source="invoice.number", default=None, read_only=True)

    class Meta:
        model = RecurringGeneration
        fields = [
            "id",
            "occurrence",
            "occurrence_date",
            "manual",
            "invoice",
            "invoice_number",
            "journal_entry",
            "created_at",
        ]
        read_only_fields = fields


class GenerateAllSerializer(serializers.Serializer):
    company = CompanyField(help_text="The company whose due occurrences to generate now.")


class UpcomingQuery(CompanyQuery):
    days = serializers.IntegerField(
        min_value=1, max_value=recurring.MAX_DAYS_AHEAD, default=7, help_text="How many days ahead, from today."
    )
    limit = serializers.IntegerField(min_value=1, max_value=recurring.UPCOMING_LIMIT, default=200)


class RecurringTemplateViewSet(viewsets.ModelViewSet):
    """Recurring templates by name. A new one is active and generates from its start date
    (past occurrences are caught up). A completed or cancelled template no longer changes
    (409), and one that has generated is cancelled rather than deleted (409). Resuming skips
    the occurrences missed while paused."""

    serializer_class = TemplateSerializer
    permission_classes = [permissions.IsAuthenticated, MembersWrite]
    filterset_class = TemplateFilter
    lookup_value_converter = "int"

    @property
    def cursor_ordering(self) -> tuple[str, ...]:
        return ("-occurrence_date", "-pk") if self.action == "history" else ("name", "pk")

    def get_queryset(self):
        return RecurringTemplate.objects.for_user(self.request.user).select_related("company", "customer")

    def perform_destroy(self, template: RecurringTemplate) -> None:
        try:
            recurring.delete_template(template)
        except BillingStateError as exc:
            raise Conflict(str(exc)) from exc

    def _move(self, service) -> Response:
        template = self.get_object()
        try:
            service(template)
        except BillingStateError as exc:
            raise Conflict(str(exc)) from exc
        return Response(self.get_serializer(self.get_queryset().get(pk=template.pk)).data)

    @extend_schema(request=None, responses=TemplateSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk=None) -> Response:
        return self._move(recurring.pause)

    @extend_schema(request=None, responses=TemplateSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk=None) -> Response:
        return self._move(recurring.resume)

    @extend_schema(request=None, responses=TemplateSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk=None) -> Response:
        return self._move(recurring.cancel)

    @extend_schema(request=None, responses=GenerationSerializer(many=True))
    @action(detail=True, methods=["get"])
    def history(self, request: Request, pk=None) -> Response:
        """What the template generated, newest occurrence first."""
        template = self.get_object()
        rows = RecurringGeneration.objects.filter(template=template).select_related("invoice")
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(GenerationSerializer(page, many=True).data)

    @extend_schema(request=GenerateAllSerializer, responses=OpenApiTypes.OBJECT)
    @action(detail=False, methods=["post"], url_path="generate-all", url_name="generate-all")
    def generate_all(self, request: Request) -> Response:
        """Generate now what the hourly job would, for the templates with auto_generate off
        too. Occurrences the books refuse are reported by template; the rest are generated."""
        given = GenerateAllSerializer(data=request.data, context=self.get_serializer_context())
        given.is_valid(raise_exception=True)
        outcome = recurring.generate_all(given.validated_data["company"])
        return Response(
            {
                "templates": outcome.templates,
                "created": outcome.created,
                "skipped": outcome.skipped,
                "failed": outcome.failed,
                "completed": outcome.completed,
                "invoices": outcome.invoices,
                "journal_entries": outcome.entries,
                "errors": {str(pk): reasons for pk, reasons in sorted(outcome.errors.items())},
            }
        )

    @extend_schema(parameters=[UpcomingQuery], responses=OpenApiTypes.OBJECT)
    @action(detail=False, methods=["get"])
    def upcoming(self, request: Request) -> Response:
        """The active templates' occurrences still to generate, dated up to ``days`` from the
        company's today (due ones not yet generated included), by date. ``generate_on`` is
        when the hourly job makes it, null for a template generated by hand only."""
        query = UpcomingQuery(data=request.query_params, context={"request": request})
        query.is_valid(raise_exception=True)
        company, days, limit = (query.validated_data[name] for name in ("company", "days", "limit"))
        today = company.today()
        items, truncated = recurring.upcoming(company, days, today=today, limit=limit)
        currency = company.base_currency
        return Response(
            {
                "company": company.pk,
                "today": today,
                "until": today + days * recurring.DAY,
                "truncated": truncated,
                "occurrences": [
                    {
                        "template": item.template.pk,
                        "name": item.template.name,
                        "generates": item.template.generates,
                        "occurrence": item.occurrence,
                        "date": item.date,
                        "generate_on": item.generate_on,
                        "amount": money(item.template.amount, currency),
                        "currency": currency,
                        "customer": item.template.customer_id,
                        "customer_name": item.template.customer.name if item.template.customer_id else None,
                    }
                    for item in items
                ],
            }
        )


routes = [("billing/recurring-templates", RecurringTemplateViewSet, "recurring-template")]
urlpatterns: list = []
