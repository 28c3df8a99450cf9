"""Customers, fee structures (with their components) and enrolments over the API.

Everything is scoped to the caller's companies. What a row points at (a customer's fee
structure, a fee's income account) must be of the row's company: another company's
object is refused on its field. Rows that invoices or enrolments hold on to are not
deleted (409): deactivate them, or end the enrolment, instead.
"""

from __future__ import annotations

import copy
from decimal import Decimal

import django_filters
from django.db import IntegrityError, transaction
from django.db.models import DecimalField, ExpressionWrapper, F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django_filters.utils import translate_validation
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.common import (
    BillingMoney,
    RateField,
    income_account_error,
    kept_by_others,
    not_the_companys,
    places_error,
    state_conflicts,
)
from billing.api.invoices import INVOICE_ORDER, InvoiceFilter, InvoiceSerializer, invoice_list
from billing.models import (
    Cadence,
    CreditNote,
    Customer,
    Enrolment,
    FeeComponent,
    FeeStructure,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Payment,
)
from billing.models.invoices import POSTED_STATUSES
from billing.services import invoicing
from ledger import currencies
from ledger.api.common import (
    MONEY,
    CompanyField,
    CompanyFilterSet,
    CompanyImmutable,
    MembersWrite,
    ScopedPrimaryKeyRelatedField,
    money,
    scoped,
)
from ledger.models import Account
from ledger.services.periods import EARLIEST, LATEST

MAX_COMPONENTS = 50

# --- Customers -------------------------------------------------------------------------------


def with_balance(customers):
    """Each customer's balance in the same query: what its issued invoices still have due,
    less what its payments and credit notes have not allocated (a credit on account).
    Once every document is dated, this is its open items in billing.services.subledger."""
    amount = DecimalField(**MONEY)

    def summed(model, field: str, **conditions):
        rows = (
            model.objects.filter(customer=OuterRef("pk"), company=OuterRef("company"), **conditions)
            .order_by()
            .values("customer")
            .annotate(sum=Sum(field))
            .values("sum")
        )
        return Coalesce(Subquery(rows, output_field=amount), Value(0, output_field=amount), output_field=amount)

    return customers.annotate(
        balance=ExpressionWrapper(
            summed(Invoice, "due", status__in=POSTED_STATUSES)
            - summed(Payment, "unallocated")
            - summed(CreditNote, "unallocated"),
            output_field=amount,
        )
    )


class CustomerSerializer(CompanyImmutable, serializers.ModelSerializer):
    company = CompanyField()
    credit_limit = BillingMoney(min_value=0, allow_null=True, required=False, help_text="None: no limit.")
    balance = serializers.SerializerMethodField(
        help_text="Owed now: issued invoices' amounts due less unallocated payments and credits."
    )
    over_credit_limit = serializers.SerializerMethodField()

    class Meta:
        model = Customer
        fields = [
            "id",
            "company",
            "name",
            "email",
            "external_ref",
            "credit_limit",
            "payment_terms_days",
            "portal_user",
            "active",
            "balance",
            "over_credit_limit",
            "created_at",
            "updated_at",
        ]
        # A portal user sees the customer's invoices and notices: set by an operator in the admin.
        read_only_fields = ["portal_user", "created_at", "updated_at"]
        validators = []  # the external reference's uniqueness is checked in validate(), on its field

    def to_representation(self, customer: Customer) -> dict:
        data = super().to_representation(customer)
        data["credit_limit"] = money(customer.credit_limit, customer.company.base_currency)
        return data

    def get_balance(self, customer: Customer) -> str | None:
        return money(customer.balance, customer.company.base_currency)

    def get_over_credit_limit(self, customer: Customer) -> bool:
        return customer.credit_limit is not None and customer.balance > customer.credit_limit

    def validate(self, attrs: dict) -> dict:
        company = attrs.get("company") or self.instance.company
        limit = attrs.get("credit_limit")
        if limit is not None and places_error(limit, company.base_currency):
            raise serializers.ValidationError({"credit_limit": [places_error(limit, company.base_currency)]})
        ref = attrs.get("external_ref", self.instance.external_ref if self.instance else "")
        if ref and self._ref_taken(company, ref):
            raise serializers.ValidationError({"external_ref": [f"Another customer of {company.slug} has it."]})
        return attrs

    def _ref_taken(self, company, ref: str) -> bool:
        others = Customer.objects.filter(company=company, external_ref=ref)
        return (others.exclude(pk=self.instance.pk) if self.instance else others).exists()

    def save(self, **kwargs) -> Customer:
        try:
            with transaction.atomic():
                return super().save(**kwargs)
        except IntegrityError as exc:  # another request took the reference since validate()
            raise serializers.ValidationError({"external_ref": ["Another customer has it."]}) from exc


