"""Balances, the trial balance, budgets and what the GL jobs store, over the API."""

from __future__ import annotations

import django_filters
from django.db import IntegrityError, transaction
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import FileFormatNegotiation
from ledger.api.common import (
    CompanyField,
    CompanyFilterSet,
    CompanyImmutable,
    CompanyMoney,
    CompanyQuery,
    MembersWrite,
    MoneyField,
    ScopedPrimaryKeyRelatedField,
    money,
    read_only_money,
    scoped,
)
from ledger.models import (
    Account,
    Budget,
    BudgetVariance,
    DailyTotal,
    Period,
    Reconciliation,
    TrialBalanceSnapshot,
)
from ledger.services import balances, export
from ledger.services.periods import EARLIEST, LATEST

# --- Balances and the trial balance ----------------------------------------------------------


class BalanceQuery(CompanyQuery):
    as_of = serializers.DateField(required=False, help_text="The end of this day; the company's today by default.")
    account = serializers.IntegerField(required=False, min_value=1, help_text="Only this account.")

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        company = attrs["company"]
        accounts = Account.objects.for_company(company).order_by("code")
        if "account" in attrs:
            accounts = accounts.filter(pk=attrs["account"])
            if not accounts.exists():
                raise serializers.ValidationError({"account": [f"No account {attrs['account']} in {company.slug}."]})
        attrs["accounts"] = accounts
        attrs.setdefault("as_of", company.today())
        return attrs


class BalancesView(APIView):
    """Each account's balance at the end of ``as_of``: ``balance`` debit-positive, and
    ``natural_balance`` signed the way the account normally runs (credits positive for
    income, liabilities and equity)."""

    @extend_schema(parameters=[BalanceQuery], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        query = BalanceQuery(data=request.query_params, context={"request": request})
        query.is_valid(raise_exception=True)
        company, as_of, accounts = (query.validated_data[name] for name in ("company", "as_of", "accounts"))
        accounts = list(accounts)
        found = balances.balances_as_of(company, as_of, [account.pk for account in accounts])
        currency = company.base_currency
        rows = []
        for account in accounts:
            amount = found.get(account.pk, balances.ZERO)
            rows.append(
                {
                    "account": account.pk,
                    "code": account.code,
                    "name": account.name,
                    "type": account.type,
                    "balance": money(amount, currency),
                    "natural_balance": money(amount * account.sign, currency),
                }
            )
        return Response({"company": company.pk, "currency": currency, "as_of": as_of, "accounts": rows})


class TrialBalanceQuery(CompanyQuery):
    """``from`` and ``to`` are Python keywords, so the fields are added by name."""

    def get_fields(self) -> dict:
        fields = super().get_fields()
        fields["from"] = serializers.DateField(help_text="The first day of the range.")
        fields["to"] = serializers.DateField(help_text="The last day of the range.")
        fields["format"] = serializers.ChoiceField(choices=export.FORMATS, default="json")
        return fields

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        outside = {
            name: [f"Give a date between {EARLIEST} and {LATEST}."]
            for name in ("from", "to")
            if not EARLIEST <= attrs[name] <= LATEST
        }
        if outside:
            raise serializers.ValidationError(outside)
        if attrs["from"] > attrs["to"]:
            raise serializers.ValidationError({"from": [f"{attrs['from']} is after to ({attrs['to']})."]})
        return attrs


class TrialBalanceView(APIView):
    """Each account's opening balance, debits, credits and closing balance over the range,
    with totals; as JSON, or a CSV or xlsx file with ``format``."""

    content_negotiation_class = FileFormatNegotiation

    @extend_schema(
        parameters=[
            OpenApiParameter("company", str, description="The company's id or slug. Required when you see several."),
            OpenApiParameter("from", OpenApiTypes.DATE, required=True),
            OpenApiParameter("to", OpenApiTypes.DATE, required=True),
            OpenApiParameter("format", str, enum=list(export.FORMATS), default="json"),
        ],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="JSON, or a CSV or xlsx attachment")},
    )
    def get(self, request: Request):
        query = TrialBalanceQuery(data=request.query_params, context={"request": request})
        query.is_valid(raise_exception=True)
        company, date_from, date_to, fmt = (query.validated_data[name] for name in ("company", "from", "to", "format"))
        tb = balances.trial_balance(company, date_from, date_to)
        if fmt == "json":
            return Response(tb.as_dict())
        rendered = export.render(tb, fmt)
        response = HttpResponse(rendered.content, content_type=rendered.content_type)
        response["Content-Disposition"] = f'attachment; filename="{rendered.filename}"'
        return response


