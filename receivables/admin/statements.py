"""Customer statements and credit limit breaches in the admin, read-only: the sales-ledger
jobs make them. An operator reads a statement (its open items and aging as sent), opens
it as a PDF or HTML page, and sees which customers are or were over their credit limit."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from config.companies import CompanyScoped
from receivables.models.statements import CreditLimitBreach, Statement
from receivables.services import statements
from scheduling.admin import ReadOnlyAdmin


def run_link(obj) -> str:
    if obj.job_run_id is None:
        return "—"
    return format_html(
        '<a href="{}">{}</a>', reverse("admin:scheduling_jobrun_change", args=[obj.job_run_id]), obj.job_run_id
    )


@admin.register(Statement)
class StatementAdmin(CompanyScoped, ReadOnlyAdmin):
    list_display = ["number", "customer_name", "company", "statement_date", "balance", "currency", "notified_at", "pdf"]
    list_display_links = ["number"]
    list_filter = ["company", "statement_date"]
    list_select_related = ["company"]
    search_fields = ["customer_name", "customer__external_ref", "customer__email"]
    date_hierarchy = "statement_date"
    fields = [
        "company",
        "customer",
        "customer_name",
        "statement_date",
        "currency",
        "balance",
        "aging_summary",
        "open_items",
        "documents",
        "run",
        "notified_at",
        "created_at",
    ]
    readonly_fields = fields
    show_full_result_count = False

    def get_urls(self):
        document = self.admin_site.admin_view(self.document_view)
        return [
            path("<int:pk>/document.<str:fmt>", document, name="receivables_statement_document"),
            *super().get_urls(),
        ]

    def document_view(self, request, pk: int, fmt: str) -> HttpResponse:
        """The statement as the API serves it, reached through the admin's own scoping."""
        if fmt not in ("pdf", "html"):
            raise Http404("No such format.")
        statement = self.get_queryset(request).select_related("company", "customer").filter(pk=pk).first()
        if statement is None:
            raise Http404("No such statement.")
        if not self.has_view_permission(request, statement):
            raise PermissionDenied
        if fmt == "pdf":
            response = HttpResponse(statements.render_pdf(statement), content_type="application/pdf")
        else:
            response = HttpResponse(statements.render_html(statement), content_type="text/html; charset=utf-8")
        response["Content-Disposition"] = f'inline; filename="{statement.number}.{fmt}"'
        return response

    @admin.display(description="statement", ordering="statement_date")
    def number(self, obj: Statement) -> str:
        return obj.number

    @admin.display(description="PDF")
    def pdf(self, obj: Statement) -> str:
        return format_html(
            '<a href="{}">PDF</a>', reverse("admin:receivables_statement_document", args=[obj.pk, "pdf"])
        )

    @admin.display(description="documents")
    def documents(self, obj: Statement) -> str:
        return format_html(
            '<a href="{}">PDF</a> · <a href="{}">HTML</a>',
            reverse("admin:receivables_statement_document", args=[obj.pk, "pdf"]),
            reverse("admin:receivables_statement_document", args=[obj.pk, "html"]),
        )

    @admin.display(description="aging")
    def aging_summary(self, obj: Statement) -> str:
        return format_html_join(" · ", "{}: {}", ((bucket["label"], bucket["amount"]) for bucket in obj.aging))

    @admin.display(description="open items")
    def open_items(self, obj: Statement) -> str:
        if not obj.items:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    item["date"],
                    item["number"] or item["id"],
                    item["kind"],
                    item["due_date"] or "",
                    item["bucket"],
                    item["amount"],
                )
                for item in obj.items
            ),
        )
        return format_html(
            "<table><thead><tr><th>date</th><th>number</th><th>kind</th><th>due</th><th>aged</th><th>open</th></tr>"
            "</thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="job run")
    def run(self, obj: Statement) -> str:
        return run_link(obj)


@admin.register(CreditLimitBreach)
class CreditLimitBreachAdmin(CompanyScoped, ReadOnlyAdmin):
    list_display = ["customer", "company", "since", "cleared_on", "credit_limit", "balance", "over_by", "notified_at"]
    list_filter = ["company", ("cleared_on", admin.EmptyFieldListFilter), "since"]
    list_select_related = ["company", "customer"]
    search_fields = ["customer__name", "customer__external_ref"]
    date_hierarchy = "since"
    fields = [
        "company",
        "customer",
        "since",
        "cleared_on",
        "currency",
        "credit_limit",
        "balance",
        "over_by",
        "run",
        "notified_at",
        "created_at",
    ]
    readonly_fields = fields

    @admin.display(description="over by")
    def over_by(self, obj: CreditLimitBreach):
        return obj.over_by

    @admin.display(description="job run")
    def run(self, obj: CreditLimitBreach) -> str:
        return run_link(obj)
