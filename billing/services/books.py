"""What billing posts to: the company's accounts by role, and the journal entries of its
documents. Every posting goes through the ledger's posting service, keyed by the
document (``invoice:42``), so a replay posts nothing twice."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from billing.errors import BillingError
from ledger import currencies
from ledger.models import Account, AccountRole, Company, Source
from ledger.services.posting import Entry, Line

ZERO = Decimal(0)


@dataclass(frozen=True)
class Books:
    """The company's account ids by role (None when no active account holds it)."""

    receivables: int | None
    tax: int | None
    sales: int | None
    bank: int | None
    other_income: int | None

    def need(self, role: str) -> int:
        account = getattr(self, role)
        if account is None:
            label = AccountRole(role).label
            raise BillingError(
                {"account": [f"The company has no active account with the role {label!r}; set one in the chart."]}
            )
        return account


ROLES = ("receivables", "tax", "sales", "bank", "other_income")


def books(company: Company) -> Books:
    held = dict(Account.objects.for_company(company).active().filter(role__in=ROLES).values_list("role", "pk"))
    return Books(**{role: held.get(role) for role in ROLES})


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Half up to the currency's minor unit."""
    from decimal import ROUND_HALF_UP

    return amount.quantize(currencies.quantum(currencies.MINOR_UNITS[currency]), rounding=ROUND_HALF_UP)


def tax_on(amount: Decimal, rate: Decimal, currency: str) -> Decimal:
    """A line's tax: its amount times the rate, rounded per line (what the invoice shows)."""
    return quantize(amount * rate / 100, currency)


def invoice_entry(
    books: Books,
    *,
    invoice_id: int,
    customer_id: int,
    date,
    reference: str,
    memo: str,
    total: Decimal,
    income: Iterable[tuple[int, Decimal, Decimal]],
) -> Entry:
    """Dr receivables (the customer's party) the total; Cr each income account its net;
    Cr the tax account the tax. ``income`` is (account id, net, tax) per line."""
    net_by_account: dict[int, Decimal] = defaultdict(Decimal)
    tax = ZERO
    for account, net, line_tax in income:
        net_by_account[account] += net
        tax += line_tax
    party = f"customer:{customer_id}"
    lines = [Line(books.need("receivables"), debit=total, party=party, description=reference)]
    lines += [Line(account, credit=net, description=reference) for account, net in net_by_account.items() if net]
    if tax:
        lines.append(Line(books.need("tax"), credit=tax, description=f"Tax on {reference}"))
    return Entry(
        date=date, lines=lines, reference=reference, memo=memo, source=Source.BILLING, source_id=f"invoice:{invoice_id}"
    )
