"""Invoices, invoice runs and document number sequences in the admin.

Invoices are records here: the runs, the API and the services make and change them.
An operator reads one (with its lines), opens it as a PDF or HTML page, finalises
drafts with the action (the finalising service: numbered, posted, sent) and deletes
drafts; an issued invoice is voided, never deleted. Invoice runs are the billing side of
a job run, read-only, linked to the run. A sequence's next number is the finalising
service's to advance: set once when adding it (to carry on from another system), never
rewritten after.
"""

from __future__ import annotations

from collections import defaultdict

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.urls import path, reverse
from django.utils.html import format_html

from billing.errors import BillingStateError
from billing.models import DocumentSequence, Invoice, InvoiceLine, InvoiceRun, InvoiceStatus
from billing.services import documents, finalising, manual, periods
from config.companies import CompanyScoped
from ledger.admin.common import entry_link
from ledger.errors import LedgerStateError
from ledger.models import Company
from scheduling.admin import ReadOnlyAdmin, ReadOnlyInline


class InvoiceLineInline(ReadOnlyInline):
    model = InvoiceLine
    fields = ["position", "description", "enrolment", "amount", "tax_rate", "tax", "total", "income_account", "billed"]
    readonly_fields = fields
    ordering = ["position", "pk"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("income_account", "enrolment__customer")


INVOICE_RECORD = [
    "company",
    "customer",
    "number",
    "status",
    "source",
    "billing_key",
    "issue_date",
    "due_date",
    "cadence",
    "period_start",
    "period_end",
    "consolidated",
    "enrolment",
    "template",
    "charged_for",
    "currency",
    "subtotal",
    "tax",
    "total",
    "paid",
    "credited",
    "due",
    "memo",
    "journal",
    "finalised_at",
    "void_date",
    "void_reason",
    "void_journal",
    "documents",
    "created_at",
]


@admin.register(Invoice)
class InvoiceAdmin(CompanyScoped, admin.ModelAdmin):
    list_display = [
        "label",
        "company",
        "customer",
        "status",
        "source",
        "cadence",
        "issue_date",
        "due_date",
        "total",
        "due",
        "pdf",
    ]
    list_display_links = ["label"]
    list_filter = ["company", "status", "cadence", "source", "consolidated"]
    list_select_related = ["company", "customer"]
    search_fields = ["number", "customer__name", "customer__external_ref", "billing_key"]
    date_hierarchy = "issue_date"
    fields = INVOICE_RECORD
    readonly_fields = INVOICE_RECORD
    inlines = [InvoiceLineInline]
    actions = ["finalise_drafts"]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        drafts_only = obj is None or obj.status == InvoiceStatus.DRAFT
        return drafts_only and super().has_delete_permission(request, obj)

    def delete_model(self, request, obj) -> None:
        try:
            manual.delete_draft(obj)
        except BillingStateError as exc:
            raise PermissionDenied(str(exc)) from None

    def has_finalise_permission(self, request) -> bool:
        return request.user.has_perm("billing.change_invoice")

    def get_actions(self, request):
        # Bulk delete would take issued invoices too: those are voided, never deleted.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def get_urls(self):
        document = self.admin_site.admin_view(self.document_view)
        return [
            path("<int:pk>/document.<str:fmt>", document, name="billing_invoice_document"),
            *super().get_urls(),
        ]

    def document_view(self, request, pk: int, fmt: str) -> HttpResponse:
        """The invoice as the API serves it, reached through the admin's own scoping."""
        if fmt not in ("pdf", "html"):
            raise Http404("No such format.")
        invoice = (
            self.get_queryset(request)
            .select_related("company", "customer")
            .prefetch_related("lines")
            .filter(pk=pk)
            .first()
        )
        if invoice is None:
            raise Http404("No such invoice.")
        if not self.has_view_permission(request, invoice):
            raise PermissionDenied
        name = invoice.number or f"draft-{invoice.pk}"
        if fmt == "pdf":
            response = HttpResponse(documents.render_pdf(invoice), content_type="application/pdf")
        else:
            response = HttpResponse(documents.render_html(invoice), content_type="text/html; charset=utf-8")
        response["Content-Disposition"] = f'inline; filename="{name}.{fmt}"'
        return response

    @admin.display(description="invoice", ordering="number")
    def label(self, obj) -> str:
        return obj.label

    @admin.display(description="PDF")
    def pdf(self, obj) -> str:
        return format_html('<a href="{}">PDF</a>', reverse("admin:billing_invoice_document", args=[obj.pk, "pdf"]))

    @admin.display(description="documents")
    def documents(self, obj) -> str:
        return format_html(
            '<a href="{}">PDF</a> · <a href="{}">HTML</a>',
            reverse("admin:billing_invoice_document", args=[obj.pk, "pdf"]),
            reverse("admin:billing_invoice_document", args=[obj.pk, "html"]),
        )

    @admin.display(description="journal entry")
    def journal(self, obj) -> str:
        return entry_link(obj.journal_entry_id) if obj.journal_entry_id else "—"

    @admin.display(description="void entry")
    def void_journal(self, obj) -> str:
        return entry_link(obj.void_entry_id) if obj.void_entry_id else "—"

    @admin.action(description="Finalise selected drafts", permissions=["finalise"])
    def finalise_drafts(self, request, queryset):
        """Each company's drafts in one go (numbered in id order); a company refused does
        not stop the others."""
        drafts: dict[int, list[int]] = defaultdict(list)
        for company_id, pk in queryset.filter(status=InvoiceStatus.DRAFT).order_by("pk").values_list("company", "pk"):
            drafts[company_id].append(pk)
        others = queryset.exclude(status=InvoiceStatus.DRAFT).count()
        done, refused = 0, []
        for company in Company.objects.filter(pk__in=drafts).order_by("pk"):
            try:
                done += len(finalising.finalise(company, drafts[company.pk]).invoices)
            except (ValidationError, LedgerStateError) as exc:
                reason = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
                refused.append(f"{company.slug}: {reason}")
        message = f"Finalised {done} drafts" + (f"; {others} not drafts left alone" if others else "")
        if refused:
            message += f"; refused: {'; '.join(refused)}"
        level = messages.SUCCESS if not refused else messages.WARNING if done else messages.ERROR
        self.message_user(request, message, level)


@admin.register(InvoiceRun)
class InvoiceRunAdmin(CompanyScoped, ReadOnlyAdmin):
    list_display = [
        "period",
        "company",
        "cadence",
        "issue_date",
        "consolidate",
        "finalise",
        "enrolments",
        "created",
        "skipped",
        "notified",
        "total",
        "run",
        "created_at",
    ]
    list_filter = ["company", "cadence", "consolidate", "finalise"]
    list_select_related = ["company", "job_run"]
    date_hierarchy = "period_start"
    fields = [
        "company",
        "cadence",
        "period_start",
        "period_end",
        "issue_date",
        "consolidate",
        "finalise",
        "enrolments",
        "created",
        "skipped",
        "notified",
        "total",
        "run",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields

    @admin.display(description="period", ordering="period_start")
    def period(self, obj) -> str:
        return periods.label(obj.cadence, obj.period_start)

    @admin.display(description="job run")
    def run(self, obj) -> str:
        if obj.job_run_id is None:
            return "—"
        link = reverse("admin:scheduling_jobrun_change", args=[obj.job_run_id])
        return format_html('<a href="{}">{} ({})</a>', link, obj.job_run_id, obj.job_run.status)


class DocumentSequenceForm(forms.ModelForm):
    class Meta:
        model = DocumentSequence
        fields = ["company", "series", "prefix", "padding", "next_number"]

    def clean(self) -> dict:
        data = super().clean()
        prefix, padding = data.get("prefix", self.instance.prefix), data.get("padding", self.instance.padding)
        if prefix is not None and padding is not None and len(prefix) + padding > NUMBER_LENGTH:
            # Every finalising of the company would fail on a number its column cannot hold.
            raise ValidationError({"padding": f"Prefix and digits must fit in {NUMBER_LENGTH} characters."})
        return data


NUMBER_LENGTH = Invoice._meta.get_field("number").max_length


@admin.register(DocumentSequence)
class DocumentSequenceAdmin(CompanyScoped, admin.ModelAdmin):
    form = DocumentSequenceForm
    list_display = ["company", "series", "prefix", "padding", "next_number", "next"]
    list_filter = ["company", "series"]
    list_select_related = ["company"]
    autocomplete_fields = ["company"]

    def get_readonly_fields(self, request, obj=None):
        return ["company", "series", "next_number", "next"] if obj else ["next"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # its numbers are taken: a new row would start again at 1

    @admin.display(description="next document")
    def next(self, obj) -> str:
        return obj.format(obj.next_number) if obj.pk else "—"

    def save_model(self, request, obj, form, change) -> None:
        if change:
            # The counter may have moved since the form was read: write only what it edits.
            obj.save(update_fields=["prefix", "padding"])
        else:
            obj.save()