class CustomerFilter(CompanyFilterSet):
    search = django_filters.CharFilter(method="filter_search", help_text="In the name, email or external reference.")
    over_credit_limit = django_filters.BooleanFilter(method="filter_over_limit")

    class Meta:
        model = Customer
        fields = ["company", "active", "external_ref", "search", "over_credit_limit"]

    def filter_search(self, queryset, name, value):
        words = value.split()
        for word in words:
            queryset = queryset.filter(
                Q(name__icontains=word) | Q(email__icontains=word) | Q(external_ref__icontains=word)
            )
        return queryset

    def filter_over_limit(self, queryset, name, value):
        if value is None:
            return queryset
        over = Q(credit_limit__isnull=False, balance__gt=F("credit_limit"))
        return queryset.filter(over if value else ~over)


class CustomerViewSet(viewsets.ModelViewSet):
    """The caller's companies' customers by name, each with its balance. ``invoices`` lists
    a customer's invoices (newest first). A customer with invoices, payments or
    enrolments is not deleted (409): deactivate it."""

    serializer_class = CustomerSerializer
    permission_classes = [permissions.IsAuthenticated, MembersWrite]
    filterset_class = CustomerFilter
    lookup_value_converter = "int"

    @property
    def cursor_ordering(self):
        return INVOICE_ORDER if self.action == "invoices" else ("name", "pk")

    def get_queryset(self):
        return with_balance(Customer.objects.for_user(self.request.user).select_related("company"))

    def perform_create(self, serializer) -> None:
        serializer.save()
        serializer.instance = self.get_queryset().get(pk=serializer.instance.pk)  # with its balance

    perform_update = perform_create

    def perform_destroy(self, customer: Customer) -> None:
        with transaction.atomic(), kept_by_others(f"Customer {customer}", "deactivate it instead."):
            customer.delete()

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=InvoiceStatus.values)],
        responses=InvoiceSerializer(many=True),
    )
    @action(detail=True, methods=["get"], filter_backends=[])  # the customers' filters are not the invoices'
    def invoices(self, request: Request, pk=None) -> Response:
        customer = self.get_object()
        invoices = invoice_list(Invoice.objects.filter(customer=customer, company_id=customer.company_id))
        filters = InvoiceFilter(request.query_params, queryset=invoices, request=request)
        if not filters.is_valid():
            raise translate_validation(filters.errors)
        page = self.paginate_queryset(filters.qs)
        return self.get_paginated_response(
            InvoiceSerializer(page, many=True, context=self.get_serializer_context()).data
        )


# --- Fee structures ----------------------------------------------------------------------------


class ComponentSerializer(serializers.ModelSerializer):
    amount = BillingMoney(min_value=0)

    class Meta:
        model = FeeComponent
        fields = ["id", "position", "name", "amount"]
        read_only_fields = ["id", "position"]


