"""Customer statements and credit limit breaches, the sales-ledger jobs' records.

A statement is a snapshot: the customer's open items and aging summary as of its date,
kept as they were, so the HTML and PDF made from it later show what was sent whatever
has happened on the account since. One per customer and date, so a re-run of
SL_STATEMENT_GENERATION finds the statement there and makes and sends nothing again.

A breach is an episode of a customer's balance above their credit limit: opened on the
first business date SL_CREDIT_LIMIT_CHECK finds it over (and notified then, once), cleared
on the first date it finds it back within the limit. Going over again opens a new one.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from ledger.models import CompanyScopedQuerySet
from ledger.models.journals import MONEY


class StatementQuerySet(CompanyScopedQuerySet):
    def unsent(self) -> StatementQuerySet:
        return self.filter(notified_at__isnull=True)


class Statement(models.Model):
    """A customer's statement of account as of ``statement_date``.

    ``items`` lists the open items, oldest first: ``{"kind", "id", "number",
    "date", "due_date", "total", "amount", "bucket"}`` with ``amount`` the open amount
    (a credit's unallocated rest is negative) and ``total`` the document's own; ``aging``
    is ``[{"label", "amount"}]`` in column order. Amounts are decimal strings in the
    currency's places; ``balance`` is their sum, the customer's balance by the balance rule.
    """

    company = models.ForeignKey("ledger.Company", on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey("billing.Customer", on_delete=models.PROTECT, related_name="statements")
    statement_date = models.DateField()
    customer_name = models.CharField(max_length=200, help_text="As it was on the statement date.")
    currency = models.CharField(max_length=3)
    balance = models.DecimalField(**MONEY)
    items = models.JSONField(default=list, blank=True)
    aging = models.JSONField(default=list, blank=True)
    job_run = models.ForeignKey("scheduling.JobRun", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    notified_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was handed to notifications for the customer."
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = StatementQuerySet.as_manager()

    class Meta:
        ordering = ["-statement_date", "customer_name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "statement_date"], name="statement_once_per_customer_date"),
        ]
        indexes = [models.Index(fields=["company", "statement_date"], name="statement_company_date")]

    def __str__(self) -> str:
        return f"{self.number} {self.customer_name}"

    @property
    def number(self) -> str:
        """``ST-20260131-42``: the date and the customer, which make a statement unique."""
        return statement_number(self.statement_date, self.customer_id)


def statement_number(statement_date, customer_id: int) -> str:
    return f"ST-{statement_date:%Y%m%d}-{customer_id}"


class BreachQuerySet(CompanyScopedQuerySet):
    def open(self) -> BreachQuerySet:
        return self.filter(cleared_on__isnull=True)


class CreditLimitBreach(models.Model):
    """A customer over their credit limit from ``since`` until ``cleared_on`` (the first
    date found within it again; empty while still over). ``credit_limit`` and ``balance``
    are as found on ``since``."""

    company = models.ForeignKey("ledger.Company", on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey("billing.Customer", on_delete=models.PROTECT, related_name="credit_limit_breaches")
    since = models.DateField()
    cleared_on = models.DateField(null=True, blank=True)
    credit_limit = models.DecimalField(**MONEY)
    balance = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    job_run = models.ForeignKey("scheduling.JobRun", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    notified_at = models.DateTimeField(null=True, blank=True, help_text="When staff were notified.")
    created_at = models.DateTimeField(default=timezone.now)

    objects = BreachQuerySet.as_manager()

    class Meta:
        ordering = ["-since", "-pk"]
        constraints = [
            # One episode open at a time: the check inserts with ON CONFLICT DO NOTHING, so a
            # second run on the same day or a concurrent one opens nothing twice.
            models.UniqueConstraint(
                fields=["customer"], condition=models.Q(cleared_on__isnull=True), name="credit_breach_one_open"
            ),
            models.UniqueConstraint(fields=["customer", "since"], name="credit_breach_once_per_day"),
            models.CheckConstraint(
                condition=models.Q(cleared_on__isnull=True) | models.Q(cleared_on__gte=models.F("since")),
                name="credit_breach_cleared_after_since",
            ),
        ]
        indexes = [models.Index(fields=["company", "since"], name="credit_breach_company_since")]

    def __str__(self) -> str:
        return f"{self.customer} over the credit limit since {self.since}"

    @property
    def is_open(self) -> bool:
        return self.cleared_on is None

    @property
    def over_by(self):
        return self.balance - self.credit_limit
