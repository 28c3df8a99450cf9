"""Aged reports and imported files in the admin: records, read here and downloaded; the
API and SL_AGED_DEBTORS make them."""

from __future__ import annotations

from django.contrib import admin
from django.http import Http404, HttpResponse
from django.urls import path, reverse
from django.utils.html import format_html

from config.companies import member_companies
from ledger.models import Company
from receivables.api.reports import report_file
from receivables.models import AgedReport, DocumentSet
from scheduling.admin import ReadOnlyAdmin


def visible_reports(request):
    reports = AgedReport.objects.all()
    if request.user.is_superuser:
        return reports
    others = Company.objects.exclude(pk__in=member_companies(request.user))
    return reports.filter(companies__in=member_companies(request.user)).exclude(companies__in=others).distinct()


@admin.register(AgedReport)
class AgedReportAdmin(ReadOnlyAdmin):
    list_display = [
        "pk",
        "as_of",
        "source",
        "format",
        "period_type",
        "periods",
        "created_at",
        "finished_at",
        "download",
    ]
    list_filter = ["source", "format", "period_type"]
    date_hierarchy = "as_of"
    fields = [
        "as_of",
        "periods",
        "period_type",
        "period_length",
        "age_by",
        "credit_aging",
        "source",
        "format",
        "companies",
        "xero_app",
        "connections",
        "document_set",
        "job_run",
        "requested_by",
        "created_at",
        "finished_at",
        "from_cache",
        "totals",
        "reconciliation",
        "failures",
        "download",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return visible_reports(request).defer("output").select_related("job_run")

    @admin.display(description="file")
    def download(self, report: AgedReport) -> str:
        if report.finished_at is None:
            return "-"
        url = reverse("admin:receivables_agedreport_download", args=[report.pk])
        return format_html('<a href="{}">{}</a>', url, report.format)

    def get_urls(self):
        return [
            path(
                "<int:pk>/download/",
                self.admin_site.admin_view(self.download_view),
                name="receivables_agedreport_download",
            ),
            *super().get_urls(),
        ]

    def download_view(self, request, pk: int) -> HttpResponse:
        report = visible_reports(request).filter(pk=pk, finished_at__isnull=False).first()
        if report is None or not self.has_view_permission(request, report):
            raise Http404("No such report.")
        return report_file(report)


@admin.register(DocumentSet)
class DocumentSetAdmin(ReadOnlyAdmin):
    list_display = ["name", "company", "documents", "allocations", "uploaded_by", "created_at"]
    list_filter = ["company"]
    search_fields = ["name", "sha256"]
    fields = ["name", "company", "documents", "allocations", "sha256", "uploaded_by", "created_at"]
    readonly_fields = fields

    def get_queryset(self, request):
        sets = super().get_queryset(request)
        if request.user.is_superuser:
            return sets
        return sets.filter(company__in=member_companies(request.user))

    def has_delete_permission(self, request, obj=None) -> bool:
        return super(ReadOnlyAdmin, self).has_delete_permission(request, obj)