class FeeStructureSerializer(CompanyImmutable, serializers.ModelSerializer):
    """Given ``components`` replace the fee's; they must add up to its amount."""

    company = CompanyField()
    amount = BillingMoney(min_value=0, help_text="Per period, before tax.")
    currency = serializers.ChoiceField(
        choices=currencies.CHOICES, required=False, help_text="The company's base currency, the only one it bills in."
    )
    tax_rate = RateField(required=False, help_text="Percent, as a string.")
    income_account = ScopedPrimaryKeyRelatedField(
        queryset=Account.objects.all(), allow_null=True, required=False, help_text="The sales account if empty."
    )
    components = ComponentSerializer(many=True, required=False, max_length=MAX_COMPONENTS)

    class Meta:
        model = FeeStructure
        fields = [
            "id",
            "company",
            "code",
            "name",
            "description",
            "amount",
            "currency",
            "cadence",
            "tax_rate",
            "income_account",
            "active",
            "components",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]
        validators = []  # the code's uniqueness is checked in validate(), on its field

    def to_representation(self, fee: FeeStructure) -> dict:
        data = super().to_representation(fee)
        data["amount"] = money(fee.amount, fee.currency)
        for row in data["components"]:
            row["amount"] = money(Decimal(row["amount"]), fee.currency)
        return data

    def validate(self, attrs: dict) -> dict:
        current = (
            {name: getattr(self.instance, name) for name in ("company", "amount", "code")} if self.instance else {}
        )
        values = {**current, **attrs}
        company = values["company"]
        errors: dict = {}
        if self.instance is None:
            attrs.setdefault("currency", company.base_currency)
        if attrs.get("currency", company.base_currency) != company.base_currency:
            errors["currency"] = [f"{company.slug}'s books are in {company.base_currency}; bill in it."]
        places = places_error(values["amount"], company.base_currency)
        if places:
            errors["amount"] = [places]
        account = income_account_error(attrs.get("income_account"), company)
        if account:
            errors["income_account"] = [account]
        components = attrs.get("components")
        if components is None and self.instance is not None:
            components = [{"amount": c.amount} for c in self.instance.components.all()]
        if components:
            total = sum(c["amount"] for c in components)
            if total != values["amount"]:
                given, amount = money(total, company.base_currency), money(values["amount"], company.base_currency)
                errors["components"] = [f"They add up to {given}, not the amount {amount}."]
            odd = {
                i: message
                for i, c in enumerate(components)
                if (message := places_error(c["amount"], company.base_currency))
            }
            if odd:  # as DRF reports a nested list: the failing components by index
                errors["components"] = {i: {"amount": [message]} for i, message in odd.items()}
        others = FeeStructure.objects.filter(company=company, code=values["code"])
        if (others.exclude(pk=self.instance.pk) if self.instance else others).exists():
            errors["code"] = [f"{company.slug} has a fee structure {values['code']}."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    def create(self, validated: dict) -> FeeStructure:
        components = validated.pop("components", [])
        fee = FeeStructure.objects.create(**validated)
        self._write_components(fee, components)
        return fee

    def update(self, fee: FeeStructure, validated: dict) -> FeeStructure:
        components = validated.pop("components", None)
        for name, value in validated.items():
            setattr(fee, name, value)
        fee.save()
        if components is not None:
            fee.components.all().delete()
            self._write_components(fee, components)
        return fee

    @staticmethod
    def _write_components(fee: FeeStructure, components: list[dict]) -> None:
        FeeComponent.objects.bulk_create(
            FeeComponent(fee_structure=fee, position=position, name=c["name"], amount=c["amount"])
            for position, c in enumerate(components)
        )

    def save(self, **kwargs) -> FeeStructure:
        try:
            with transaction.atomic():
                return super().save(**kwargs)
        except IntegrityError as exc:  # another request took the code since validate()
            raise serializers.ValidationError({"code": ["Another fee structure has it."]}) from exc


class FeeStructureFilter(CompanyFilterSet):
    class Meta:
        model = FeeStructure
        fields = ["company", "code", "cadence", "active"]


class FeeStructureViewSet(viewsets.ModelViewSet):
    """The caller's companies' fee structures by code, with their components. One that
    enrolments or invoice lines hold is not deleted (409): deactivate it."""

    serializer_class = FeeStructureSerializer
    permission_classes = [permissions.IsAuthenticated, MembersWrite]
    filterset_class = FeeStructureFilter
    cursor_ordering = ("code", "pk")
    lookup_value_converter = "int"

    def get_queryset(self):
        return FeeStructure.objects.for_user(self.request.user).prefetch_related("components")

    def perform_update(self, serializer) -> None:
        serializer.save()
        serializer.instance = self.get_queryset().get(pk=serializer.instance.pk)  # the new components

    def perform_destroy(self, fee: FeeStructure) -> None:
        with transaction.atomic(), kept_by_others(f"Fee structure {fee.code}", "deactivate it instead."):
            fee.delete()


# --- Enrolments ---------------------------------------------------------------------------------


class EnrolmentSerializer(CompanyImmutable, serializers.ModelSerializer):
    """A customer on a fee structure. With ``invoice_on_enrolment`` its current period is
    invoiced as it is created; the answer's ``invoices`` are what that made."""

    company = CompanyField()
    customer = ScopedPrimaryKeyRelatedField(queryset=Customer.objects.all())
    fee_structure = ScopedPrimaryKeyRelatedField(queryset=FeeStructure.objects.all())

    class Meta:
        model = Enrolment
        fields = [
            "id",
            "company",
            "customer",
            "fee_structure",
            "start_date",
            "end_date",
            "consolidate",
            "invoice_on_enrolment",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def validate(self, attrs: dict) -> dict:
        if self.instance is None:
            values = attrs
        else:
            candidate = copy.copy(self.instance)
            for name, value in attrs.items():
                setattr(candidate, name, value)
            values = {name: getattr(candidate, name) for name in ("company", "customer", "fee_structure")}
            values.update(start_date=candidate.start_date, end_date=candidate.end_date)
        company = values["company"]
        errors = {}
        for name in ("customer", "fee_structure"):
            wrong = not_the_companys(values[name], company)
            if wrong:
                errors[name] = [wrong]
        for name in ("start_date", "end_date"):
            day = values.get(name)
            if day is not None and not EARLIEST <= day <= LATEST:
                errors[name] = [f"Give a date between {EARLIEST} and {LATEST}."]
        end, start = values.get("end_date"), values["start_date"]
        if end is not None and start is not None and end < start and "end_date" not in errors:
            errors["end_date"] = [f"It is before the start ({start})."]
        if self.instance is not None:
            errors.update(self._billed_changes(attrs))
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    def _billed_changes(self, attrs: dict) -> dict:
        """A billed enrolment's invoices name its customer and fee: they stay."""
        moved = [
            name
            for name in ("customer", "fee_structure")
            if name in attrs and attrs[name].pk != getattr(self.instance, f"{name}_id")
        ]
        if moved and InvoiceLine.objects.filter(enrolment=self.instance).exists():
            return {name: ["It has been invoiced; end it and enrol anew."] for name in moved}
        return {}


class EnrolmentFilter(CompanyFilterSet):
    customer = django_filters.ModelChoiceFilter(queryset=scoped(Customer))
    fee_structure = django_filters.ModelChoiceFilter(queryset=scoped(FeeStructure))
    cadence = django_filters.ChoiceFilter(field_name="fee_structure__cadence", choices=Cadence.choices)
    active_on = django_filters.DateFilter(method="filter_active_on", help_text="Enrolled on this day.")

    class Meta:
        model = Enrolment
        fields = ["company", "customer", "fee_structure", "cadence", "active_on"]

    def filter_active_on(self, queryset, name, value):
        return queryset.filter(Q(start_date__lte=value), Q(end_date__isnull=True) | Q(end_date__gte=value))


class EnrolmentViewSet(viewsets.ModelViewSet):
    """The caller's companies' enrolments. One that has been invoiced is not deleted (409):
    set its end date instead."""

    serializer_class = EnrolmentSerializer
    permission_classes = [permissions.IsAuthenticated, MembersWrite]
    filterset_class = EnrolmentFilter
    cursor_ordering = ("pk",)
    lookup_value_converter = "int"

    def get_queryset(self):
        return Enrolment.objects.for_user(self.request.user)

    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # The enrolment and its first invoice together: a refused invoice (no sales account,
        # a closed period) leaves no enrolment that the next run would bill instead.
        with transaction.atomic(), state_conflicts():
            enrolment = serializer.save()
            made = invoicing.invoice_enrolment(enrolment).invoices if enrolment.invoice_on_enrolment else []
        return Response({**serializer.data, "invoices": made}, status=status.HTTP_201_CREATED)

    def perform_destroy(self, enrolment: Enrolment) -> None:
        with transaction.atomic(), kept_by_others(f"Enrolment {enrolment.pk}", "set its end date instead."):
            enrolment.delete()


routes = [
    ("billing/customers", CustomerViewSet, "billing-customer"),
    ("billing/fee-structures", FeeStructureViewSet, "billing-fee-structure"),
    ("billing/enrolments", EnrolmentViewSet, "billing-enrolment"),
]
urlpatterns: list = []
