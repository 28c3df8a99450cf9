"""Companies, their members, and the actions that set a company's books up."""

from __future__ import annotations

from django.contrib import admin, messages

from config.companies import CompanyScoped
from ledger.admin.common import reason
from ledger.errors import PostingError
from ledger.models import (
    Company,
    Membership,
)
from ledger.services import chart, periods


class MembershipInline(CompanyScoped, admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Company)
class CompanyAdmin(CompanyScoped, admin.ModelAdmin):
    list_display = ["name", "slug", "base_currency", "timezone", "fiscal_year_start_month", "fiscal_year_start_day"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at", "updated_at"]
    inlines = [MembershipInline]
    actions = ["load_chart", "open_current_year"]

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        if not change and not request.user.is_superuser:
            # Operators other than superusers see only their companies' books, so one who
            # adds a company is its first member (after the inline, which may name them too).
            Membership.objects.get_or_create(user=request.user, company=form.instance)

    @admin.action(description="Load the default chart of accounts", permissions=["change"])
    def load_chart(self, request, queryset):
        for company in queryset.order_by("slug"):
            loaded = chart.load_default_chart(company)
            self.message_user(
                request, f"{company.slug}: {loaded.created} accounts created, {loaded.existing} already there"
            )

    @admin.action(description="Open the current fiscal year", permissions=["change"])
    def open_current_year(self, request, queryset):
        for company in queryset.order_by("slug"):
            today = company.today()
            existed = company.fiscal_years.filter(start_date=company.fiscal_year_containing(today)[0]).exists()
            try:
                year = periods.open_year(company, today)
            except PostingError as exc:
                self.message_user(request, f"{company.slug}: {reason(exc)}", messages.ERROR)
                continue
            what = f"already there ({year.status})" if existed else "opened with its 12 periods"
            self.message_user(request, f"{company.slug}: {year.name}, {year.start_date} to {year.end_date}, {what}")


@admin.register(Membership)
class MembershipAdmin(CompanyScoped, admin.ModelAdmin):
    list_display = ["user", "company", "created_at"]
    list_filter = ["company"]
    search_fields = ["user__username", "user__email", "company__name"]
    autocomplete_fields = ["user", "company"]
