"""Budgets, and what the GL jobs store (read-only)."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils.html import format_html, format_html_join

from config.companies import CompanyScoped, in_companies
from ledger.admin.common import period_label
from ledger.models import (
    Budget,
    BudgetVariance,
    DailyTotal,
    Period,
    PeriodBalance,
    Reconciliation,
    TrialBalanceSnapshot,
)
from scheduling.admin import ReadOnlyAdmin


class BudgetPeriodFilter(admin.SimpleListFilter):
    """The operator's periods with their company, narrowed to the company filtered on; one query."""

    title = "period"
    parameter_name = "period"

    def lookups(self, request, model_admin):
        found = Period.objects.select_related("company", "fiscal_year").order_by("company__slug", "start_date")
        found = in_companies(found, request.user)
        company = request.GET.get("company__id__exact")
        if company and company.isdigit():
            found = found.filter(company_id=company)
        return [(str(period.pk), period_label(period)) for period in found]

    def queryset(self, request, queryset):
        return queryset.filter(period_id=self.value()) if self.value() and self.value().isdigit() else queryset


class BudgetForm(forms.ModelForm):
    class Meta:
        model = Budget
        fields = ["account", "period", "amount"]

    def clean(self):
        cleaned = super().clean()
        account, period = cleaned.get("account"), cleaned.get("period")
        if account and period and account.company_id != period.company_id:
            raise ValidationError({"period": "This period belongs to another company than the account."})
        if account:
            self.instance.company_id = account.company_id  # a budget is its account's company's
        return cleaned


@admin.register(Budget)
class BudgetAdmin(CompanyScoped, admin.ModelAdmin):
    form = BudgetForm
    list_display = ["account", "period", "company", "amount"]
    list_editable = ["amount"]
    list_filter = ["company", BudgetPeriodFilter]
    list_select_related = ["account", "period__fiscal_year", "company"]
    search_fields = ["account__code", "account__name"]
    autocomplete_fields = ["account", "period"]


@admin.register(BudgetVariance)
class BudgetVarianceAdmin(CompanyScoped, ReadOnlyAdmin):
    list_display = ["account", "period", "company", "budget", "actual", "variance", "percentage", "favourable"]
    list_filter = ["company", "favourable"]
    list_select_related = ["account", "period__fiscal_year", "company"]
    search_fields = ["account__code", "account__name"]


@admin.register(DailyTotal)
class DailyTotalAdmin(CompanyScoped, ReadOnlyAdmin):
    list_display = ["date", "company", "entries", "lines", "debit", "credit", "balanced", "stale_drafts", "recorded_at"]
    list_filter = ["company", "balanced"]
    list_select_related = ["company"]
    date_hierarchy = "date"


@admin.register(PeriodBalance)
class PeriodBalanceAdmin(CompanyScoped, ReadOnlyAdmin):
    list_display = ["account", "period", "company", "debit", "credit", "closing"]
    list_filter = ["company"]
    list_select_related = ["account", "period__fiscal_year", "company"]
    search_fields = ["account__code", "account__name"]
    show_full_result_count = False


@admin.register(TrialBalanceSnapshot)
class TrialBalanceSnapshotAdmin(CompanyScoped, ReadOnlyAdmin):
    list_display = ["__str__", "company", "debit", "credit", "balanced", "created_at"]
    list_filter = ["company", "balanced"]
    list_select_related = ["company"]
    fields = ["company", "date_from", "date_to", "run", "debit", "credit", "balanced", "created_at", "table"]
    readonly_fields = ["table"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("ledger.delete_trialbalancesnapshot")  # the job stores it again

    @admin.display(description="rows")
    def table(self, obj):
        columns = ("code", "name", "type", "opening", "debit", "credit", "closing")
        head = format_html_join("", "<th>{}</th>", ((name,) for name in columns))
        body = format_html_join(
            "",
            "<tr>{}</tr>",
            ((format_html_join("", "<td>{}</td>", ((row.get(name, ""),) for name in columns)),) for row in obj.rows),
        )
        return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)


@admin.register(Reconciliation)
class ReconciliationAdmin(CompanyScoped, ReadOnlyAdmin):
    list_display = [
        "account",
        "as_of",
        "company",
        "subledger",
        "ledger_balance",
        "subledger_balance",
        "difference",
        "reconciled",
    ]
    list_filter = ["company", "subledger"]
    list_select_related = ["account", "company"]
    date_hierarchy = "as_of"

    @admin.display(description="reconciled", boolean=True)
    def reconciled(self, obj) -> bool:
        return obj.reconciled
