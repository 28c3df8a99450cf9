"""What billing's endpoints share beyond the ledger's helpers (ledger.api.common): rates
that refuse floats, money in a document's own currency, the same-company checks on what
a row points at, and the refusals that are conflicts (409), not bad input."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

from django.db.models import ProtectedError, RestrictedError
from rest_framework import serializers

from billing.errors import BillingStateError
from billing.models.customers import RATE
from config.api import Conflict
from ledger import currencies
from ledger.api.common import MoneyField, money
from ledger.errors import LedgerStateError
from ledger.models import Account, AccountType, Company

# What one amount on a billing document may be: a million million in the currency's units,
# so totals of many lines with their tax stay far inside what the books post (10**15) and
# the columns hold; a larger amount is a typo, refused with a 400 rather than failing a run.
LARGEST = Decimal(10) ** 12


class BillingMoney(MoneyField):
    """An amount as a string, at most ``LARGEST``."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_value", LARGEST)
        super().__init__(**kwargs)


class RateField(serializers.DecimalField):
    """A percentage from 0 to 100, sent as a string ("16") or a whole number; a JSON
    number with a fraction is refused as a money amount is (it arrives as a float)."""

    default_error_messages = {"float": 'Send rates as strings ("16.5"): a number with a fraction is a float.'}

    def __init__(self, **kwargs):
        super().__init__(**{**RATE, "min_value": Decimal(0), "max_value": Decimal(100), **kwargs})

    def to_internal_value(self, data):
        if isinstance(data, float):
            self.fail("float")
        return super().to_internal_value(data)


class DocumentMoney:
    """A serializer mixin: ``money_fields`` go out in the row's own ``currency``'s places."""

    money_fields: tuple[str, ...] = ()

    def to_representation(self, instance) -> dict:
        data = super().to_representation(instance)
        for name in self.money_fields:
            data[name] = money(getattr(instance, name), instance.currency)
        return data


def places_error(amount: Decimal, currency: str) -> str | None:
    """Why ``amount`` cannot be an amount in ``currency``: more decimals than it has."""
    places = currencies.MINOR_UNITS[currency]
    if amount != amount.quantize(currencies.quantum(places)):
        return f"{currency} amounts have {places} decimal places at most."
    return None


def not_the_companys(obj, company: Company) -> str | None:
    """A message when ``obj`` (visible to the caller) belongs to another of their companies."""
    if obj is not None and obj.company_id != company.pk:
        return f"{obj} is not {company.slug}'s."
    return None


def income_account_error(account: Account | None, company: Company) -> str | None:
    if account is None:
        return None
    if account.company_id != company.pk:
        return f"Account {account.code} is not {company.slug}'s."
    if account.type != AccountType.INCOME:
        return f"Account {account.code} is an {account.type} account; income posts to an income account."
    if not account.is_active:
        return f"Account {account.code} is inactive."
    return None


@contextmanager
def kept_by_others(what: str, instead: str) -> Iterator[None]:
    """Deleting a row other rows still point at is a conflict: say what holds it."""
    try:
        yield
    except (ProtectedError, RestrictedError) as exc:
        holding = getattr(exc, "protected_objects", None) or getattr(exc, "restricted_objects", None) or ()
        holders = sorted({str(obj._meta.verbose_name_plural) for obj in holding})
        held = f" by its {', '.join(holders)}" if holders else ""
        raise Conflict(f"{what} is kept{held}; {instead}") from exc


@contextmanager
def state_conflicts() -> Iterator[None]:
    """A document's or a period's state refusing the change answers 409."""
    try:
        yield
    except (BillingStateError, LedgerStateError) as exc:
        raise Conflict(str(exc)) from exc
