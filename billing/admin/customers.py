"""Customers (with their enrolments), fee structures (with their components) and
enrolments in the admin.

What a row points at must be of its company (a fee of another company on an enrolment,
another company's income account on a fee) and a fee's components add up to its amount:
both are form errors. An enrolment added with "invoice on enrolment" is invoiced as it
is saved, as through the API; a refusal there is a message, and the period's run bills it
instead.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.forms.models import BaseInlineFormSet

from billing.api.common import LARGEST, places_error
from billing.models import Customer, Enrolment, FeeComponent, FeeStructure, InvoiceLine
from billing.services import invoicing
from config.companies import CompanyScoped
from ledger.errors import LedgerStateError
from ledger.models import AccountType, Membership


def _of_company(obj, company_id: int | None, name: str) -> dict:
    if obj is not None and company_id is not None and obj.company_id != company_id:
        return {name: f"{obj} is another company's."}
    return {}


class CompanyFixed:
    """A row with history stays in its company: moving a customer or a fee would hand one
    company's invoices to another and strand its receivables."""

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "company"] if obj is not None else fields


def invoice_new_enrolments(modeladmin, request, enrolments) -> None:
    """Invoice each new enrolment that asks for it; report what was made or refused."""
    for enrolment in enrolments:
        if not enrolment.invoice_on_enrolment:
            continue
        try:
            with transaction.atomic():
                made = invoicing.invoice_enrolment(enrolment).invoices
        except (ValidationError, LedgerStateError) as exc:
            text = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            modeladmin.message_user(
                request, f"{enrolment} was not invoiced ({text}); the period's run will bill it.", messages.WARNING
            )
            continue
        if made:
            modeladmin.message_user(request, f"{enrolment}: invoice {', '.join(map(str, made))} made.")


# --- Enrolments -----------------------------------------------------------------------------


class EnrolmentForm(forms.ModelForm):
    class Meta:
        model = Enrolment
        fields = [
            "company",
            "customer",
            "fee_structure",
            "start_date",
            "end_date",
            "consolidate",
            "invoice_on_enrolment",
        ]

    def clean(self) -> dict:
        data = super().clean()
        enrolment = self.instance
        # In a customer's inline the form has neither company nor customer: the customer's decides.
        customer = data.get("customer") or getattr(enrolment, "customer", None)
        company_id = (
            data["company"].pk if data.get("company") else enrolment.company_id or getattr(customer, "company_id", None)
        )
        errors = {
            **_of_company(customer, company_id, "customer"),
            **_of_company(data.get("fee_structure"), company_id, "fee_structure"),
        }
        if enrolment.pk and not errors:
            # A billed enrolment's invoices name its customer and fee: they stay.
            moved = [
                name
                for name in ("customer", "fee_structure")
                if data.get(name) is not None and data[name].pk != getattr(enrolment, f"{name}_id")
            ]
            if moved and InvoiceLine.objects.filter(enrolment=enrolment).exists():
                errors = {name: "It has been invoiced; end it and enrol anew." for name in moved}
        if errors:
            raise ValidationError(errors)
        return data


class EnrolmentInline(CompanyScoped, admin.TabularInline):
    """A customer's enrolments; they take the customer's company."""

    model = Enrolment
    form = EnrolmentForm
    fields = ["fee_structure", "start_date", "end_date", "consolidate", "invoice_on_enrolment"]
    autocomplete_fields = ["fee_structure"]
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("fee_structure")


@admin.register(Enrolment)
class EnrolmentAdmin(CompanyScoped, CompanyFixed, admin.ModelAdmin):
    form = EnrolmentForm
    list_display = ["id", "customer", "fee_structure", "company", "start_date", "end_date", "consolidate"]
    list_display_links = ["id", "customer"]
    list_filter = ["company", "fee_structure__cadence", "consolidate", "invoice_on_enrolment"]
    list_select_related = ["customer", "fee_structure", "company"]
    search_fields = ["customer__name", "customer__external_ref", "fee_structure__code", "fee_structure__name"]
    autocomplete_fields = ["company", "customer", "fee_structure"]
    date_hierarchy = "start_date"
    readonly_fields = ["created_at", "updated_at"]

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            invoice_new_enrolments(self, request, [obj])


# --- Customers -------------------------------------------------------------------------------


