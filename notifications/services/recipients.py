"""Who a notification is for: a user, or a party of a domain app (a customer), or both.

A party needs nothing from this app. It is read through attributes it may define —
``notification_name``, ``notification_email``, ``notification_channels`` (the channels it
prefers) and ``notification_user`` (a portal user who sees it in the app) — falling back to
``name`` and ``email``.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import models


@dataclass(frozen=True)
class Recipient:
    key: str
    name: str = ""
    email: str = ""
    user_id: int | None = None
    party_type_id: int | None = None
    party_id: str = ""
    channels: tuple[str, ...] | None = None  # what the recipient prefers; None is any


def user_key(user_id: int) -> str:
    return f"user:{user_id}"


def party_key(obj: models.Model) -> str:
    return f"{obj._meta.label_lower}:{obj.pk}"


def recipient(obj: Recipient | models.Model) -> Recipient:
    """The recipient a user, a party or a ready Recipient stands for."""
    if isinstance(obj, Recipient):
        return obj
    if not isinstance(obj, models.Model) or obj.pk is None:
        raise ValueError(f"a notification goes to a saved user or party, not {obj!r}")
    if isinstance(obj, get_user_model()):
        name = obj.get_full_name() if hasattr(obj, "get_full_name") else ""
        return Recipient(user_key(obj.pk), name=name or obj.get_username(), email=obj.email or "", user_id=obj.pk)
    channels = getattr(obj, "notification_channels", None)
    user = getattr(obj, "notification_user", None)
    return Recipient(
        party_key(obj),
        name=str(getattr(obj, "notification_name", None) or getattr(obj, "name", "") or obj),
        email=getattr(obj, "notification_email", None) or getattr(obj, "email", "") or "",
        user_id=getattr(user, "pk", user),
        party_type_id=ContentType.objects.get_for_model(obj).pk,
        party_id=str(obj.pk),
        channels=tuple(channels) if channels is not None else None,
    )
