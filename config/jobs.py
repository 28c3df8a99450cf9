"""Jobs that wire one floor-1 app to the other: the job layer running the notifications
app's sweep. Neither app imports the other; this module, listed in JOB_MODULES, does."""

from __future__ import annotations

from notifications.services import delivery
from scheduling.calendar import Cron
from scheduling.choices import CatchUp, KeyBy
from scheduling.registry import RetryPolicy, job


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