class CustomerForm(forms.ModelForm):
    class Meta:
        model = Customer
        fields = [
            "company",
            "name",
            "email",
            "external_ref",
            "credit_limit",
            "payment_terms_days",
            "portal_user",
            "active",
        ]

    def clean(self) -> dict:
        data = super().clean()
        user = data.get("portal_user")
        company = data.get("company") or getattr(self.instance, "company", None)
        if user is not None and company is not None:
            # The portal user gets the customer's invoices and letters: not staff, and not
            # someone of another company only.
            elsewhere = Membership.objects.filter(user=user).exclude(company=company).exists()
            here = Membership.objects.filter(user=user, company=company).exists()
            if user.is_staff or (elsewhere and not here):
                raise ValidationError({"portal_user": f"{user} belongs to another company or to the staff."})
        return data


@admin.register(Customer)
class CustomerAdmin(CompanyScoped, CompanyFixed, admin.ModelAdmin):
    """A customer with invoices, payments or enrolments is not deleted (Django's protected
    page says what holds it): untick "active" instead."""

    list_display = ["name", "company", "email", "external_ref", "credit_limit", "payment_terms_days", "active"]
    list_filter = ["company", "active"]
    list_select_related = ["company"]
    list_editable = ["active"]
    search_fields = ["name", "email", "external_ref"]
    autocomplete_fields = ["company", "portal_user"]
    readonly_fields = ["party", "created_at", "updated_at"]
    form = CustomerForm
    inlines = [EnrolmentInline]

    @admin.display(description="ledger party")
    def party(self, obj) -> str:
        return obj.party if obj.pk else "—"

    def save_formset(self, request, form, formset, change) -> None:
        if formset.model is not Enrolment:
            return super().save_formset(request, form, formset, change)
        enrolments = formset.save(commit=False)
        for enrolment in enrolments:
            enrolment.company_id = form.instance.company_id
            enrolment.save()
        for gone in formset.deleted_objects:
            gone.delete()
        formset.save_m2m()
        invoice_new_enrolments(self, request, formset.new_objects)


# --- Fee structures ------------------------------------------------------------------------------


class FeeStructureForm(forms.ModelForm):
    class Meta:
        model = FeeStructure
        fields = [
            "company",
            "code",
            "name",
            "description",
            "amount",
            "currency",
            "cadence",
            "tax_rate",
            "income_account",
            "active",
        ]

    def clean(self) -> dict:
        data = super().clean()
        company = data.get("company") or getattr(self.instance, "company", None)
        if company is None:
            return data
        errors = {}
        if data.get("currency") and data["currency"] != company.base_currency:
            errors["currency"] = f"{company}'s books are in {company.base_currency}; bill in it."
        amount = data.get("amount")
        if amount is not None:
            error = places_error(amount, company.base_currency)
            if error is None and amount > LARGEST:
                error = f"At most {LARGEST}."
            if error:
                errors["amount"] = error
        account = data.get("income_account")
        if account is not None:
            if account.company_id != company.pk:
                errors["income_account"] = f"{account} is another company's."
            elif account.type != AccountType.INCOME:
                errors["income_account"] = f"{account} is not an income account."
        if errors:
            raise ValidationError(errors)
        return data


class ComponentFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        kept = [f.cleaned_data for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]
        company = getattr(self.instance, "company", None) if self.instance.company_id else None
        if company is not None:
            wrong = [places_error(row["amount"], company.base_currency) for row in kept]
            if any(wrong):
                raise ValidationError(next(error for error in wrong if error))
        amount = self.instance.amount
        if kept and amount is not None:
            total = sum(row["amount"] for row in kept)
            if total != amount:
                raise ValidationError(f"The components add up to {total}, not the fee's amount {amount}.")


class ComponentInline(admin.TabularInline):
    """A fee's parts; the fee's permissions decide."""

    model = FeeComponent
    formset = ComponentFormSet
    fields = ["position", "name", "amount"]
    extra = 0


@admin.register(FeeStructure)
class FeeStructureAdmin(CompanyScoped, CompanyFixed, admin.ModelAdmin):
    """A fee with enrolments or invoice lines is not deleted: untick "active" instead."""

    form = FeeStructureForm
    list_display = ["code", "name", "company", "amount", "currency", "cadence", "tax_rate", "active"]
    list_display_links = ["code", "name"]
    list_filter = ["company", "cadence", "active"]
    list_select_related = ["company"]
    search_fields = ["code", "name"]
    autocomplete_fields = ["company", "income_account"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [ComponentInline]
