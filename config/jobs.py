"""Jobs that wire one floor-1 app to the other: the job layer running the notifications
app's sweep. Neither app imports the other; this module, listed in JOB_MODULES, does."""

from __future__ import annotations

from django.conf import settings

from notifications.services import delivery, retention
from scheduling.calendar import Cron
from scheduling.choices import CatchUp, KeyBy
from scheduling.registry import Param, RetryPolicy, job


@job(
    "SYS_NOTIFY_DISPATCH",
    title="Notifications: release quiet-hours deliveries, requeue lost ones",
    queue="notifications",
    schedule=Cron(minute="*"),
    key_by=KeyBy.MINUTE,
    catch_up=CatchUp.SKIP,
    retry=RetryPolicy(max_retries=0),
    time_limit=50,
    atomic=False,
)
def notify_dispatch(ctx) -> None:
    """Deliveries whose quiet hours ended, queued ones whose message was lost, and ones
    whose worker died while sending go back to the delivery tasks."""
    found = delivery.sweep()
    ctx.count(processed=sum(found.values()))
    ctx.result.update(found)


@job(
    "SYS_NOTIFY_CLEANUP",
    title="Notifications: delete settled ones older than the retention period",
    queue="notifications",
    schedule=Cron(minute="30", hour="3"),
    params={"retention_days": Param(int, default=None, min=1, help="default: NOTIFY_RETENTION_DAYS")},
    atomic=False,  # deletes in short batches, each its own transaction
)
def notify_cleanup(ctx) -> None:
    """Notifications created before the retention period whose deliveries have all settled
    go, with their deliveries; ones still queued or waiting stay."""
    days = ctx.params["retention_days"] or settings.NOTIFY_RETENTION_DAYS
    deleted = retention.cleanup(days, progress=lambda n: ctx.progress(n))
    ctx.count(processed=deleted["notifications"])
    ctx.result.update(retention_days=days, deleted=deleted)
    ctx.info(f"deleted settled notifications older than {days} days", **deleted)
