"""Customer statements and credit limit breaches over the API, read-only: the sales-ledger
jobs make them (SL_STATEMENT_GENERATION, SL_CREDIT_LIMIT_CHECK).

``GET receivables/statements`` lists the caller's companies' statements, newest date
first (``?company=``, ``?customer=``, ``?statement_date=``, ``?date_from=``,
``?date_to=``); ``…/<id>`` adds the open items; ``…/<id>/document?format=html|pdf`` is the
statement as a page or an A4 PDF, made from the stored snapshot, so it shows what was sent.
``GET receivables/credit-limit-breaches`` lists breaches (``?open=true`` for the customers
still over their limit).
"""

from __future__ import annotations

import django_filters
from django.db.models import Q
from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, renderers, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request

from billing.api.invoices import (
    DOCUMENT_FORMATS,
    DocumentErrorsAsJSON,
    HTMLDocumentRenderer,
    PDFDocumentRenderer,
    document_response,
)
from billing.models import Customer
from config.api import FileFormatNegotiation
from ledger.api.common import CompanyFilterSet, money, scoped
from receivables.models.statements import CreditLimitBreach, Statement
from receivables.services import statements

# --- Statements ------------------------------------------------------------------------------


class StatementSerializer(serializers.ModelSerializer):
    """A statement without its open items, as lists show it."""

    number = serializers.CharField(read_only=True)
    balance = serializers.SerializerMethodField(help_text="In the currency's places.")
    links = serializers.SerializerMethodField()

    class Meta:
        model = Statement
        fields = [
            "id",
            "company",
            "customer",
            "customer_name",
            "number",
            "statement_date",
            "currency",
            "balance",
            "aging",
            "notified_at",
            "created_at",
            "links",
        ]
        read_only_fields = fields

    def get_balance(self, statement: Statement) -> str:
        return money(statement.balance, statement.currency)

    def get_links(self, statement: Statement) -> dict:
        document = reverse("receivables-statement-document", args=[statement.pk])
        return {
            "self": reverse("receivables-statement-detail", args=[statement.pk]),
            "html": f"{document}?format=html",
            "pdf": f"{document}?format=pdf",
        }


class StatementDetailSerializer(StatementSerializer):
    """A statement with its open items: kind, id, number, date, due_date, total, amount
    (what is open; a credit's is negative) and bucket."""

    class Meta(StatementSerializer.Meta):
        fields = [*StatementSerializer.Meta.fields[:-1], "items", "job_run", "links"]
        read_only_fields = fields


class StatementFilter(CompanyFilterSet):
    customer = django_filters.ModelChoiceFilter(queryset=scoped(Customer))
    statement_date = django_filters.DateFilter()
    date_from = django_filters.DateFilter(field_name="statement_date", lookup_expr="gte")
    date_to = django_filters.DateFilter(field_name="statement_date", lookup_expr="lte")

    class Meta:
        model = Statement
        fields = ["company", "customer", "statement_date"]


class StatementViewSet(DocumentErrorsAsJSON, viewsets.ReadOnlyModelViewSet):
    """The caller's companies' customer statements, newest date first.

    ``document`` is the statement as HTML or PDF, chosen by ``?format=html|pdf`` or else
    the Accept header (text/html, application/pdf); PDF when neither names one.
    """

    permission_classes = [permissions.IsAuthenticated]
    filterset_class = StatementFilter
    cursor_ordering = ("-statement_date", "-pk")
    lookup_value_converter = "int"

    def get_queryset(self):
        rows = Statement.objects.for_user(self.request.user)
        if self.action == "list":
            return rows.defer("items")  # a statement's items are many; the list shows none
        if self.action == "document":
            return rows.select_related("company", "customer")
        return rows

    def get_serializer_class(self):
        return StatementSerializer if self.action == "list" else StatementDetailSerializer

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
        statement = self.get_object()
        return document_response(
            request,
            statement.number,
            html=lambda: statements.render_html(statement),
            pdf=lambda: statements.render_pdf(statement),
        )


# --- Credit limit breaches ----------------------------------------------------------------------


class CreditLimitBreachSerializer(serializers.ModelSerializer):
    customer_name = serializers.CharField(source="customer.name", read_only=True)
    open = serializers.BooleanField(source="is_open", read_only=True)
    credit_limit = serializers.SerializerMethodField(help_text="As it was when found over.")
    balance = serializers.SerializerMethodField(help_text="When found over.")
    over_by = serializers.SerializerMethodField()

    class Meta:
        model = CreditLimitBreach
        fields = [
            "id",
            "company",
            "customer",
            "customer_name",
            "since",
            "cleared_on",
            "open",
            "currency",
            "credit_limit",
            "balance",
            "over_by",
            "notified_at",
            "created_at",
        ]
        read_only_fields = fields

    def get_credit_limit(self, breach: CreditLimitBreach) -> str:
        return money(breach.credit_limit, breach.currency)

    def get_balance(self, breach: CreditLimitBreach) -> str:
        return money(breach.balance, breach.currency)

    def get_over_by(self, breach: CreditLimitBreach) -> str:
        return money(breach.over_by, breach.currency)


class CreditLimitBreachFilter(CompanyFilterSet):
    customer = django_filters.ModelChoiceFilter(queryset=scoped(Customer))
    open = django_filters.BooleanFilter(method="filter_open", help_text="Still over the limit (not cleared).")
    since_from = django_filters.DateFilter(field_name="since", lookup_expr="gte")
    since_to = django_filters.DateFilter(field_name="since", lookup_expr="lte")

    class Meta:
        model = CreditLimitBreach
        fields = ["company", "customer"]

    def filter_open(self, queryset, name, value):
        if value is None:
            return queryset
        return queryset.filter(Q(cleared_on__isnull=value))


class CreditLimitBreachViewSet(viewsets.ReadOnlyModelViewSet):
    """The caller's companies' credit limit breaches, latest first."""

    permission_classes = [permissions.IsAuthenticated]
    serializer_class = CreditLimitBreachSerializer
    filterset_class = CreditLimitBreachFilter
    cursor_ordering = ("-since", "-pk")
    lookup_value_converter = "int"

    def get_queryset(self):
        return CreditLimitBreach.objects.for_user(self.request.user).select_related("customer")


routes = [
    ("receivables/statements", StatementViewSet, "receivables-statement"),
    ("receivables/credit-limit-breaches", CreditLimitBreachViewSet, "receivables-credit-limit-breach"),
]
urlpatterns: list = []
