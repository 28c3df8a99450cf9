"""Customers as notification recipients, for many at once: one query, no model instances."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.contenttypes.models import ContentType

from billing.models import Customer
from notifications.services.recipients import Recipient


def customer_recipients(customer_ids: Iterable[int]) -> dict[int, Recipient]:
    """``{customer id: Recipient}``: the customer as a party (``billing.customer:42``), by
    email, and in the app to its portal user when it has one."""
    party_type = ContentType.objects.get_for_model(Customer).pk
    rows = Customer.objects.filter(pk__in=set(customer_ids)).values_list("pk", "name", "email", "portal_user_id")
    return {
        pk: Recipient(
            key=f"billing.customer:{pk}",
            name=name,
            email=email,
            user_id=user_id,
            party_type_id=party_type,
            party_id=str(pk),
        )
        for pk, name, email, user_id in rows
    }
