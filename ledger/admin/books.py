"""The chart of accounts, fiscal years and periods (whose status moves only through actions)."""

from __future__ import annotations

from django.contrib import admin

from config.companies import CompanyScoped
from ledger.admin.common import operate, period_label
from ledger.models import (
    Account,
    FiscalYear,
    Period,
)
from ledger.services import periods
from scheduling.admin import ReadOnlyAdmin, ReadOnlyInline


@admin.register(Account)
class AccountAdmin(CompanyScoped, admin.ModelAdmin):
    """Deleting an account with postings, or with children, shows Django's "protected"
    page: lines and children hold on to their account."""

    list_display = ["code", "name", "company", "type", "normal_balance", "role", "is_active", "parent"]
    list_display_links = ["code", "name"]
    list_editable = ["is_active"]
    list_filter = ["company", "type", "role", "is_active"]
    list_select_related = ["company", "parent"]
    search_fields = ["code", "name", "company__slug"]
    autocomplete_fields = ["company", "parent"]
    fields = ["company", "code", "name", "type", "normal_balance", "parent", "role", "is_active", "description"]

    def get_readonly_fields(self, request, obj=None):
        # An account's lines are its company's: it cannot move to another one.
        return ["company", "created_at", "updated_at"] if obj else ["created_at", "updated_at"]

    def get_fields(self, request, obj=None):
        return [*self.fields, "created_at", "updated_at"] if obj else self.fields


class PeriodInline(CompanyScoped, ReadOnlyInline):
    model = Period
    fields = ["number", "start_date", "end_date", "status", "closed_at", "closed_by", "balances_at"]
    ordering = ["start_date"]


@admin.register(FiscalYear)
class FiscalYearAdmin(CompanyScoped, ReadOnlyAdmin):
    """Years and their periods are opened by posting into them, or by the company action."""

    list_display = ["name", "company", "start_date", "end_date", "status", "closed_at"]
    list_filter = ["company", "status"]
    list_select_related = ["company"]
    search_fields = ["name", "company__slug", "company__name"]
    inlines = [PeriodInline]


@admin.register(Period)
class PeriodAdmin(CompanyScoped, ReadOnlyAdmin):
    """A period's status moves only through the actions, so a closed period always has
    its closing balances stored."""

    list_display = [
        "period",
        "company",
        "year",
        "number",
        "start_date",
        "end_date",
        "status",
        "closed_at",
        "closed_by",
        "balances_at",
    ]
    list_filter = ["company", "status"]
    search_fields = ["company__slug", "company__name", "fiscal_year__name"]
    ordering = ["company__name", "start_date"]
    actions = ["close_periods", "reopen_periods"]

    def get_queryset(self, request):
        # The label reads the year's name; autocomplete and the changelist both show it.
        return super().get_queryset(request).select_related("company", "fiscal_year", "closed_by")

    def has_close_permission(self, request) -> bool:
        return request.user.has_perm("ledger.change_period")

    @admin.display(description="period", ordering="start_date")
    def period(self, obj) -> str:
        return obj.label

    @admin.display(description="year", ordering="fiscal_year__start_date")
    def year(self, obj) -> str:
        return obj.fiscal_year.name

    @admin.action(description="Close selected periods", permissions=["close"])
    def close_periods(self, request, queryset):
        operate(
            self,
            request,
            queryset.order_by("company", "start_date"),
            "Close",
            lambda period: periods.close_period(period, user=request.user),
            label=period_label,
            unchanged="already closed",
        )

    @admin.action(description="Reopen selected periods", permissions=["close"])
    def reopen_periods(self, request, queryset):
        def reopen(period: Period) -> bool:
            periods.reopen_period(period)
            return not period.is_open

        operate(
            self,
            request,
            queryset.order_by("company", "-start_date"),
            "Reopen",
            reopen,
            label=period_label,
            unchanged="already open",
        )
