"""Old notifications go: those created before the retention period whose deliveries have
all settled (sent, failed or suppressed). A dedupe key goes with its notification, so a
caller repeating an event older than the retention period would notify again; the
default period (NOTIFY_RETENTION_DAYS, a year) is far longer than any retry or re-run."""

from __future__ import annotations

import datetime
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from notifications.models import Delivery, DeliveryStatus, Notification

DELETE_BATCH = 1000  # notifications per transaction: short ones, no table-long lock
UNSETTLED = (DeliveryStatus.QUEUED, DeliveryStatus.SENDING, DeliveryStatus.WAITING)


def cleanup(
    retention_days: int, now: datetime.datetime | None = None, progress: Callable[[int], None] | None = None
) -> dict[str, int]:
    """Delete settled notifications older than ``retention_days`` and their deliveries, in
    keyset batches. Returns how many of each went."""
    cutoff = (now or timezone.now()) - datetime.timedelta(days=retention_days)
    old = Notification.objects.filter(created_at__lt=cutoff).exclude(deliveries__status__in=UNSETTLED)
    deleted = {"notifications": 0, "deliveries": 0}
    last = 0
    while True:
        batch = list(old.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:DELETE_BATCH])
        if not batch:
            return deleted
        last = batch[-1]
        with transaction.atomic():
            deleted["deliveries"] += Delivery.objects.filter(notification__in=batch).delete()[0]
            deleted["notifications"] += Notification.objects.filter(pk__in=batch).delete()[0]
        if progress:
            progress(deleted["notifications"])
