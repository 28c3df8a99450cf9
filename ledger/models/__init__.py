"""The ledger's models, one module per aggregate."""

from ledger.models.accounts import Account, AccountRole, AccountType, NormalBalance
from ledger.models.company import Company, CompanyScopedQuerySet, Membership
from ledger.models.journals import EntryStatus, JournalEntry, JournalLine, Source
from ledger.models.periods import FiscalYear, Period, PeriodStatus
from ledger.models.reports import (
    Budget,
    BudgetVariance,
    DailyTotal,
    PeriodBalance,
    Reconciliation,
    TrialBalanceSnapshot,
)

__all__ = [
    "Account",
    "AccountRole",
    "AccountType",
    "Budget",
    "BudgetVariance",
    "Company",
    "CompanyScopedQuerySet",
    "DailyTotal",
    "EntryStatus",
    "FiscalYear",
    "JournalEntry",
    "JournalLine",
    "Membership",
    "NormalBalance",
    "Period",
    "PeriodBalance",
    "PeriodStatus",
    "Reconciliation",
    "Source",
    "TrialBalanceSnapshot",
]
