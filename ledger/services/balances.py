"""Balances and the trial balance.

Balances are debit-positive sums of posted lines' company-currency amounts. A balance as
of a date starts from the closing balances stored for the last closed period on or before
it and adds only the lines after that period; a movement over a range reads closed
periods' stored movements and scans lines only for the days outside them. So a report's
cost follows the open days it covers, not the age of the books.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import pairwise

from django.db.models import Q, Sum

from ledger import currencies
from ledger.models import Account, Company, JournalLine, Period, PeriodBalance
from ledger.services.periods import EARLIEST, LATEST

ZERO = Decimal(0)
DAY = datetime.timedelta(days=1)


def balances_as_of(company: Company, as_of: datetime.date, accounts: Iterable[int] | None = None) -> dict[int, Decimal]:
    """Each account's balance at the end of ``as_of`` (accounts with no postings are absent)."""
    start = (
        Period.objects.for_company(company).with_balances().filter(end_date__lte=as_of).order_by("-end_date").first()
    )
    stored = PeriodBalance.objects.filter(period=start) if start else PeriodBalance.objects.none()
    lines = JournalLine.objects.filter(company=company, posted=True, date__lte=as_of)
    if start is not None:
        lines = lines.filter(date__gt=start.end_date)
    if accounts is not None:
        accounts = list(accounts)
        stored = stored.filter(account__in=accounts)
        lines = lines.filter(account__in=accounts)
    result: dict[int, Decimal] = dict(stored.values_list("account", "closing"))
    for account_id, total in lines.values("account").annotate(total=Sum("amount")).values_list("account", "total"):
        result[account_id] = result.get(account_id, ZERO) + total
    return {account_id: in_minor_units(value, company) for account_id, value in result.items()}


def balance(account: Account, as_of: datetime.date) -> Decimal:
    """One account's debit-positive balance at the end of ``as_of``."""
    return balances_as_of(account.company, as_of, [account.pk]).get(account.pk, in_minor_units(ZERO, account.company))


def line_movements(
    company: Company, date_from: datetime.date, date_to: datetime.date, *, extra: Q | None = None
) -> dict[int, tuple[Decimal, Decimal]]:
    """(debits, credits) per account from posted lines dated in the range."""
    lines = JournalLine.objects.filter(company=company, posted=True, date__gte=date_from, date__lte=date_to)
    if extra is not None:
        lines = lines.filter(extra)
    return _split(lines, company)


def movements(company: Company, date_from: datetime.date, date_to: datetime.date) -> dict[int, tuple[Decimal, Decimal]]:
    """(debits, credits) per account over the range, closed periods read from their stored
    movements and only the remaining days from the lines."""
    covered = list(
        Period.objects.for_company(company)
        .with_balances()
        .filter(start_date__gte=date_from, end_date__lte=date_to)
        .order_by("start_date")
    )
    if not covered or any(b.start_date != a.end_date + DAY for a, b in pairwise(covered)):
        return line_movements(company, date_from, date_to)
    first, last = covered[0].start_date, covered[-1].end_date
    result = line_movements(company, date_from, date_to, extra=Q(date__lt=first) | Q(date__gt=last))
    stored = (
        PeriodBalance.objects.filter(period__in=covered)
        .values("account")
        .annotate(debit=Sum("debit"), credit=Sum("credit"))
        .values_list("account", "debit", "credit")
    )
    for account_id, debit, credit in stored:
        d, c = result.get(account_id, (ZERO, ZERO))
        result[account_id] = (in_minor_units(d + debit, company), in_minor_units(c + credit, company))
    return result


@dataclass(frozen=True)
class Row:
    account_id: int
    code: str
    name: str
    type: str
    opening: Decimal
    debit: Decimal
    credit: Decimal
    closing: Decimal

    def as_dict(self) -> dict[str, str | int]:
        return {
            "account_id": self.account_id,
            "code": self.code,
            "name": self.name,
            "type": self.type,
            "opening": str(self.opening),
            "debit": str(self.debit),
            "credit": str(self.credit),
            "closing": str(self.closing),
        }


@dataclass(frozen=True)
class TrialBalance:
    """Opening and closing balances are debit-positive; a balanced trial balance has
    openings and closings summing to zero and equal debits and credits."""

    company: Company
    date_from: datetime.date
    date_to: datetime.date
    rows: list[Row] = field(default_factory=list)

    @property
    def currency(self) -> str:
        return self.company.base_currency

    @property
    def totals(self) -> dict[str, Decimal]:
        zero = ZERO.quantize(_step(self.company))
        return {
            name: sum((getattr(row, name) for row in self.rows), zero)
            for name in ("opening", "debit", "credit", "closing")
        }

    @property
    def balanced(self) -> bool:
        totals = self.totals
        return totals["opening"] == 0 and totals["closing"] == 0 and totals["debit"] == totals["credit"]

    def as_dict(self) -> dict:
        return {
            "company": self.company.slug,
            "currency": self.currency,
            "from": self.date_from.isoformat(),
            "to": self.date_to.isoformat(),
            "balanced": self.balanced,
            "totals": {name: str(value) for name, value in self.totals.items()},
            "rows": [row.as_dict() for row in self.rows],
        }


def trial_balance(company: Company, date_from: datetime.date, date_to: datetime.date) -> TrialBalance:
    """Every account with a balance or movement: opening at the start of ``date_from``,
    debits and credits within the range, closing at the end of ``date_to``."""
    if date_to < date_from:
        raise ValueError("the range ends before it starts")
    if date_from < EARLIEST or date_to > LATEST:
        raise ValueError(f"the range must fall between {EARLIEST} and {LATEST}")
    opening = balances_as_of(company, date_from - DAY)
    moved = movements(company, date_from, date_to)
    ids = set(opening) | set(moved)
    accounts = Account.objects.filter(pk__in=ids).order_by("code").values_list("pk", "code", "name", "type")
    zero = ZERO.quantize(_step(company))
    rows = []
    for pk, code, name, kind in accounts:
        start = opening.get(pk, zero)
        debit, credit = moved.get(pk, (zero, zero))
        if start or debit or credit:
            rows.append(Row(pk, code, name, kind, start, debit, credit, start + debit - credit))
    return TrialBalance(company, date_from, date_to, rows)


def _split(lines, company: Company) -> dict[int, tuple[Decimal, Decimal]]:
    rows = (
        lines.values("account")
        .annotate(debit=Sum("amount", filter=Q(amount__gt=0)), credit=Sum("amount", filter=Q(amount__lt=0)))
        .values_list("account", "debit", "credit")
    )
    return {
        account_id: (in_minor_units(debit, company), in_minor_units(-(credit or ZERO), company))
        for account_id, debit, credit in rows
    }


def in_minor_units(value: Decimal | None, company: Company) -> Decimal:
    """A sum read back from the database, in the company currency's minor units. Adding
    zero turns the -0.00 that SQLite's float noise (-3.6E-12) rounds to into 0.00."""
    return (value or ZERO).quantize(_step(company)) + ZERO


def _step(company: Company) -> Decimal:
    """Amounts come back in the company currency's minor units on every database
    (PostgreSQL's numeric keeps the column's three places, SQLite none)."""
    return currencies.quantum(company.minor_units)