# --- Budgets ----------------------------------------------------------------------------------


class BudgetSerializer(CompanyImmutable, CompanyMoney, serializers.ModelSerializer):
    company = CompanyField()
    account = ScopedPrimaryKeyRelatedField(queryset=Account.objects.all())
    period = ScopedPrimaryKeyRelatedField(queryset=Period.objects.all())
    amount = MoneyField(help_text="In the account's natural direction: income and expense budgets are both positive.")
    money_fields = ("amount",)

    class Meta:
        model = Budget
        fields = ["id", "company", "account", "period", "amount", "updated_at"]
        read_only_fields = ["updated_at"]
        validators = []  # one budget per account and period, checked in validate() on the field at fault

    def validate(self, attrs: dict) -> dict:
        current = (
            {name: getattr(self.instance, name) for name in ("company", "account", "period")} if self.instance else {}
        )
        values = {**current, **attrs}
        errors = {}
        for name in ("account", "period"):
            if values[name].company_id != values["company"].pk:
                errors[name] = [f"{values[name]} is not {values['company'].slug}'s."]
        if errors:
            raise serializers.ValidationError(errors)
        if self.budgeted(values["account"], values["period"]):
            raise serializers.ValidationError({"period": [f"{values['account']} has a budget for {values['period']}."]})
        return attrs

    def budgeted(self, account: Account, period: Period) -> bool:
        others = Budget.objects.filter(account=account, period=period)
        return (others.exclude(pk=self.instance.pk) if self.instance else others).exists()

    def save(self, **kwargs) -> Budget:
        try:
            with transaction.atomic():
                return super().save(**kwargs)
        except IntegrityError as exc:  # another request budgeted the same account and period meanwhile
            raise serializers.ValidationError({"period": ["The account has a budget for this period."]}) from exc


class BudgetFilter(CompanyFilterSet):
    account = django_filters.ModelChoiceFilter(queryset=scoped(Account))
    period = django_filters.ModelChoiceFilter(queryset=scoped(Period))

    class Meta:
        model = Budget
        fields = ["company", "account", "period"]


class BudgetViewSet(viewsets.ModelViewSet):
    serializer_class = BudgetSerializer
    permission_classes = [permissions.IsAuthenticated, MembersWrite]
    filterset_class = BudgetFilter
    cursor_ordering = ("pk",)
    lookup_value_converter = "int"

    def get_queryset(self):
        return Budget.objects.for_user(self.request.user).select_related(
            "company", "account__company", "period__fiscal_year"
        )


# --- What the GL jobs store --------------------------------------------------------------------


class BudgetVarianceSerializer(CompanyMoney, serializers.ModelSerializer):
    account_code = serializers.CharField(source="account.code", read_only=True)
    period_label = serializers.CharField(source="period.label", read_only=True)
    budget = read_only_money()
    actual = read_only_money()
    variance = read_only_money()
    money_fields = ("budget", "actual", "variance")

    class Meta:
        model = BudgetVariance
        fields = [
            "id",
            "company",
            "account",
            "account_code",
            "period",
            "period_label",
            "budget",
            "actual",
            "variance",
            "percentage",
            "favourable",
            "computed_at",
        ]
        read_only_fields = fields


class BudgetVarianceFilter(BudgetFilter):
    class Meta:
        model = BudgetVariance
        fields = ["company", "account", "period"]


class BudgetVarianceViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Budget against actual per account and period, as GL_BUDGET_VARIANCE last computed it."""

    serializer_class = BudgetVarianceSerializer
    filterset_class = BudgetVarianceFilter
    cursor_ordering = ("pk",)

    def get_queryset(self):
        return BudgetVariance.objects.for_user(self.request.user).select_related(
            "company", "account", "period__fiscal_year"
        )


class DailyTotalSerializer(CompanyMoney, serializers.ModelSerializer):
    debit = read_only_money()
    credit = read_only_money()
    money_fields = ("debit", "credit")

    class Meta:
        model = DailyTotal
        fields = [
            "id",
            "company",
            "date",
            "entries",
            "lines",
            "debit",
            "credit",
            "balanced",
            "stale_drafts",
            "recorded_at",
        ]
        read_only_fields = fields


class DailyTotalFilter(CompanyFilterSet):
    date_from = django_filters.DateFilter(field_name="date", lookup_expr="gte")
    date_to = django_filters.DateFilter(field_name="date", lookup_expr="lte")

    class Meta:
        model = DailyTotal
        fields = ["company", "date_from", "date_to"]


class DailyTotalViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The day's postings as GL_DAILY_CLOSE recorded them, newest first."""

    serializer_class = DailyTotalSerializer
    filterset_class = DailyTotalFilter
    cursor_ordering = ("-date", "-pk")

    def get_queryset(self):
        return DailyTotal.objects.for_user(self.request.user).select_related("company")


class SnapshotSerializer(CompanyMoney, serializers.ModelSerializer):
    debit = read_only_money()
    credit = read_only_money()
    money_fields = ("debit", "credit")

    class Meta:
        model = TrialBalanceSnapshot
        fields = ["id", "company", "date_from", "date_to", "run", "debit", "credit", "balanced", "created_at", "rows"]
        read_only_fields = fields


class SnapshotSummarySerializer(SnapshotSerializer):
    class Meta(SnapshotSerializer.Meta):
        fields = [name for name in SnapshotSerializer.Meta.fields if name != "rows"]
        read_only_fields = fields


class SnapshotFilter(CompanyFilterSet):
    class Meta:
        model = TrialBalanceSnapshot
        fields = ["company"]


class SnapshotViewSet(viewsets.ReadOnlyModelViewSet):
    """Trial balances GL_TRIAL_BALANCE stored, newest first; the rows in the detail only."""

    filterset_class = SnapshotFilter
    cursor_ordering = ("-date_to", "-pk")
    lookup_value_converter = "int"

    def get_serializer_class(self):
        return SnapshotSummarySerializer if self.action == "list" else SnapshotSerializer

    def get_queryset(self):
        queryset = TrialBalanceSnapshot.objects.for_user(self.request.user).select_related("company")
        return queryset.defer("rows") if self.action == "list" else queryset


class ReconciliationSerializer(CompanyMoney, serializers.ModelSerializer):
    account_code = serializers.CharField(source="account.code", read_only=True)
    ledger_balance = read_only_money()
    subledger_balance = read_only_money()
    difference = read_only_money()
    reconciled = serializers.BooleanField(read_only=True)
    money_fields = ("ledger_balance", "subledger_balance", "difference")

    class Meta:
        model = Reconciliation
        fields = [
            "id",
            "company",
            "account",
            "account_code",
            "as_of",
            "subledger",
            "ledger_balance",
            "subledger_balance",
            "difference",
            "reconciled",
            "differences",
            "computed_at",
        ]
        read_only_fields = fields


class ReconciliationFilter(CompanyFilterSet):
    account = django_filters.ModelChoiceFilter(queryset=scoped(Account))

    class Meta:
        model = Reconciliation
        fields = ["company", "account", "as_of"]


class ReconciliationViewSet(viewsets.ReadOnlyModelViewSet):
    """Control accounts against their sub-ledgers, as GL_ACCOUNT_RECONCILIATION found them."""

    serializer_class = ReconciliationSerializer
    filterset_class = ReconciliationFilter
    cursor_ordering = ("-as_of", "-pk")
    lookup_value_converter = "int"

    def get_queryset(self):
        return Reconciliation.objects.for_user(self.request.user).select_related("company", "account")
