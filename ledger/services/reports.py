"""What the reporting jobs store: trial balance snapshots and budget variance."""

from __future__ import annotations

import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Q, Sum
from django.utils import timezone

from ledger.models import Account, AccountType, Budget, BudgetVariance, Company, JournalLine, Period
from ledger.models.accounts import PROFIT_AND_LOSS
from ledger.models.reports import TrialBalanceSnapshot
from ledger.services import balances

ZERO = Decimal(0)
HUNDRED = Decimal(100)
PERCENT = Decimal("0.01")
MAX_PERCENTAGE = Decimal(10) ** 9


def snapshot_trial_balance(
    company: Company, date_from: datetime.date, date_to: datetime.date, *, run=None
) -> TrialBalanceSnapshot:
    """Store the trial balance for the range; a later snapshot of the same range replaces it."""
    tb = balances.trial_balance(company, date_from, date_to)
    totals = tb.totals
    snapshot, _ = TrialBalanceSnapshot.objects.update_or_create(
        company=company,
        date_from=date_from,
        date_to=date_to,
        defaults={
            "run": run,
            "debit": totals["debit"],
            "credit": totals["credit"],
            "balanced": tb.balanced,
            "rows": [row.as_dict() for row in tb.rows],
            "created_at": timezone.now(),
        },
    )
    return snapshot


def budget_variance(company: Company, periods: list[Period]) -> list[BudgetVariance]:
    """Budget against actual for each account with a budget or an income or expense
    movement in each period: variance (actual less budget, in the account's natural
    direction), percentage of budget, favourable or not. Year-end closing entries are not
    actuals. Upserted on (account, period), so a rerun replaces the figures."""
    if not periods:
        return []
    first, last = min(p.start_date for p in periods), max(p.end_date for p in periods)
    period_of = {p.pk: p for p in periods}
    budgets = {
        (account_id, period_id): amount
        for account_id, period_id, amount in Budget.objects.filter(period__in=periods).values_list(
            "account", "period", "amount"
        )
    }
    actual_rows = (
        JournalLine.objects.filter(company=company, posted=True, date__gte=first, date__lte=last)
        .filter(~Q(entry__is_closing=True), entry__period__in=periods)
        .values("account", "entry__period")
        .annotate(total=Sum("amount"))
        .values_list("account", "entry__period", "total")
    )
    actuals = {
        (account_id, period_id): balances.in_minor_units(total, company) for account_id, period_id, total in actual_rows
    }
    accounts = {
        a.pk: a for a in Account.objects.filter(pk__in={key[0] for key in budgets} | {key[0] for key in actuals})
    }
    keys = set(budgets) | {key for key in actuals if accounts[key[0]].type in (AccountType.INCOME, AccountType.EXPENSE)}
    now = timezone.now()
    rows = []
    for account_id, period_id in sorted(keys):
        account = accounts[account_id]
        budget = budgets.get((account_id, period_id), ZERO)
        actual = actuals.get((account_id, period_id), ZERO) * account.sign
        variance = actual - budget
        percentage = (variance / budget * HUNDRED).quantize(PERCENT, ROUND_HALF_UP) if budget else None
        if percentage is not None and abs(percentage) >= MAX_PERCENTAGE:
            percentage = None  # a tiny budget overshot a millionfold says nothing a percentage can
        # Income and expense by their effect on profit (more income or less expense),
        # contra accounts included: discounts given are income with a debit balance.
        favourable = variance * account.sign <= 0 if account.type in PROFIT_AND_LOSS else variance >= 0
        rows.append(
            BudgetVariance(
                company=company,
                account=account,
                period=period_of[period_id],
                budget=budget,
                actual=actual,
                variance=variance,
                percentage=percentage,
                favourable=favourable,
                computed_at=now,
            )
        )
    BudgetVariance.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["account", "period"],
        update_fields=["budget", "actual", "variance", "percentage", "favourable", "computed_at"],
        batch_size=1000,
    )
    return rows
