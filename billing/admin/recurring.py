"""Recurring templates: edited through the service (which checks them and keeps their
schedule), their status moved only by the actions, their history read-only."""

from __future__ import annotations

import copy

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.forms.models import construct_instance

from billing.errors import BillingError, BillingStateError
from billing.models import RecurringGeneration, RecurringTemplate, TemplateStatus
from billing.services import recurring
from config.companies import CompanyScoped
from scheduling.admin import ReadOnlyInline


def _reason(exc: Exception) -> str:
    return " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)


class TemplateForm(forms.ModelForm):
    class Meta:
        model = RecurringTemplate
        fields = [
            "company",
            "name",
            "description",
            "generates",
            "amount",
            "currency",
            "customer",
            "tax_rate",
            "income_account",
            "debit_account",
            "credit_account",
            "frequency",
            "start_date",
            "end_date",
            "max_occurrences",
            "auto_generate",
            "days_ahead",
        ]

    def clean(self) -> dict:
        """The service's checks on the template as the form would save it, each reported on
        the field it names (or on the form when the field is not on it)."""
        data = super().clean()
        if self.errors:
            return data
        template = construct_instance(self, copy.copy(self.instance), self._meta.fields, self._meta.exclude)
        if template.company_id is None:
            return data
        try:
            recurring.validate(template)
        except BillingError as exc:
            for name, reasons in exc.message_dict.items():
                target = name if name in self.fields else None
                for reason in reasons:
                    self.add_error(target, reason)
        return data


class GenerationInline(CompanyScoped, ReadOnlyInline):
    model = RecurringGeneration
    fields = ["occurrence", "occurrence_date", "invoice", "journal_entry", "manual", "created_at"]
    readonly_fields = fields
    ordering = ["-occurrence_date"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("invoice", "journal_entry")


@admin.register(RecurringTemplate)
class RecurringTemplateAdmin(CompanyScoped, admin.ModelAdmin):
    """A template that has generated is cancelled, not deleted: its invoices and history
    hold on to it."""

    form = TemplateForm
    list_display = [
        "name",
        "company",
        "generates",
        "frequency",
        "amount",
        "status",
        "next_generation_date",
        "total_generated",
        "auto_generate",
    ]
    list_filter = ["company", "status", "generates", "frequency", "auto_generate"]
    list_select_related = ["company"]
    search_fields = ["name", "description", "company__slug", "customer__name"]
    autocomplete_fields = ["company", "income_account", "debit_account", "credit_account"]
    raw_id_fields = ["customer"]
    readonly_fields = [
        "status",
        "next_generation_date",
        "total_generated",
        "last_generated_at",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["company", "name", "description", "generates", "amount", "currency"]}),
        ("An invoice", {"fields": ["customer", "tax_rate", "income_account"]}),
        ("A journal entry", {"fields": ["debit_account", "credit_account"]}),
        (
            "Schedule",
            {"fields": ["frequency", "start_date", "end_date", "max_occurrences", "auto_generate", "days_ahead"]},
        ),
        ("State", {"fields": readonly_fields}),
    ]
    inlines = [GenerationInline]
    actions = ["pause_templates", "resume_templates", "cancel_templates", "generate_now"]

    def get_actions(self, request):
        # Deleting goes through the service one template at a time: the bulk delete would
        # take a journal template's history with it.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def get_readonly_fields(self, request, obj=None):
        # A template's company holds its customer, accounts and history.
        return ["company", *self.readonly_fields] if obj else self.readonly_fields

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.status in (TemplateStatus.COMPLETED, TemplateStatus.CANCELLED):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.generations.exists():
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change) -> None:
        recurring.save_template(obj)

    def delete_model(self, request, obj) -> None:
        recurring.delete_template(obj)

    def _each(self, request, queryset, verb: str, service, *, unchanged: str) -> None:
        """The service on each selected template; one refusal does not stop the others."""
        done = same = 0
        refused = []
        for template in queryset.select_related("company").order_by("pk"):
            try:
                changed = service(template)
            except (BillingError, BillingStateError) as exc:
                refused.append(f"{template.name}: {_reason(exc)}")
                continue
            done, same = (done + 1, same) if changed else (done, same + 1)
        message = f"{verb}: {done} done" + (f", {same} {unchanged}" if same else "")
        if refused:
            message += f", {len(refused)} refused: " + "; ".join(refused)
        level = messages.SUCCESS if not refused else messages.WARNING if done else messages.ERROR
        self.message_user(request, message, level)

    @admin.action(description="Pause selected templates", permissions=["change"])
    def pause_templates(self, request, queryset):
        self._each(request, queryset, "Pause", recurring.pause, unchanged="already paused")

    @admin.action(description="Resume selected templates (missed occurrences are skipped)", permissions=["change"])
    def resume_templates(self, request, queryset):
        self._each(request, queryset, "Resume", recurring.resume, unchanged="already active")

    @admin.action(description="Cancel selected templates", permissions=["change"])
    def cancel_templates(self, request, queryset):
        self._each(request, queryset, "Cancel", recurring.cancel, unchanged="already cancelled")

    @admin.action(description="Generate what is due now", permissions=["change"])
    def generate_now(self, request, queryset):
        def generate(template: RecurringTemplate) -> bool:
            outcome = recurring.generate_template(template)
            if outcome.errors:
                raise BillingError(outcome.errors[template.pk])
            return outcome.created > 0

        self._each(request, queryset, "Generate", generate, unchanged="had nothing due")
