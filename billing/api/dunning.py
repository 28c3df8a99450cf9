"""Dunning over the API: a company's levels (``billing/dunning-levels``), the notices the
overdue check made (``billing/overdue-notices``, read-only: the jobs write them) and the
invoices overdue on a date (``billing/overdue-invoices``)."""

from __future__ import annotations

import copy

import django_filters
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, permissions, serializers, viewsets

from billing.api.common import BillingMoney
from billing.kinds import PAYMENT_REMINDER
from billing.models import Customer, DunningLevel, Invoice, NoticeStatus, OverdueNotice
from billing.models.customers import RATE
from billing.models.dunning import default_channels
from billing.services import dunning, overdue
from config.api import Conflict
from ledger.api.common import (
    CompanyField,
    CompanyFilterSet,
    CompanyImmutable,
    CompanyMoney,
    CompanyQuery,
    MembersWrite,
    MoneyField,
    money,
    scoped,
)
from notifications.models import Channel

# --- Levels ------------------------------------------------------------------------------------


class DunningLevelSerializer(CompanyImmutable, CompanyMoney, serializers.ModelSerializer):
    company = CompanyField()
    days_overdue = serializers.IntegerField(min_value=1, max_value=3650)
    kind = serializers.CharField(
        max_length=60,
        required=False,
        help_text="The notification kind sent (lower-case letters, digits, underscores); its template is the letter.",
    )
    channels = serializers.ListField(
        child=serializers.ChoiceField(choices=Channel.choices),
        allow_empty=False,
        required=False,
        help_text="in_app, email, webhook.",
    )
    fee = BillingMoney(min_value=0, required=False, help_text='A string ("10.00"), in the company\'s currency.')
    interest_rate = MoneyField(
        **RATE, min_value=0, max_value=100, required=False, help_text='Percent a year, a string ("8.5").'
    )
    money_fields = ("fee",)

    class Meta:
        model = DunningLevel
        fields = ["id", "company", "days_overdue", "name", "kind", "channels", "fee", "interest_rate", "active"]
        validators = []  # the days' uniqueness is checked in validate(), on the field at fault

    def validate(self, attrs: dict) -> dict:
        if self.instance is None:
            level = DunningLevel(**attrs)
            level.kind = attrs.get("kind", PAYMENT_REMINDER)
            level.channels = attrs.get("channels", default_channels())
        else:
            level = copy.copy(self.instance)
            for name, value in attrs.items():
                setattr(level, name, value)
        if "channels" in attrs:
            attrs["channels"] = list(dict.fromkeys(attrs["channels"]))
        errors = dunning.level_errors(level.company, kind=level.kind, channels=level.channels, fee=attrs.get("fee"))
        errors |= taken(level)
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    def save(self, **kwargs) -> DunningLevel:
        try:
            with transaction.atomic():
                return super().save(**kwargs)
        except IntegrityError as exc:
            # Another request took the days between validate() and the write.
            level = self.instance or DunningLevel(**self.validated_data)
            raise serializers.ValidationError(
                taken(level) or {"non_field_errors": ["The level changed meanwhile; try again."]}
            ) from exc


def taken(level: DunningLevel) -> dict[str, list[str]]:
    others = DunningLevel.objects.filter(company_id=level.company_id, days_overdue=level.days_overdue)
    if others.exclude(pk=level.pk).exists():
        return {"days_overdue": [f"The company has a level at {level.days_overdue} days already."]}
    return {}


class DunningLevelFilter(CompanyFilterSet):
    class Meta:
        model = DunningLevel
        fields = ["company", "active"]


class DunningLevelViewSet(viewsets.ModelViewSet):
    """The levels a company chases overdue invoices at: at ``days_overdue`` days an invoice
    gets the level's letter (``kind`` on ``channels``) and is charged its fee and interest.
    A level with notices is not deleted (409): deactivate it."""

    serializer_class = DunningLevelSerializer
    permission_classes = [permissions.IsAuthenticated, MembersWrite]
    filterset_class = DunningLevelFilter
    cursor_ordering = ("days_overdue", "pk")
    lookup_value_converter = "int"

    def get_queryset(self):
        return DunningLevel.objects.for_user(self.request.user).select_related("company")

    def perform_destroy(self, level: DunningLevel) -> None:
        if level.notices.exists():
            raise Conflict(f"The level {level} has notices; deactivate it instead.")
        try:
            with transaction.atomic():
                level.delete()
        except (ProtectedError, IntegrityError) as exc:
            raise Conflict(f"The level {level} gained notices; deactivate it instead.") from exc


# --- Notices -----------------------------------------------------------------------------------


