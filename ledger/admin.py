"""The ledger in the admin, where finance operators keep the chart of accounts, periods,
journal entries and budgets.

The admin writes through the same services as the API and the commands: entries and
their lines through ``posting`` (never a form's save), period states through ``periods``.
So a posted entry is read-only here, a period's status moves only through its actions
(closing always stores its balances), and a refusal is a form error or a message, never
a 500. What the GL jobs store (balances, variances, totals, snapshots, reconciliations)
is read-only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, Sum
from django.forms.models import BaseInlineFormSet
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from ledger import currencies
from ledger.errors import LedgerStateError, PostingError
from ledger.models import (
    Account,
    Budget,
    BudgetVariance,
    Company,
    DailyTotal,
    EntryStatus,
    FiscalYear,
    JournalEntry,
    JournalLine,
    Membership,
    Period,
    PeriodBalance,
    Reconciliation,
    TrialBalanceSnapshot,
)
from ledger.services import chart, periods, posting
from scheduling.admin import ReadOnlyAdmin, ReadOnlyInline

# --- Small helpers ----------------------------------------------------------------------


def _reason(exc: Exception) -> str:
    return " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)


def _operate(modeladmin, request, objects: Iterable, verb: str, service: Callable, *, label, unchanged: str) -> None:
    """Apply a service to each object in order; ``service`` answers whether it changed
    anything. One refusal does not stop the others, and each is reported by name."""
    done = same = 0
    refused = []
    for obj in objects:
        try:
            changed = service(obj)  # each service is one transaction
        except (PostingError, LedgerStateError) as exc:
            refused.append(f"{label(obj)}: {_reason(exc)}")
            continue
        if changed:
            done += 1
        else:
            same += 1
    message = f"{verb}: {done} done" + (f", {same} {unchanged}" if same else "")
    if refused:
        message += f", {len(refused)} refused: " + "; ".join(refused)
    level = messages.SUCCESS if not refused else messages.WARNING if done else messages.ERROR
    modeladmin.message_user(request, message, level)


def _entry_link(pk: int) -> str:
    return format_html('<a href="{}">JE{}</a>', reverse("admin:ledger_journalentry_change", args=[pk]), pk)


# --- Companies ----------------------------------------------------------------------------


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "base_currency", "timezone", "fiscal_year_start_month", "fiscal_year_start_day"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at", "updated_at"]
    inlines = [MembershipInline]
    actions = ["load_chart", "open_current_year"]

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
                self.message_user(request, f"{company.slug}: {_reason(exc)}", messages.ERROR)
                continue
            what = f"already there ({year.status})" if existed else "opened with its 12 periods"
            self.message_user(request, f"{company.slug}: {year.name}, {year.start_date} to {year.end_date}, {what}")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "company", "created_at"]
    list_filter = ["company"]
    search_fields = ["user__username", "user__email", "company__name"]
    autocomplete_fields = ["user", "company"]


# --- Chart of accounts ------------------------------------------------------------------------


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
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


# --- Fiscal years and periods -------------------------------------------------------------------


class PeriodInline(ReadOnlyInline):
    model = Period
    fields = ["number", "start_date", "end_date", "status", "closed_at", "closed_by", "balances_at"]
    ordering = ["start_date"]


@admin.register(FiscalYear)
class FiscalYearAdmin(ReadOnlyAdmin):
    """Years and their periods are opened by posting into them, or by the company action."""

    list_display = ["name", "company", "start_date", "end_date", "status", "closed_at"]
    list_filter = ["company", "status"]
    list_select_related = ["company"]
    search_fields = ["name", "company__slug", "company__name"]
    inlines = [PeriodInline]


@admin.register(Period)
class PeriodAdmin(ReadOnlyAdmin):
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
        _operate(
            self,
            request,
            queryset.order_by("company", "start_date"),
            "Close",
            lambda period: periods.close_period(period, user=request.user),
            label=_period_label,
            unchanged="already closed",
        )

    @admin.action(description="Reopen selected periods", permissions=["close"])
    def reopen_periods(self, request, queryset):
        def reopen(period: Period) -> bool:
            periods.reopen_period(period)
            return not period.is_open

        _operate(
            self,
            request,
            queryset.order_by("company", "-start_date"),
            "Reopen",
            reopen,
            label=_period_label,
            unchanged="already open",
        )


def _period_label(period: Period) -> str:
    return f"{period.company.slug} {period.label}"


# --- Journal entries -------------------------------------------------------------------------


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
        return posting.update_draft(draft, entry, user=user)
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


class JournalLineInline(admin.TabularInline):
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
class JournalEntryAdmin(admin.ModelAdmin):
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
        return _entry_link(reversal.pk) if reversal else "—"

    @admin.display(description="totals")
    def totals(self, obj) -> str:
        sums = obj.lines.aggregate(
            debit=Sum("amount", filter=Q(amount__gt=0)), credit=Sum("amount", filter=Q(amount__lt=0))
        )
        cent = Decimal(1).scaleb(-obj.company.minor_units)
        debit = (sums["debit"] or Decimal(0)).quantize(cent)
        credit = -(sums["credit"] or Decimal(0)).quantize(cent)
        text = f"debits {debit} and credits {credit} {obj.company.base_currency}"
        return text if debit == credit else f"{text}: out by {abs(debit - credit)}"

    @admin.action(description="Post selected drafts", permissions=["change"])
    def post_drafts(self, request, queryset):
        _operate(
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
        _operate(
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
        deleted = queryset.drafts().count()
        queryset.drafts().delete()
        message = f"Deleted {deleted} drafts" + (f"; {kept} posted entries kept (reverse them instead)" if kept else "")
        self.message_user(request, message, messages.WARNING if kept else messages.SUCCESS)


# --- Budgets and what the GL jobs store -----------------------------------------------------------


class BudgetPeriodFilter(admin.SimpleListFilter):
    """Periods with their company, narrowed to the company filtered on; one query."""

    title = "period"
    parameter_name = "period"

    def lookups(self, request, model_admin):
        found = Period.objects.select_related("company", "fiscal_year").order_by("company__slug", "start_date")
        company = request.GET.get("company__id__exact")
        if company and company.isdigit():
            found = found.filter(company_id=company)
        return [(str(period.pk), _period_label(period)) for period in found]

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
class BudgetAdmin(admin.ModelAdmin):
    form = BudgetForm
    list_display = ["account", "period", "company", "amount"]
    list_editable = ["amount"]
    list_filter = ["company", BudgetPeriodFilter]
    list_select_related = ["account", "period__fiscal_year", "company"]
    search_fields = ["account__code", "account__name"]
    autocomplete_fields = ["account", "period"]


@admin.register(BudgetVariance)
class BudgetVarianceAdmin(ReadOnlyAdmin):
    list_display = ["account", "period", "company", "budget", "actual", "variance", "percentage", "favourable"]
    list_filter = ["company", "favourable"]
    list_select_related = ["account", "period__fiscal_year", "company"]
    search_fields = ["account__code", "account__name"]


@admin.register(DailyTotal)
class DailyTotalAdmin(ReadOnlyAdmin):
    list_display = ["date", "company", "entries", "lines", "debit", "credit", "balanced", "stale_drafts", "recorded_at"]
    list_filter = ["company", "balanced"]
    list_select_related = ["company"]
    date_hierarchy = "date"


@admin.register(PeriodBalance)
class PeriodBalanceAdmin(ReadOnlyAdmin):
    list_display = ["account", "period", "company", "debit", "credit", "closing"]
    list_filter = ["company"]
    list_select_related = ["account", "period__fiscal_year", "company"]
    search_fields = ["account__code", "account__name"]
    show_full_result_count = False


@admin.register(TrialBalanceSnapshot)
class TrialBalanceSnapshotAdmin(ReadOnlyAdmin):
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
class ReconciliationAdmin(ReadOnlyAdmin):
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
