"""Messages to the platform's staff: job alerts, a disabled webhook endpoint."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from notifications.models import Channel, Priority
from notifications.services.sending import Message, Outcome, notify_many

STAFF_CHANNELS = (Channel.EMAIL, Channel.IN_APP)


def staff_users():
    return get_user_model().objects.filter(is_staff=True, is_active=True).order_by("pk")


def notify_staff(kind: str, context: dict, *, dedupe_key: str, priority: str = Priority.HIGH) -> Outcome:
    """One notification per active staff user, in their inbox and by email. ``dedupe_key``
    names the event; each user's copy is keyed by it and the user, so a repeat sends nothing."""
    return notify_many(
        Message(
            user,
            kind,
            context,
            company=None,
            dedupe_key=f"{dedupe_key}:user:{user.pk}",
            channels=STAFF_CHANNELS,
            priority=priority,
        )
        for user in staff_users()
    )