class OverdueNoticeSerializer(CompanyMoney, serializers.ModelSerializer):
    invoice_number = serializers.CharField(source="invoice.number", read_only=True)
    customer = serializers.IntegerField(source="invoice.customer_id", read_only=True)
    level_name = serializers.CharField(source="level.name", default=None, read_only=True)
    notification = serializers.IntegerField(source="notification_id", read_only=True)
    money_fields = ("amount_due", "fee", "interest")

    class Meta:
        model = OverdueNotice
        fields = [
            "id",
            "company",
            "invoice",
            "invoice_number",
            "customer",
            "level",
            "level_name",
            "level_days",
            "days_overdue",
            "amount_due",
            "business_date",
            "status",
            "notification",
            "fee",
            "interest",
            "fee_invoice",
            "created_at",
            "sent_at",
        ]
        read_only_fields = fields


class OverdueNoticeFilter(CompanyFilterSet):
    status = django_filters.ChoiceFilter(choices=NoticeStatus.choices)
    invoice = django_filters.ModelChoiceFilter(queryset=scoped(Invoice))
    customer = django_filters.ModelChoiceFilter(field_name="invoice__customer", queryset=scoped(Customer))
    level = django_filters.ModelChoiceFilter(queryset=scoped(DunningLevel))

    class Meta:
        model = OverdueNotice
        fields = ["company", "status", "invoice", "customer", "level", "business_date"]


class OverdueNoticeViewSet(viewsets.ReadOnlyModelViewSet):
    """A notice per invoice per dunning level reached: pending until SL_OVERDUE_REMINDERS
    sends it (with the fee and interest charged) or cancels it (the invoice was settled
    first, or a higher level of it was pending too). Newest first."""

    serializer_class = OverdueNoticeSerializer
    filterset_class = OverdueNoticeFilter
    cursor_ordering = ("-business_date", "-pk")
    lookup_value_converter = "int"

    def get_queryset(self):
        return OverdueNotice.objects.for_user(self.request.user).select_related("company", "invoice", "level")


# --- Overdue invoices --------------------------------------------------------------------------


class OverdueQuery(CompanyQuery):
    on = serializers.DateField(required=False, help_text="The business date; the company's today by default.")

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        attrs.setdefault("on", attrs["company"].today())
        return attrs


class OverdueInvoiceSerializer(serializers.ModelSerializer):
    customer_name = serializers.CharField(source="customer.name", read_only=True)
    days_overdue = serializers.SerializerMethodField()
    total = serializers.SerializerMethodField()
    due = serializers.SerializerMethodField()
    noticed_level = serializers.IntegerField(
        source="noticed", read_only=True, help_text="Days of the highest dunning level noticed; null: none yet."
    )

    class Meta:
        model = Invoice
        fields = [
            "id",
            "number",
            "customer",
            "customer_name",
            "source",
            "issue_date",
            "due_date",
            "days_overdue",
            "currency",
            "total",
            "due",
            "noticed_level",
        ]
        read_only_fields = fields

    def get_days_overdue(self, invoice: Invoice) -> int:
        return invoice.days_overdue(self.context["on"])

    @extend_schema_field(OpenApiTypes.STR)
    def get_total(self, invoice: Invoice) -> str | None:
        return money(invoice.total, invoice.currency)

    @extend_schema_field(OpenApiTypes.STR)
    def get_due(self, invoice: Invoice) -> str | None:
        return money(invoice.due, invoice.currency)


class OverdueInvoicesView(generics.ListAPIView):
    """The company's invoices overdue on ``on`` (open, something due, due before it),
    oldest due first, with their days overdue and the highest dunning level noticed.
    Dunning's own fee invoices are listed too (``source`` "dunning"), though not dunned."""

    serializer_class = OverdueInvoiceSerializer
    cursor_ordering = ("due_date", "pk")
    filter_backends: list = []

    @extend_schema(parameters=[OverdueQuery])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def query(self) -> dict:
        if not hasattr(self, "_query"):
            query = OverdueQuery(data=self.request.query_params, context={"request": self.request})
            query.is_valid(raise_exception=True)
            self._query = query.validated_data
        return self._query

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Invoice.objects.none()
        query = self.query()
        return (
            overdue.overdue_invoices(query["company"], query["on"])
            .select_related("customer")
            .annotate(noticed=overdue.highest_notice())
        )

    def get_serializer_context(self) -> dict:
        context = super().get_serializer_context()
        if not getattr(self, "swagger_fake_view", False):
            context["on"] = self.query()["on"]
        return context


routes = [
    ("billing/dunning-levels", DunningLevelViewSet, "dunning-level"),
    ("billing/overdue-notices", OverdueNoticeViewSet, "overdue-notice"),
]
urlpatterns = [path("billing/overdue-invoices", OverdueInvoicesView.as_view(), name="billing-overdue-invoices")]
