"""Dunning levels (edited here by finance operators) and the overdue notices the jobs make
(read-only: BILLING_OVERDUE_CHECK makes them, SL_OVERDUE_REMINDERS sends or cancels them)."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from billing.models import DunningLevel, OverdueNotice
from billing.services import dunning
from config.companies import CompanyScoped
from scheduling.admin import ReadOnlyAdmin


class DunningLevelForm(forms.ModelForm):
    class Meta:
        model = DunningLevel
        fields = ["company", "days_overdue", "name", "kind", "channels", "fee", "interest_rate", "active"]
        help_texts = {"channels": 'A list of in_app, email, webhook: ["in_app", "email"].'}

    def clean(self) -> dict:
        cleaned = super().clean()
        company = cleaned.get("company") or getattr(self.instance, "company", None)
        if company is None or "kind" not in cleaned or "channels" not in cleaned:
            return cleaned  # the field errors already say what is missing
        for name, messages in dunning.level_errors(
            company, kind=cleaned["kind"], channels=cleaned["channels"], fee=cleaned.get("fee")
        ).items():
            for message in messages:
                self.add_error(name, message)
        return cleaned


@admin.register(DunningLevel)
class DunningLevelAdmin(CompanyScoped, admin.ModelAdmin):
    """A level's notices keep their days and amounts if it is deleted; deactivate a level
    to stop chasing at it."""

    form = DunningLevelForm
    list_display = ["name", "company", "days_overdue", "kind", "channels", "fee", "interest_rate", "active"]
    list_display_links = ["name"]
    list_editable = ["active"]
    list_filter = ["company", "active", "kind"]
    list_select_related = ["company"]
    search_fields = ["name", "kind", "company__slug", "company__name"]
    autocomplete_fields = ["company"]
    ordering = ["company__name", "days_overdue"]

    def get_readonly_fields(self, request, obj=None):
        return ["company"] if obj else []


@admin.register(OverdueNotice)
class OverdueNoticeAdmin(CompanyScoped, ReadOnlyAdmin):
    list_display = [
        "invoice",
        "company",
        "customer",
        "level_days",
        "days_overdue",
        "amount_due",
        "business_date",
        "status",
        "fee",
        "interest",
        "fee_invoice",
        "sent_at",
    ]
    list_filter = ["company", "status", "level_days", "business_date"]
    list_select_related = ["company", "invoice__customer", "fee_invoice"]
    search_fields = ["invoice__number", "invoice__customer__name", "fee_invoice__number"]
    date_hierarchy = "business_date"

    @admin.display(description="customer", ordering="invoice__customer__name")
    def customer(self, obj: OverdueNotice) -> str:
        return obj.invoice.customer.name
