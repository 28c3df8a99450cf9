"""Celery tasks of the notifications queue: thin, they call the delivery service."""

from __future__ import annotations

from celery import shared_task
from django.db import DatabaseError


@shared_task(
    name="notifications.deliver",
    autoretry_for=(DatabaseError,),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=10,
)
def deliver(channel: str, ids: list[int]) -> dict[str, int]:
    """Send the queued deliveries among ``ids`` on ``channel``. Safe to run twice: each
    delivery is claimed before it is sent. A database that is away is retried; a channel's
    own failures are recorded on the deliveries and retried there."""
    from notifications.services import delivery

    return delivery.deliver(channel, ids)
