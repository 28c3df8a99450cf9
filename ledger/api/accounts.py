"""The chart of accounts over the API, and the fiscal years and periods it posts into."""

from __future__ import annotations

import copy

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import Conflict
from ledger.api.common import (
    CompanyField,
    CompanyFilterSet,
    CompanyImmutable,
    MembersWrite,
    ScopedPrimaryKeyRelatedField,
    scoped,
)
from ledger.errors import LedgerStateError
from ledger.models import Account, AccountRole, FiscalYear, Period, PeriodStatus
from ledger.models.accounts import NORMAL_BALANCE, AccountType
from ledger.services import periods

# --- Accounts ----------------------------------------------------------------------------


class AccountSerializer(CompanyImmutable, serializers.ModelSerializer):
    company = CompanyField()
    parent = ScopedPrimaryKeyRelatedField(queryset=Account.objects.all(), allow_null=True, required=False)
    sign = serializers.IntegerField(read_only=True, help_text="+1 for a debit normal balance, -1 for a credit one.")

    class Meta:
        model = Account
        fields = [
            "id",
            "company",
            "code",
            "name",
            "type",
            "normal_balance",
            "sign",
            "parent",
            "role",
            "is_active",
            "description",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]
        validators = []  # code and role uniqueness are checked in validate(), on the field at fault

    def validate(self, attrs: dict) -> dict:
        if self.instance is None:
            candidate = Account(**attrs)
        else:
            candidate = copy.copy(self.instance)
            for name, value in attrs.items():
                setattr(candidate, name, value)
            if "type" in attrs and "normal_balance" not in attrs and attrs["type"] != self.instance.type:
                # The old type's normal balance kept would silently make a contra account.
                attrs["normal_balance"] = NORMAL_BALANCE[AccountType(attrs["type"])]
        try:
            candidate.clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        errors = taken(candidate)
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    def save(self, **kwargs) -> Account:
        try:
            with transaction.atomic():
                return super().save(**kwargs)
        except IntegrityError as exc:
            # Another request took the code or the role between validate() and the write.
            raise serializers.ValidationError(
                taken(self.instance or Account(**self.validated_data))
                or {"non_field_errors": ["The account changed meanwhile; try again."]}
            ) from exc


def taken(account: Account) -> dict[str, list[str]]:
    """The account's code and role when another account of its company holds them."""
    others = Account.objects.filter(company_id=account.company_id).exclude(pk=account.pk)
    errors = {}
    if others.filter(code=account.code).exists():
        errors["code"] = [f"Account {account.code} already exists in this company."]
    holder = others.filter(role=account.role).first() if account.role else None
    if holder is not None:
        errors["role"] = [f"Account {holder} already has the role {AccountRole(account.role).label}."]
    return errors


class AccountFilter(CompanyFilterSet):
    parent = django_filters.ModelChoiceFilter(queryset=scoped(Account))

    class Meta:
        model = Account
        fields = ["company", "type", "role", "is_active", "parent"]


class AccountViewSet(viewsets.ModelViewSet):
    """The caller's companies' accounts. An account with journal lines is never deleted:
    deactivate it instead (409)."""

    serializer_class = AccountSerializer
    permission_classes = [permissions.IsAuthenticated, MembersWrite]
    filterset_class = AccountFilter
    cursor_ordering = ("code", "pk")
    lookup_value_converter = "int"

    def get_queryset(self):
        return Account.objects.for_user(self.request.user)

    def perform_destroy(self, account: Account) -> None:
        if account.lines.exists():
            raise Conflict(f"Account {account} has journal lines; deactivate it instead.")
        if account.children.exists():
            raise Conflict(f"Account {account} has sub-accounts; move or delete them first.")
        try:
            with transaction.atomic():
                account.delete()
        except (ProtectedError, IntegrityError) as exc:
            raise Conflict(f"Account {account} gained journal lines or sub-accounts; deactivate it instead.") from exc


# --- Fiscal years and periods -----------------------------------------------------------


class FiscalYearSerializer(serializers.ModelSerializer):
    class Meta:
        model = FiscalYear
        fields = ["id", "company", "name", "start_date", "end_date", "status", "closed_at"]
        read_only_fields = fields


class FiscalYearFilter(CompanyFilterSet):
    class Meta:
        model = FiscalYear
        fields = ["company"]


class FiscalYearViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = FiscalYearSerializer
    filterset_class = FiscalYearFilter
    cursor_ordering = ("start_date", "pk")
    lookup_value_converter = "int"

    def get_queryset(self):
        return FiscalYear.objects.for_user(self.request.user)


class PeriodSerializer(serializers.ModelSerializer):
    closed_by = serializers.CharField(source="closed_by.username", default=None, read_only=True)

    class Meta:
        model = Period
        fields = [
            "id",
            "company",
            "fiscal_year",
            "number",
            "label",
            "start_date",
            "end_date",
            "status",
            "closed_at",
            "closed_by",
            "balances_at",
        ]
        read_only_fields = fields


class PeriodFilter(CompanyFilterSet):
    fiscal_year = django_filters.ModelChoiceFilter(queryset=scoped(FiscalYear))
    status = django_filters.ChoiceFilter(choices=PeriodStatus.choices)

    class Meta:
        model = Period
        fields = ["company", "fiscal_year", "status"]


class PeriodViewSet(viewsets.ReadOnlyModelViewSet):
    """Periods in date order. ``close`` refuses (409) while drafts remain in the period or
    an earlier one is open; ``reopen`` is for staff, members of the company or not."""

    serializer_class = PeriodSerializer
    permission_classes = [permissions.IsAuthenticated, MembersWrite]
    filterset_class = PeriodFilter
    cursor_ordering = ("start_date", "pk")
    lookup_value_converter = "int"

    def get_queryset(self):
        return Period.objects.for_user(self.request.user).select_related("fiscal_year", "closed_by")

    @extend_schema(request=None, responses=PeriodSerializer)
    @action(detail=True, methods=["post"])
    def close(self, request: Request, pk=None) -> Response:
        period = self.get_object()
        try:
            periods.close_period(period, user=request.user)
        except LedgerStateError as exc:
            raise Conflict(str(exc)) from exc
        return Response(self.get_serializer(self.get_queryset().get(pk=period.pk)).data)

    @extend_schema(request=None, responses=PeriodSerializer)
    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAdminUser])
    def reopen(self, request: Request, pk=None) -> Response:
        period = self.get_object()
        try:
            periods.reopen_period(period)
        except LedgerStateError as exc:
            raise Conflict(str(exc)) from exc
        return Response(self.get_serializer(self.get_queryset().get(pk=period.pk)).data)
