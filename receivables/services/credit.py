"""The credit limit check (SL_CREDIT_LIMIT_CHECK): customers whose balance at a business
date is above their credit limit, noticed once per episode.

A customer with a credit limit (an empty limit is no limit; a limit of 0 allows no debt)
is over it when their balance by billing's balance rule — invoices less payments and
credit notes dated on or before the date — is greater than the limit. The first date a
check finds them over opens a breach and tells the company's staff (and, when the check is
set to, the customer); later checks that still find them over say nothing. The first check
that finds them within the limit again, or without a limit, clears the breach, so going
over again is a new episode, told again.

A check for a date before one already judged (a catch-up run, a re-run of an old day)
opens nothing that a later check has already seen, and clears only breaches found on or
before its date.

The balances come from billing's sub-ledger aggregate (three grouped sums), not from the
documents, so a check costs the same handful of queries for ten customers or a hundred
thousand.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from billing.models import Customer
from billing.models.customers import party_of
from billing.services.books import quantize
from billing.services.recipients import customer_recipients
from billing.services.subledger import open_items_by_party
from config import bulk
from ledger.models import Company
from notifications.models import Channel, Priority
from notifications.services.sending import Message, notify_many
from notifications.services.staff import staff_users
from receivables.kinds import CREDIT_LIMIT_EXCEEDED, CREDIT_LIMIT_NOTICE
from receivables.models.statements import CreditLimitBreach

ZERO = Decimal(0)
STAFF_CHANNELS = (Channel.IN_APP, Channel.EMAIL)

Log = Callable[..., None]


@dataclass
class Checked:
    limited: int = 0  # customers with a credit limit
    over: int = 0  # of them, over it at the date
    opened: int = 0  # breaches opened by this check
    cleared: int = 0  # breaches this check found over
    notified: int = 0  # notifications made (each staff user's copy and the customer's)


def company_staff(company: Company) -> list:
    """Who hears of a customer over their limit: the company's active members, less any
    customer's portal user (a customer must not read of another's account). A company
    with none falls back to the platform's active staff, so a breach is never told to
    nobody."""
    members = list(
        get_user_model()
        .objects.filter(is_active=True, memberships__company=company, billing_customers__isnull=True)
        .order_by("pk")
        .distinct()
    )
    return members or list(staff_users())


def check(
    company: Company,
    as_of: datetime.date,
    *,
    notify_customer: bool = False,
    job_run: int | None = None,
    log: Log | None = None,
) -> Checked:
    """Open, clear and notify the company's credit limit breaches as of ``as_of``."""
    currency = company.base_currency
    limits = dict(
        Customer.objects.for_company(company).filter(credit_limit__isnull=False).values_list("pk", "credit_limit")
    )
    balances = open_items_by_party(company, as_of)
    over: dict[int, tuple[Decimal, Decimal]] = {}
    for pk, limit in limits.items():
        balance = balances.get(party_of(pk), ZERO)
        if balance > limit:
            over[pk] = (balance, limit)
    checked = Checked(limited=len(limits), over=len(over))
    history = {
        row["customer_id"]: row
        for row in CreditLimitBreach.objects.for_company(company)
        .values("customer_id")
        .annotate(last_since=Max("since"), last_cleared=Max("cleared_on"), open=Count("pk", filter=Q(cleared_on=None)))
    }
    new = [pk for pk in sorted(over) if _starts_episode(history.get(pk), as_of)]
    with transaction.atomic():
        checked.cleared = (
            CreditLimitBreach.objects.for_company(company)
            .open()
            .filter(since__lte=as_of)
            .exclude(customer_id__in=list(over))
            .update(cleared_on=as_of)
        )
        now = timezone.now()
        n = len(new)
        rows = bulk.insert_columns(
            CreditLimitBreach,
            {
                "company": [company.pk] * n,
                "customer": new,
                "since": [as_of] * n,
                "cleared_on": [None] * n,
                "credit_limit": [over[pk][1] for pk in new],
                "balance": [over[pk][0] for pk in new],
                "currency": [currency] * n,
                "job_run": [job_run] * n,
                "notified_at": [None] * n,
                "created_at": [now] * n,
            },
            ignore_conflicts=True,
        )
        checked.opened = len(rows)
        checked.notified = _notify(company, notify_customer=notify_customer, log=log)
    if log:
        log(
            f"{checked.over} of {checked.limited} customers with a credit limit are over it on {as_of}: "
            f"{checked.opened} newly, {checked.cleared} back within it",
            over=checked.over,
            opened=checked.opened,
            cleared=checked.cleared,
        )
    return checked


def _starts_episode(history: dict | None, as_of: datetime.date) -> bool:
    """Whether a customer over the limit at ``as_of`` opens a breach: none is open, and no
    check has judged a later date (found over after, or within the limit after)."""
    if history is None:
        return True
    if history["open"] or history["last_since"] >= as_of:
        return False
    return history["last_cleared"] is None or history["last_cleared"] <= as_of


def _notify(company: Company, *, notify_customer: bool, log: Log | None) -> int:
    """Tell of each open breach not yet told: every staff user, and the customer when set."""
    unsent = list(
        CreditLimitBreach.objects.for_company(company)
        .open()
        .filter(notified_at__isnull=True)
        .select_related("customer")
        .order_by("pk")
    )
    if not unsent:
        return 0
    staff = company_staff(company)
    if not staff and log:
        log("no active member or staff user to tell of customers over their credit limit")
    recipients = customer_recipients(breach.customer_id for breach in unsent) if notify_customer else {}
    messages = []
    for breach in unsent:
        context = notice_context(company, breach)
        messages.extend(
            Message(
                user,
                CREDIT_LIMIT_EXCEEDED,
                context,
                company=company.pk,
                dedupe_key=f"credit_limit:{breach.pk}:user:{user.pk}",
                channels=STAFF_CHANNELS,
                priority=Priority.HIGH,
            )
            for user in staff
        )
        if notify_customer:
            messages.append(
                Message(
                    recipients[breach.customer_id],
                    CREDIT_LIMIT_NOTICE,
                    context,
                    company=company.pk,
                    dedupe_key=f"credit_limit:{breach.pk}:customer",
                )
            )
    outcome = notify_many(messages)
    CreditLimitBreach.objects.filter(pk__in=[breach.pk for breach in unsent]).update(notified_at=timezone.now())
    return outcome.notified


def notice_context(company: Company, breach: CreditLimitBreach) -> dict:
    currency = breach.currency
    return {
        "company_name": company.name,
        "customer_id": breach.customer_id,
        "customer_name": breach.customer.name,
        "since": breach.since.isoformat(),
        "currency": currency,
        "balance": str(quantize(breach.balance, currency)),
        "credit_limit": str(quantize(breach.credit_limit, currency)),
        "over_by": str(quantize(breach.over_by, currency)),
    }
