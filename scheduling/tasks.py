"""Platform tasks. Task functions stay thin: logic lives in services."""

from __future__ import annotations

import os
import time

from celery import shared_task
from django.utils import timezone

MAX_HOLD_SECONDS = 60.0


@shared_task(bind=True, name="scheduling.probe")
def probe(self, token: str = "", hold: float = 0.0) -> dict:
    """A round trip through broker, worker and result backend, answering who ran it.

    ``hold`` keeps the worker busy for that many seconds (at most a minute), to watch a
    task in flight: in Flower, or when a worker is stopped under it.
    """
    if hold:
        time.sleep(min(float(hold), MAX_HOLD_SECONDS))
    return {
        "token": token,
        "worker": self.request.hostname,
        "pid": os.getpid(),
        "queue": (self.request.delivery_info or {}).get("routing_key"),
        "at": timezone.now().isoformat(),
    }


@shared_task(bind=True, name="scheduling.execute_run")
def execute_run(self, run_id: int) -> str:
    """Execute one job run (the only task type that runs jobs)."""
    from scheduling.services import execution

    return execution.execute_run(run_id, task_id=self.request.id, worker=self.request.hostname or "")


@shared_task(bind=True, name="scheduling.execute_chunk", max_retries=None)
def execute_chunk(self, run_id: int, index: int) -> str:
    """Execute one chunk of a fanned-out run; retried with the job's backoff."""
    from scheduling.services import execution

    outcome = execution.execute_chunk(run_id, index, retries=self.request.retries)
    if isinstance(outcome, execution.RetryLater):
        raise self.retry(countdown=outcome.delay)
    return outcome


@shared_task(
    name="scheduling.deliver_alert",
    autoretry_for=(OSError,),
    retry_backoff=30,
    retry_backoff_max=1800,
    retry_jitter=True,
    max_retries=8,
)
def deliver_alert(alert_id: int) -> None:
    """Send an alert to staff; a mail server that is down is retried with backoff."""
    from scheduling.services import alerts

    alerts.deliver(alert_id)


@shared_task(name="scheduling.fire_job")
def fire_job(job: str) -> int | None:
    """A run of ``job`` for the current slot. Job schedules are fired by beat directly; this
    serves a periodic task an admin points at a job by hand, without a job schedule."""
    from scheduling.choices import Trigger
    from scheduling.models import JobDefinition
    from scheduling.services import runs

    definition = JobDefinition.objects.filter(code=job).first()
    if definition is None:
        return None
    run, _ = runs.request_run(definition, trigger=Trigger.SCHEDULE)
    return run.pk
