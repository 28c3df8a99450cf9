"""The default chart of accounts a new company starts from; admins edit it afterwards."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from ledger.models import Account, AccountRole, AccountType, Company, NormalBalance
from ledger.models.accounts import NORMAL_BALANCE

A, L, E, INC, X = AccountType.ASSET, AccountType.LIABILITY, AccountType.EQUITY, AccountType.INCOME, AccountType.EXPENSE

# code, name, type, parent code, role, normal balance when it is not the type's
DEFAULT_CHART: list[tuple[str, str, str, str, str, str]] = [
    ("1000", "Assets", A, "", "", ""),
    ("1100", "Bank current account", A, "1000", AccountRole.BANK, ""),
    ("1150", "Cash in hand", A, "1000", "", ""),
    ("1200", "Accounts receivable", A, "1000", AccountRole.RECEIVABLES, ""),
    ("1300", "Inventory", A, "1000", "", ""),
    ("1400", "Prepayments", A, "1000", "", ""),
    ("1500", "Equipment", A, "1000", "", ""),
    ("1510", "Accumulated depreciation", A, "1500", "", NormalBalance.CREDIT),
    ("2000", "Liabilities", L, "", "", ""),
    ("2100", "Accounts payable", L, "2000", AccountRole.PAYABLES, ""),
    ("2200", "Sales tax payable", L, "2000", AccountRole.TAX, ""),
    ("2300", "Accruals", L, "2000", "", ""),
    ("2400", "Deferred income", L, "2000", "", ""),
    ("2500", "Loans", L, "2000", "", ""),
    ("3000", "Equity", E, "", "", ""),
    ("3100", "Share capital", E, "3000", "", ""),
    ("3200", "Retained earnings", E, "3000", AccountRole.RETAINED_EARNINGS, ""),
    ("4000", "Income", INC, "", "", ""),
    ("4100", "Sales and fees", INC, "4000", AccountRole.SALES, ""),
    ("4200", "Other income", INC, "4000", AccountRole.OTHER_INCOME, ""),
    ("4900", "Discounts given", INC, "4000", "", NormalBalance.DEBIT),
    ("5000", "Cost of sales", X, "", "", ""),
    ("6000", "Overheads", X, "", "", ""),
    ("6100", "Salaries and wages", X, "6000", "", ""),
    ("6200", "Rent and rates", X, "6000", "", ""),
    ("6300", "Utilities", X, "6000", "", ""),
    ("6400", "Office and software", X, "6000", "", ""),
    ("6500", "Professional fees", X, "6000", "", ""),
    ("6600", "Bank charges", X, "6000", "", ""),
    ("6700", "Depreciation", X, "6000", "", ""),
    ("6800", "Bad debts", X, "6000", "", ""),
]


@dataclass(frozen=True)
class Loaded:
    created: int
    existing: int


def load_default_chart(company: Company) -> Loaded:
    """Add the default accounts the company does not have yet (by code); accounts already
    there, and roles another account already holds, are left as they are."""
    with transaction.atomic():
        have = dict(Account.objects.filter(company=company).values_list("code", "pk"))
        taken = set(Account.objects.filter(company=company).exclude(role="").values_list("role", flat=True))
        new = [
            Account(
                company=company,
                code=code,
                name=name,
                type=kind,
                normal_balance=normal or NORMAL_BALANCE[AccountType(kind)],
                role="" if role in taken else role,
            )
            for code, name, kind, _parent, role, normal in DEFAULT_CHART
            if code not in have
        ]
        Account.objects.bulk_create(new)
        codes = dict(Account.objects.filter(company=company).values_list("code", "pk"))
        parented = [
            Account(pk=codes[code], parent_id=codes[parent])
            for code, _name, _kind, parent, _role, _normal in DEFAULT_CHART
            if parent and code not in have
        ]
        Account.objects.bulk_update(parented, ["parent"])
    return Loaded(created=len(new), existing=len(DEFAULT_CHART) - len(new))
