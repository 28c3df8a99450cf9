"""Sub-ledgers behind control accounts, and the reconciliation that checks them.

A control account (receivables, payables) carries the total of what its parties owe or
are owed. Another app that keeps those parties' open items registers a sub-ledger for
the role, without the ledger importing it:

    # billing/apps.py, in ready()
    from ledger import subledgers
    subledgers.register(AccountRole.RECEIVABLES, "billing open items", open_items_by_customer)

where ``open_items_by_customer(company, as_of)`` returns ``{party: balance}``, with the
same party keys its postings put on journal lines ("customer:42") and balances
debit-positive in the company's currency. With nothing registered, a control account is
reconciled against the ledger's own party totals: then any difference is the amount
posted to it without a party.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Sum
from django.utils import timezone

from ledger.models import Account, Company, JournalLine, Reconciliation
from ledger.models.accounts import SUBLEDGER_ROLES
from ledger.services import balances

ZERO = Decimal(0)
NO_PARTY = ""
MAX_LISTED = 1000  # differences stored per reconciliation; the count is always complete

Balances = Callable[[Company, datetime.date], Mapping[str, Decimal]]


@dataclass(frozen=True)
class Subledger:
    role: str
    name: str
    balances: Balances


_registry: dict[str, Subledger] = {}


def register(role: str, name: str, party_balances: Balances) -> None:
    """Make ``party_balances`` the sub-ledger reconciled against ``role``'s control account."""
    if role not in SUBLEDGER_ROLES:
        raise ValueError(f"{role!r} is not a control account role with a sub-ledger")
    _registry[role] = Subledger(role, name, party_balances)


def unregister(role: str) -> None:
    _registry.pop(role, None)


def registered(role: str) -> Subledger | None:
    return _registry.get(role)


def ledger_party_balances(account: Account, as_of: datetime.date) -> dict[str, Decimal]:
    """The control account's balance per party from its own posted lines; lines with no
    party sum under ``""``."""
    rows = (
        JournalLine.objects.filter(account=account, posted=True, date__lte=as_of)
        .values("party")
        .annotate(total=Sum("amount"))
        .values_list("party", "total")
    )
    totals = {party: balances.in_minor_units(total, account.company) for party, total in rows}
    return {party: total for party, total in totals.items() if total}


def reconcile(company: Company, as_of: datetime.date) -> list[Reconciliation]:
    """Reconcile every active control account; stored per (account, date), replacing an
    earlier result for the same date."""
    results = []
    for account in Account.objects.for_company(company).active().filter(role__in=SUBLEDGER_ROLES).order_by("code"):
        results.append(reconcile_account(account, as_of))
    return results


def reconcile_account(account: Account, as_of: datetime.date) -> Reconciliation:
    ledger_balance = balances.balance(account, as_of)
    by_party = ledger_party_balances(account, as_of)
    source = registered(account.role)
    if source is None:
        name = "ledger parties"
        sub = {party: value for party, value in by_party.items() if party != NO_PARTY}
    else:
        name = source.name
        sub = {}
        for party, value in source.balances(account.company, as_of).items():
            if isinstance(value, float):
                raise TypeError(f"the sub-ledger {name!r} gave a float for {party!r}; money is Decimal")
            if value:
                sub[party] = balances.in_minor_units(Decimal(value), account.company)
    differences = []
    for party in sorted(set(by_party) | set(sub)):
        ledger_value, sub_value = by_party.get(party, ZERO), sub.get(party, ZERO)
        if ledger_value != sub_value:
            differences.append(
                {
                    "party": party or "(no party)",
                    "ledger": str(ledger_value),
                    "subledger": str(sub_value),
                    "difference": str(ledger_value - sub_value),
                }
            )
    subledger_balance = sum(sub.values(), ZERO)
    result, _ = Reconciliation.objects.update_or_create(
        account=account,
        as_of=as_of,
        defaults={
            "company": account.company,
            "subledger": name,
            "ledger_balance": ledger_balance,
            "subledger_balance": subledger_balance,
            "difference": ledger_balance - subledger_balance,
            "differences": differences[:MAX_LISTED],
            "computed_at": timezone.now(),
        },
    )
    result.differences_count = len(differences)
    return result
