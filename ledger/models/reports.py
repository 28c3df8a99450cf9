"""What the GL jobs store: closing balances per period, budgets and their variance, daily
totals, trial balance snapshots and reconciliations."""

from __future__ import annotations

from django.db import models

from ledger.models.company import CompanyScopedQuerySet
from ledger.models.journals import MONEY


class PeriodBalance(models.Model):
    """An account's movement in a closed period and its balance at the period's end: the
    starting point for any balance after it, so no balance scans from the first entry."""

    company = models.ForeignKey("ledger.Company", on_delete=models.CASCADE, related_name="+")
    period = models.ForeignKey("ledger.Period", on_delete=models.CASCADE, related_name="balances")
    account = models.ForeignKey("ledger.Account", on_delete=models.CASCADE, related_name="period_balances")
    debit = models.DecimalField(**MONEY)
    credit = models.DecimalField(**MONEY)
    closing = models.DecimalField(**MONEY, help_text="Debit-positive, at the period's end.")

    objects = CompanyScopedQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["period", "account"], name="period_balance_unique")]

    def __str__(self) -> str:
        return f"{self.account_id} in {self.period_id}: {self.closing}"


class Budget(models.Model):
    """A budgeted movement for an account in a period, in the account's natural direction
    (income budgets and expense budgets are both positive)."""

    company = models.ForeignKey("ledger.Company", on_delete=models.CASCADE, related_name="budgets")
    account = models.ForeignKey("ledger.Account", on_delete=models.CASCADE, related_name="budgets")
    period = models.ForeignKey("ledger.Period", on_delete=models.CASCADE, related_name="budgets")
    amount = models.DecimalField(**MONEY)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CompanyScopedQuerySet.as_manager()

    class Meta:
        ordering = ["period_id", "account_id"]
        constraints = [models.UniqueConstraint(fields=["account", "period"], name="budget_unique")]

    def __str__(self) -> str:
        return f"{self.account} {self.period}: {self.amount}"


class BudgetVariance(models.Model):
    company = models.ForeignKey("ledger.Company", on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey("ledger.Account", on_delete=models.CASCADE, related_name="+")
    period = models.ForeignKey("ledger.Period", on_delete=models.CASCADE, related_name="+")
    budget = models.DecimalField(**MONEY)
    actual = models.DecimalField(**MONEY)
    variance = models.DecimalField(**MONEY, help_text="Actual less budget, in the account's natural direction.")
    percentage = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, help_text="Of the budget; empty when it is zero."
    )
    favourable = models.BooleanField(help_text="More income or less expense than budgeted.")
    computed_at = models.DateTimeField()

    objects = CompanyScopedQuerySet.as_manager()

    class Meta:
        ordering = ["period_id", "account_id"]
        constraints = [models.UniqueConstraint(fields=["account", "period"], name="budget_variance_unique")]

    def __str__(self) -> str:
        return f"{self.account_id} in {self.period_id}: {self.variance}"


class DailyTotal(models.Model):
    company = models.ForeignKey("ledger.Company", on_delete=models.CASCADE, related_name="+")
    date = models.DateField()
    entries = models.PositiveIntegerField()
    lines = models.PositiveIntegerField()
    debit = models.DecimalField(**MONEY)
    credit = models.DecimalField(**MONEY)
    balanced = models.BooleanField()
    stale_drafts = models.PositiveIntegerField(default=0)
    recorded_at = models.DateTimeField()

    objects = CompanyScopedQuerySet.as_manager()

    class Meta:
        ordering = ["company_id", "-date"]
        constraints = [models.UniqueConstraint(fields=["company", "date"], name="daily_total_unique")]

    def __str__(self) -> str:
        return f"{self.company_id} {self.date}"


class TrialBalanceSnapshot(models.Model):
    company = models.ForeignKey("ledger.Company", on_delete=models.CASCADE, related_name="+")
    date_from = models.DateField()
    date_to = models.DateField()
    run = models.ForeignKey("scheduling.JobRun", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    debit = models.DecimalField(**MONEY)
    credit = models.DecimalField(**MONEY)
    balanced = models.BooleanField()
    rows = models.JSONField(help_text="Each account's opening, debits, credits and closing.")
    created_at = models.DateTimeField()

    objects = CompanyScopedQuerySet.as_manager()

    class Meta:
        ordering = ["company_id", "-date_to", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["company", "date_from", "date_to"], name="trial_balance_snapshot_unique")
        ]

    def __str__(self) -> str:
        return f"Trial balance {self.date_from}..{self.date_to}"


class Reconciliation(models.Model):
    """A control account's balance against its sub-ledger on a date, with the parties
    whose balances differ."""

    company = models.ForeignKey("ledger.Company", on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey("ledger.Account", on_delete=models.CASCADE, related_name="reconciliations")
    as_of = models.DateField()
    subledger = models.CharField(max_length=100, help_text="Which sub-ledger the balance was compared with.")
    ledger_balance = models.DecimalField(**MONEY)
    subledger_balance = models.DecimalField(**MONEY)
    difference = models.DecimalField(**MONEY)
    differences = models.JSONField(default=list, help_text="Parties whose balances differ.")
    computed_at = models.DateTimeField()

    objects = CompanyScopedQuerySet.as_manager()

    class Meta:
        ordering = ["company_id", "-as_of", "account_id"]
        constraints = [models.UniqueConstraint(fields=["account", "as_of"], name="reconciliation_unique")]

    def __str__(self) -> str:
        return f"{self.account_id} on {self.as_of}: {self.difference}"

    @property
    def reconciled(self) -> bool:
        return self.difference == 0 and not self.differences
