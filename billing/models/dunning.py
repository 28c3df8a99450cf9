"""Dunning: the levels a company chases overdue invoices at, and the notice of each level
an invoice reached.

BILLING_OVERDUE_CHECK records a notice when an open invoice reaches a level (one per
invoice per level: the unique constraint decides); SL_OVERDUE_REMINDERS sends pending
notices to the customer and charges the level's fee and interest. A payment that settles
the invoice first cancels its pending notices.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from billing.models.customers import RATE
from ledger.models import CompanyScopedQuerySet
from ledger.models.journals import MONEY

ZERO = Decimal(0)
DEFAULT_LEVEL_DAYS = 1  # a company with no levels still gets one overdue notice per invoice


def default_channels() -> list[str]:
    return ["in_app", "email"]


class DunningLevel(models.Model):
    company = models.ForeignKey("ledger.Company", on_delete=models.CASCADE, related_name="dunning_levels")
    days_overdue = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(3650)])
    name = models.CharField(max_length=100)
    kind = models.CharField(
        max_length=60,
        default="payment_reminder",
        help_text="The notification kind sent; its template (the company's, else the platform's) is the letter.",
    )
    channels = models.JSONField(default=default_channels)
    fee = models.DecimalField(**MONEY, default=ZERO, validators=[MinValueValidator(0)])
    interest_rate = models.DecimalField(
        **RATE,
        default=ZERO,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="Percent a year on the amount due, for the days overdue.",
    )
    active = models.BooleanField(default=True)

    objects = CompanyScopedQuerySet.as_manager()

    class Meta:
        ordering = ["company", "days_overdue"]
        constraints = [models.UniqueConstraint(fields=["company", "days_overdue"], name="dunning_level_unique_days")]

    def __str__(self) -> str:
        return f"{self.name} ({self.days_overdue} days)"


class NoticeStatus(models.TextChoices):
    PENDING = "pending"
    SENT = "sent"
    CANCELLED = "cancelled", "cancelled (settled first)"
    SUPERSEDED = "superseded", "superseded (a higher level was due when sent)"


class OverdueNotice(models.Model):
    company = models.ForeignKey("ledger.Company", on_delete=models.PROTECT, related_name="+")
    invoice = models.ForeignKey("billing.Invoice", on_delete=models.CASCADE, related_name="overdue_notices")
    level = models.ForeignKey(DunningLevel, on_delete=models.SET_NULL, null=True, blank=True, related_name="notices")
    level_days = models.PositiveSmallIntegerField(help_text="The level's days overdue when the notice was made.")
    days_overdue = models.PositiveIntegerField(help_text="When made; once sent, as of the day it was sent.")
    amount_due = models.DecimalField(**MONEY, help_text="When made; once sent, as of the day it was sent.")
    business_date = models.DateField()
    status = models.CharField(max_length=10, choices=NoticeStatus.choices, default=NoticeStatus.PENDING)
    notification_id = models.BigIntegerField(null=True, blank=True)
    fee = models.DecimalField(**MONEY, default=ZERO)
    interest = models.DecimalField(**MONEY, default=ZERO)
    fee_invoice = models.ForeignKey(
        "billing.Invoice", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    objects = CompanyScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-business_date", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "level_days"], name="overdue_notice_once_per_level"),
        ]
        indexes = [
            models.Index(fields=["company", "status"], condition=models.Q(status="pending"), name="notice_pending"),
        ]

    def __str__(self) -> str:
        return f"{self.invoice} at {self.level_days} days"
