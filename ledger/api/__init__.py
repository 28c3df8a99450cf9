"""The ledger's API: companies and the caller, and under ledger/ the chart of accounts,
periods, journal entries, balances, the trial balance, budgets and what the GL jobs store.
Everything is scoped to the caller's companies (staff see all)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from ledger.api.accounts import AccountViewSet, FiscalYearViewSet, PeriodViewSet
from ledger.api.companies import CompanyViewSet, MeView
from ledger.api.journals import JournalEntryViewSet
from ledger.api.reports import (
    BalancesView,
    BudgetVarianceViewSet,
    BudgetViewSet,
    DailyTotalViewSet,
    ReconciliationViewSet,
    SnapshotViewSet,
    TrialBalanceView,
)

router = SimpleRouter(trailing_slash=False, use_regex_path=False)
router.register("companies", CompanyViewSet, basename="company")
router.register("ledger/accounts", AccountViewSet, basename="ledger-account")
router.register("ledger/fiscal-years", FiscalYearViewSet, basename="ledger-fiscal-year")
router.register("ledger/periods", PeriodViewSet, basename="ledger-period")
router.register("ledger/journal-entries", JournalEntryViewSet, basename="ledger-journal-entry")
router.register("ledger/budgets", BudgetViewSet, basename="ledger-budget")
router.register("ledger/budget-variances", BudgetVarianceViewSet, basename="ledger-budget-variance")
router.register("ledger/daily-totals", DailyTotalViewSet, basename="ledger-daily-total")
router.register("ledger/trial-balance-snapshots", SnapshotViewSet, basename="ledger-trial-balance-snapshot")
router.register("ledger/reconciliations", ReconciliationViewSet, basename="ledger-reconciliation")

urlpatterns = [
    path("me", MeView.as_view(), name="me"),
    path("ledger/balances", BalancesView.as_view(), name="ledger-balances"),
    path("ledger/trial-balance", TrialBalanceView.as_view(), name="ledger-trial-balance"),
    *router.urls,
]
