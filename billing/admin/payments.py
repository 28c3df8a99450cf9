"""Payments, credit notes and their allocations in the admin.

A payment (money taken at the desk, a cheque) or a credit note is recorded here through
the settlement service, as the API records one: the add form runs the service in a
savepoint that is rolled back, so its refusals (a closed period, another company's
customer, a credit note dated before its invoice) are the form's errors, and saving runs
it for real. Once recorded, a document is a record: read here, never changed or deleted
(it is posted). Its allocations are made with the "allocate" action (the oldest due
invoices first) or through the API, and taken back with the allocations' action.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction

from billing.errors import BillingStateError
from billing.models import CreditAllocation, CreditNote, Payment, PaymentAllocation
from billing.services import settlement
from config.companies import CompanyScoped
from ledger.admin.common import entry_link
from scheduling.admin import ReadOnlyAdmin, ReadOnlyInline


class _DryRun(Exception):
    pass


def _reason(exc: Exception) -> str:
    return " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)


class ServiceForm(forms.ModelForm):
    """An add form whose row the settlement service writes. ``clean`` runs the service
    and rolls it back, so what the service refuses shows on the form; ``record`` runs it.
    A subclass names its ``service`` and defines ``service_arguments()`` from its fields."""

    service: Callable[..., object]
    service_arguments: Callable[[], dict]

    def clean(self) -> dict:
        data = super().clean()
        if self.errors:
            return data  # a field is at fault, and its own message says so
        try:
            with transaction.atomic():
                self.service(**self.service_arguments())
                raise _DryRun
        except _DryRun:
            pass
        except ValidationError as exc:
            for name, messages_ in exc.message_dict.items():
                self.add_error(name if name in self.fields else None, messages_)
        except BillingStateError as exc:
            self.add_error(None, str(exc))
        return data

    def record(self, user):
        return self.service(**self.service_arguments(), user=user)


class PaymentForm(ServiceForm):
    class Meta:
        model = Payment
        fields = ["company", "customer", "date", "amount", "method", "reference", "external_id"]

    def service_arguments(self) -> dict:
        data = self.cleaned_data
        return {
            "company": data["company"],
            "customer": data["customer"],
            "date": data["date"],
            "amount": data["amount"],
            "method": data["method"],
            "reference": data["reference"],
            "external_id": data["external_id"],
        }

    service = staticmethod(settlement.record_payment)


class CreditNoteForm(ServiceForm):
    allocate = forms.BooleanField(
        required=False, initial=True, help_text="Settle what it can of the invoice it credits."
    )

    class Meta:
        model = CreditNote
        fields = ["company", "customer", "date", "invoice", "reason", "subtotal", "tax", "income_account"]

    def service_arguments(self) -> dict:
        data = self.cleaned_data
        return {
            "company": data["company"],
            "customer": data["customer"],
            "date": data["date"],
            "subtotal": data["subtotal"],
            "tax": data["tax"] or 0,
            "reason": data["reason"],
            "invoice": data["invoice"],
            "income_account": data["income_account"],
            "allocate": data["allocate"],
        }

    service = staticmethod(settlement.record_credit_note)


def _each(modeladmin, request, objects: Iterable, verb: str, service: Callable, *, label: Callable) -> None:
    """Run a service on each object in turn (each its own transaction); one refusal does not
    stop the others, and each is reported by name."""
    done = same = 0
    refused = []
    for obj in objects:
        try:
            changed = service(obj)
        except (ValidationError, BillingStateError) as exc:
            refused.append(f"{label(obj)}: {_reason(exc)}")
            continue
        done, same = (done + 1, same) if changed else (done, same + 1)
    message = f"{verb}: {done} done" + (f", {same} with nothing to do" if same else "")
    if refused:
        message += f", {len(refused)} refused: " + "; ".join(refused)
    level = messages.SUCCESS if not refused else messages.WARNING if done else messages.ERROR
    modeladmin.message_user(request, message, level)


class RecordedAdmin(CompanyScoped, admin.ModelAdmin):
    """A document added through the service, then read-only."""

    record_fields: list[str] = []
    actions = ["allocate_oldest_first"]
    raw_id_fields = ["customer"]
    autocomplete_fields = ["company"]

    def get_fields(self, request, obj=None):
        return self.form._meta.fields if obj is None else self.record_fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.record_fields

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_allocate_permission(self, request) -> bool:
        return request.user.has_perm(f"billing.add_{self.model._meta.model_name}")

    def save_model(self, request, obj, form, change) -> None:
        recorded = form.record(request.user)
        obj.pk = recorded.pk
        obj.refresh_from_db()  # the admin goes on (log, redirect) with the row the service wrote

    def save_related(self, request, form, formsets, change) -> None:
        """Nothing: the service wrote everything, and allocations are made by action."""

    @admin.display(description="journal entry")
    def journal(self, obj) -> str:
        return entry_link(obj.journal_entry_id) if obj.journal_entry_id else "—"

    @admin.action(description="Allocate to the oldest due invoices", permissions=["allocate"])
    def allocate_oldest_first(self, request, queryset):
        _each(
            self,
            request,
            queryset.order_by("date", "pk"),
            "Allocate",
            lambda document: bool(settlement.auto_allocate(document)),
            label=lambda document: getattr(document, "number", "") or f"payment {document.pk}",
        )


class PaymentAllocationInline(CompanyScoped, ReadOnlyInline):
    model = PaymentAllocation
    fields = ["invoice", "amount", "date", "created_at"]
    readonly_fields = fields
    ordering = ["date", "pk"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("invoice")


class CreditAllocationInline(PaymentAllocationInline):
    model = CreditAllocation


@admin.register(Payment)
class PaymentAdmin(RecordedAdmin):
    form = PaymentForm
    list_display = [
        "id",
        "date",
        "company",
        "customer",
        "amount",
        "currency",
        "method",
        "reference",
        "allocated",
        "unallocated",
    ]
    list_display_links = ["id", "date"]
    list_filter = ["company", "method"]
    list_select_related = ["company", "customer"]
    search_fields = ["reference", "external_id", "customer__name", "customer__external_ref"]
    date_hierarchy = "date"
    inlines = [PaymentAllocationInline]
    record_fields = [
        "company",
        "customer",
        "date",
        "amount",
        "currency",
        "method",
        "reference",
        "external_id",
        "allocated",
        "unallocated",
        "journal",
        "created_by",
        "created_at",
    ]


@admin.register(CreditNote)
class CreditNoteAdmin(RecordedAdmin):
    form = CreditNoteForm
    list_display = [
        "number",
        "date",
        "company",
        "customer",
        "invoice",
        "total",
        "currency",
        "allocated",
        "unallocated",
        "reason",
    ]
    list_display_links = ["number", "date"]
    list_filter = ["company"]
    list_select_related = ["company", "customer", "invoice"]
    search_fields = ["number", "reason", "customer__name", "invoice__number"]
    date_hierarchy = "date"
    raw_id_fields = ["customer", "invoice", "income_account"]
    inlines = [CreditAllocationInline]
    record_fields = [
        "company",
        "customer",
        "number",
        "date",
        "invoice",
        "reason",
        "currency",
        "subtotal",
        "tax",
        "total",
        "allocated",
        "unallocated",
        "income_account",
        "journal",
        "created_by",
        "created_at",
    ]

    def get_fields(self, request, obj=None):
        return [*super().get_fields(request, obj), "allocate"] if obj is None else self.record_fields


class AllocationAdmin(CompanyScoped, ReadOnlyAdmin):
    """Allocations are made with their payment or credit note; taken back here."""

    actions = ["take_back"]
    date_hierarchy = "date"
    list_filter = ["company"]

    def has_take_back_permission(self, request) -> bool:
        return request.user.has_perm(f"billing.delete_{self.model._meta.model_name}")

    @admin.action(description="Take back selected allocations", permissions=["take_back"])
    def take_back(self, request, queryset):
        _each(
            self,
            request,
            queryset.order_by("invoice", "pk"),
            "Take back",
            lambda allocation: bool(settlement.unallocate(allocation)),
            label=lambda allocation: f"allocation {allocation.pk}",
        )


@admin.register(PaymentAllocation)
class PaymentAllocationAdmin(AllocationAdmin):
    list_display = ["id", "date", "company", "payment", "invoice", "amount"]
    list_select_related = ["company", "payment", "invoice"]
    search_fields = ["invoice__number", "payment__reference", "payment__external_id"]


@admin.register(CreditAllocation)
class CreditAllocationAdmin(AllocationAdmin):
    list_display = ["id", "date", "company", "credit_note", "invoice", "amount"]
    list_select_related = ["company", "credit_note", "invoice"]
    search_fields = ["invoice__number", "credit_note__number"]
