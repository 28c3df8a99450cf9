"""Journal entries: drafts edited with their lines through the posting service, posted entries read-only."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, Sum
from django.forms.models import BaseInlineFormSet

from config.companies import CompanyScoped
from ledger import currencies
from ledger.admin.common import entry_link, operate
from ledger.errors import PostingError
from ledger.models import (
    EntryStatus,
    JournalEntry,
    JournalLine,
)
from ledger.services import balances, posting


class DraftLineForm(forms.ModelForm):
    """A line as the operator types it, amounts in the line's currency. The posting service
    works out the company-currency amount and writes the line; this form never saves."""

    debit = forms.DecimalField(required=False, min_value=0, max_digits=20, decimal_places=3)
    credit = forms.DecimalField(required=False, min_value=0, max_digits=20, decimal_places=3)
    currency = forms.ChoiceField(
        choices=[("", "company's"), *currencies.CHOICES], required=False, help_text="Blank: the company's currency."
    )
    base_amount = forms.DecimalField(
        required=False,
        min_value=0,
        max_digits=20,
        decimal_places=3,
        label="in company currency",
        help_text="Only for a line in another currency: its value in the company's.",
    )

    class Meta:
        model = JournalLine
        fields = ["account", "description", "party"]

    def __init__(self, *args, base_currency: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        line = self.instance
        if line.pk:
            self.initial.update(debit=line.debit or None, credit=line.credit or None, currency=line.currency)
            if line.currency != base_currency:
                self.initial["base_amount"] = abs(line.amount)

    def as_line(self, base_currency: str) -> posting.Line:
        data = self.cleaned_data
        currency = data["currency"] or base_currency
        return posting.Line(
            account=data["account"],
            debit=data["debit"] or 0,
            credit=data["credit"] or 0,
            currency=currency,
            base_amount=data["base_amount"] if currency != base_currency else None,
            party=data["party"],
            description=data["description"],
        )


class _DryRun(Exception):
    pass


def _write_draft(draft: JournalEntry, entry: posting.Entry, *, user=None) -> JournalEntry:
    if draft.pk:
        return posting.update_draft(draft, entry)
    return posting.create_draft(draft.company, entry, user=user)


class DraftLineFormSet(BaseInlineFormSet):
    """The lines of a draft, checked as one entry by the service that will save it.

    The entry's own form is cleaned first and has filled in ``self.instance`` (the admin
    validates it before its inlines), so the whole entry is known here. The service is
    the one place that checks a draft, so it runs here in a savepoint that is rolled
    back: its refusal becomes this form's error. ``JournalEntryAdmin.save_related``
    then runs it for real.
    """

    entry: posting.Entry | None = None

    def get_form_kwargs(self, index):
        return {**super().get_form_kwargs(index), "base_currency": self._base_currency()}

    def _base_currency(self) -> str:
        return self.instance.company.base_currency if self.instance.company_id else ""

    def clean(self) -> None:
        super().clean()
        draft = self.instance
        if any(self.errors) or draft.company_id is None or draft.date is None:
            return  # a line's or the entry's own field is at fault, and its form says so
        base = self._base_currency()
        self.entry = posting.Entry(
            date=draft.date,
            lines=[f.as_line(base) for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")],
            reference=draft.reference,
            memo=draft.memo,
            source=draft.source,
            source_id=draft.source_id,
        )
        try:
            with transaction.atomic():
                _write_draft(draft, self.entry)
                raise _DryRun
        except _DryRun:
            pass
        except PostingError as exc:
            raise ValidationError(exc.messages) from exc


class JournalLineInline(CompanyScoped, admin.TabularInline):
    """Editable while the entry is a draft (or being added), read-only once posted. The
    lines are part of their entry, so the entry's permissions decide."""

    model = JournalLine
    form = DraftLineForm
    formset = DraftLineFormSet
    # The form declares these itself: the model's checks on them would repeat the service's
    # in worse words, and ``amount`` is the service's to work out.
    exclude = ["debit", "credit", "currency", "amount"]
    autocomplete_fields = ["account"]
    ordering = ["pk"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("account")

    def get_fields(self, request, obj=None):
        if _editable(obj):
            return ["account", "description", "debit", "credit", "currency", "base_amount", "party"]
        return ["account", "description", "debit", "credit", "currency", "amount", "party"]

    def get_extra(self, request, obj=None, **kwargs) -> int:
        return 2 if obj is None else 1 if _editable(obj) else 0

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("ledger.view_journalentry") or request.user.has_perm("ledger.change_journalentry")

    def has_add_permission(self, request, obj=None) -> bool:
        if obj is None:
            return request.user.has_perm("ledger.add_journalentry")
        return obj.is_draft and request.user.has_perm("ledger.change_journalentry")

    has_change_permission = has_delete_permission = has_add_permission


def _editable(entry: JournalEntry | None) -> bool:
    return entry is None or entry.is_draft


class FlaggedFilter(admin.SimpleListFilter):
    title = "flagged"
    parameter_name = "flagged"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(flagged_at__isnull=self.value() == "no")
        return queryset


ENTRY_RECORD = [
    "period",
    "status",
    "totals",
    "source",
    "source_id",
    "is_closing",
    "reverses",
    "reversal",
    "flag",
    "created_by",
    "created_at",
    "posted_by",
    "posted_at",
]


@admin.register(JournalEntry)
class JournalEntryAdmin(CompanyScoped, admin.ModelAdmin):
    """Drafts are added and edited here, lines and all; posting and reversing are actions.
    The period follows from the date and the company-currency amounts from the lines:
    the service works both out when it saves."""

    list_display = [
        "id",
        "date",
        "company",
        "reference",
        "source",
        "source_id",
        "status",
        "period",
        "flagged",
    ]
    list_display_links = ["id", "date"]
    list_filter = ["company", "status", "source", "is_closing", FlaggedFilter]
    list_select_related = ["company", "period__fiscal_year"]
    search_fields = ["reference", "memo", "source_id"]
    date_hierarchy = "date"
    autocomplete_fields = ["company"]
    inlines = [JournalLineInline]
    actions = ["post_drafts", "reverse_entries", "delete_drafts"]

    def get_fields(self, request, obj=None):
        return ["company", "date", "reference", "memo", *(ENTRY_RECORD if obj else [])]

    def get_readonly_fields(self, request, obj=None):
        return ["company", *ENTRY_RECORD] if obj else []

    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) and _editable(obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and _editable(obj)

    def get_actions(self, request):
        # Bulk delete would take posted entries too; "Delete selected drafts" takes only drafts.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def save_model(self, request, obj, form, change) -> None:
        """Nothing yet: ``save_related`` hands the entry and its lines to the service at once."""

    def save_related(self, request, form, formsets, change) -> None:
        lines = next(formset for formset in formsets if isinstance(formset, DraftLineFormSet))
        saved = _write_draft(form.instance, lines.entry, user=request.user)
        for field in JournalEntry._meta.concrete_fields:  # the admin goes on with form.instance
            setattr(form.instance, field.attname, getattr(saved, field.attname))
        form.instance._state.adding = False

    def construct_change_message(self, request, form, formsets, add):
        # The line forms were never saved (the service replaced the lines), so they have
        # no saved objects to describe.
        return super().construct_change_message(request, form, [], add)

    @admin.display(description="flagged", boolean=True, ordering="flagged_at")
    def flagged(self, obj) -> bool:
        return obj.flagged_at is not None

    @admin.display(description="flag")
    def flag(self, obj) -> str:
        return f"{obj.flagged_at:%Y-%m-%d %H:%M}: {obj.flag_reason}" if obj.flagged_at else "—"

    @admin.display(description="reversed by")
    def reversal(self, obj) -> str:
        reversal = getattr(obj, "reversed_by", None)
        return entry_link(reversal.pk) if reversal else "—"

    @admin.display(description="totals")
    def totals(self, obj) -> str:
        sums = obj.lines.aggregate(
            debit=Sum("amount", filter=Q(amount__gt=0)), credit=Sum("amount", filter=Q(amount__lt=0))
        )
        debit = balances.in_minor_units(sums["debit"], obj.company)
        credit = balances.in_minor_units(-(sums["credit"] or Decimal(0)), obj.company)
        text = f"debits {debit} and credits {credit} {obj.company.base_currency}"
        return text if debit == credit else f"{text}: out by {abs(debit - credit)}"

    @admin.action(description="Post selected drafts", permissions=["change"])
    def post_drafts(self, request, queryset):
        operate(
            self,
            request,
            queryset.order_by("date", "pk"),
            "Post",
            lambda entry: posting.post_draft(entry, user=request.user).created,
            label=lambda entry: f"JE{entry.pk}",
            unchanged="already posted",
        )

    @admin.action(description="Reverse selected entries", permissions=["change"])
    def reverse_entries(self, request, queryset):
        operate(
            self,
            request,
            queryset.order_by("date", "pk"),
            "Reverse",
            lambda entry: posting.reverse(entry, user=request.user).created,
            label=lambda entry: f"JE{entry.pk}",
            unchanged="already reversed",
        )

    @admin.action(description="Delete selected drafts", permissions=["delete"])
    def delete_drafts(self, request, queryset):
        kept = queryset.exclude(status=EntryStatus.DRAFT).count()
        with transaction.atomic():
            # Locked first: Django deletes by primary key, and a draft posted between its
            # read and its delete would otherwise go as a posted entry.
            drafts = list(queryset.drafts().select_for_update().values_list("pk", flat=True))
            JournalEntry.objects.filter(pk__in=drafts, status=EntryStatus.DRAFT).delete()
        message = f"Deleted {len(drafts)} drafts" + (
            f"; {kept} posted entries kept (reverse them instead)" if kept else ""
        )
        self.message_user(request, message, messages.WARNING if kept else messages.SUCCESS)
