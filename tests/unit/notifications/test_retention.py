"""Settled notifications older than the retention period go, with their deliveries; the
rest stay. SYS_NOTIFY_CLEANUP runs it through the job layer."""

from __future__ import annotations

import datetime

import pytest
import time_machine

from notifications.models import Delivery, DeliveryStatus, Notification
from notifications.services import retention
from scheduling.choices import RunStatus
from scheduling.models import JobDefinition
from scheduling.services import execution, runs
from tests.factories import DeliveryFactory, NotificationFactory

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=datetime.UTC)


def aged(days: int, *statuses: str) -> Notification:
    """A notification created ``days`` ago with a delivery in each of ``statuses``."""
    notification = NotificationFactory(created_at=NOW - datetime.timedelta(days=days))
    for channel, status in zip(("in_app", "email", "webhook"), statuses, strict=False):
        DeliveryFactory(notification=notification, channel=channel, status=status)
    return notification


def test_settled_notifications_older_than_the_retention_go_with_their_deliveries():
    old_sent = aged(400, DeliveryStatus.SENT, DeliveryStatus.FAILED)
    old_suppressed = aged(400, DeliveryStatus.SUPPRESSED)
    old_without_deliveries = aged(400)
    recent = aged(10, DeliveryStatus.SENT)

    deleted = retention.cleanup(365, now=NOW)

    assert deleted == {"notifications": 3, "deliveries": 3}
    assert list(Notification.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not Delivery.objects.filter(notification__in=[old_sent.pk, old_suppressed.pk]).exists()
    assert not Notification.objects.filter(pk=old_without_deliveries.pk).exists()


@pytest.mark.parametrize("unsettled", [DeliveryStatus.QUEUED, DeliveryStatus.SENDING, DeliveryStatus.WAITING])
def test_an_old_notification_with_a_delivery_still_to_go_stays(unsettled):
    waiting = aged(400, DeliveryStatus.SENT, unsettled)

    deleted = retention.cleanup(365, now=NOW)

    assert deleted == {"notifications": 0, "deliveries": 0}
    assert Delivery.objects.filter(notification=waiting).count() == 2


def test_cleanup_works_in_batches_and_reports_progress(monkeypatch):
    monkeypatch.setattr(retention, "DELETE_BATCH", 2)
    for _ in range(5):
        aged(400, DeliveryStatus.SENT)
    seen: list[int] = []

    deleted = retention.cleanup(365, now=NOW, progress=seen.append)

    assert deleted == {"notifications": 5, "deliveries": 5}
    assert seen == [2, 4, 5]


@time_machine.travel(NOW, tick=False)
def test_the_cleanup_job_uses_the_retention_setting_or_its_parameter(settings):
    settings.NOTIFY_RETENTION_DAYS = 30
    aged(400, DeliveryStatus.SENT)
    aged(60, DeliveryStatus.SENT)
    recent = aged(10, DeliveryStatus.SENT)
    job = JobDefinition.objects.get(code="SYS_NOTIFY_CLEANUP")

    first, _ = runs.request_run(job, business_date=datetime.date(2026, 11, 20), params={"retention_days": 100})
    execution.execute_run(first.pk, task_id="t1", worker="test@host")
    second, _ = runs.request_run(job, business_date=datetime.date(2026, 11, 21))
    execution.execute_run(second.pk, task_id="t2", worker="test@host")

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.result["deleted"]["notifications"]) == (RunStatus.SUCCEEDED, 1)
    assert (second.status, second.result["retention_days"]) == (RunStatus.SUCCEEDED, 30)
    assert second.result["deleted"]["notifications"] == 1
    assert list(Notification.objects.values_list("pk", flat=True)) == [recent.pk]
