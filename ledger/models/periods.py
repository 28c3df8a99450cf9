from __future__ import annotations

import datetime

from django.conf import settings
from django.db import models

from ledger.models.company import CompanyScopedQuerySet


class PeriodStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"  # no postings; can be reopened by staff
    LOCKED = "locked", "Locked"  # the year is closed for good


class FiscalYear(models.Model):
    company = models.ForeignKey("ledger.Company", on_delete=models.CASCADE, related_name="fiscal_years")
    name = models.CharField(max_length=20)
    start_date = models.DateField()
    end_date = models.DateField()
    status = models.CharField(max_length=6, choices=PeriodStatus.choices, default=PeriodStatus.OPEN)
    closed_at = models.DateTimeField(null=True, blank=True)

    objects = CompanyScopedQuerySet.as_manager()

    class Meta:
        ordering = ["company_id", "start_date"]
        constraints = [
            models.UniqueConstraint(fields=["company", "start_date"], name="fiscal_year_unique_start"),
            models.CheckConstraint(condition=models.Q(end_date__gt=models.F("start_date")), name="fiscal_year_ends"),
        ]

    def __str__(self) -> str:
        return f"{self.company} {self.name}"

    def contains(self, day: datetime.date) -> bool:
        return self.start_date <= day <= self.end_date


class PeriodQuerySet(CompanyScopedQuerySet):
    def containing(self, day: datetime.date) -> PeriodQuerySet:
        return self.filter(start_date__lte=day, end_date__gte=day)

    def open(self) -> PeriodQuerySet:
        return self.filter(status=PeriodStatus.OPEN)

    def with_balances(self) -> PeriodQuerySet:
        """Closed periods whose closing balances are stored: starting points for balances."""
        return self.exclude(status=PeriodStatus.OPEN).filter(balances_at__isnull=False)


class Period(models.Model):
    """A month of a fiscal year (from the year's start day to the day before it next month)."""

    company = models.ForeignKey("ledger.Company", on_delete=models.CASCADE, related_name="periods")
    fiscal_year = models.ForeignKey(FiscalYear, on_delete=models.CASCADE, related_name="periods")
    number = models.PositiveSmallIntegerField()
    start_date = models.DateField()
    end_date = models.DateField()
    status = models.CharField(max_length=6, choices=PeriodStatus.choices, default=PeriodStatus.OPEN)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    balances_at = models.DateTimeField(
        null=True, blank=True, help_text="When this period's closing balances were stored."
    )

    objects = PeriodQuerySet.as_manager()

    class Meta:
        ordering = ["company_id", "start_date"]
        constraints = [
            models.UniqueConstraint(fields=["company", "start_date"], name="period_unique_start"),
            models.UniqueConstraint(fields=["fiscal_year", "number"], name="period_unique_number"),
            models.CheckConstraint(condition=models.Q(end_date__gte=models.F("start_date")), name="period_ends"),
        ]
        indexes = [models.Index(fields=["company", "end_date"], name="period_company_end")]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        if self.start_date.day == 1:
            return f"{self.start_date:%Y-%m}"
        return f"{self.fiscal_year.name} P{self.number:02d}"

    @property
    def is_open(self) -> bool:
        return self.status == PeriodStatus.OPEN
