"""Aged receivables report runs: what was asked, the job run doing it, and its output.

A report is asked for through the API (or stored weekly by SL_AGED_DEBTORS) and made by a
job run on the ``receivables`` queue. Its output (JSON or an Excel workbook) is kept on the
row, so any web process can serve the download whichever worker made it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ReportSource(models.TextChoices):
    DB = "db", "billing's books"
    XERO = "xero", "Xero"
    FILE = "file", "imported file"


class ReportFormat(models.TextChoices):
    JSON = "json"
    XLSX = "xlsx"


class PeriodType(models.TextChoices):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class AgeBy(models.TextChoices):
    DUE = "due", "due date"
    INVOICE = "invoice", "invoice date"


class CreditAging(models.TextChoices):
    CURRENT = "current", "in Current"
    DATE = "date", "by its own date"


class AgedReportQuerySet(models.QuerySet):
    def for_user(self, user) -> AgedReportQuerySet:
        """Staff read every report; others those whose every company is theirs (a report
        over connections or files of no company is staff only)."""
        if not user.is_authenticated:
            return self.none()
        if user.is_staff:
            return self.all()
        from ledger.models import Company

        others = Company.objects.exclude(memberships__user=user)
        return self.filter(companies__memberships__user=user).exclude(companies__in=others).distinct()


class AgedReport(models.Model):
    as_of = models.DateField()
    periods = models.PositiveSmallIntegerField(default=4)
    period_type = models.CharField(max_length=5, choices=PeriodType.choices, default=PeriodType.MONTH)
    period_length = models.PositiveSmallIntegerField(default=1)
    age_by = models.CharField(max_length=7, choices=AgeBy.choices, default=AgeBy.DUE)
    credit_aging = models.CharField(max_length=7, choices=CreditAging.choices, default=CreditAging.CURRENT)
    source = models.CharField(max_length=4, choices=ReportSource.choices)
    format = models.CharField(max_length=4, choices=ReportFormat.choices, default=ReportFormat.JSON)
    companies = models.ManyToManyField("ledger.Company", blank=True, related_name="+")
    xero_app = models.ForeignKey(
        "receivables.XeroApp", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    connections = models.ManyToManyField("receivables.XeroConnection", blank=True, related_name="+")
    document_set = models.ForeignKey(
        "receivables.DocumentSet", on_delete=models.CASCADE, null=True, blank=True, related_name="reports"
    )
    job_run = models.ForeignKey("scheduling.JobRun", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    failures = models.JSONField(default=list, blank=True, help_text="Tenants or companies left out, and why.")
    totals = models.JSONField(default=list, blank=True, help_text="The report's totals per company and currency.")
    reconciliation = models.JSONField(default=list, blank=True)
    from_cache = models.BooleanField(default=False)
    output = models.BinaryField(null=True, blank=True, editable=False)
    output_name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = AgedReportQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"Aged receivables as of {self.as_of} ({self.get_source_display()})"
