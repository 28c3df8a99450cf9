"""Platform tasks. Task functions stay thin: logic lives in services."""

from __future__ import annotations

import logging
import os
import time

from celery import shared_task
from django.db import connection
from django.utils import timezone

from scheduling import infrastructure

logger = logging.getLogger(__name__)

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


# A run's or a chunk's task keeps no result: the run records its own outcome, and a result
# row per chunk would cost the database a write per task (and fail during an outage).
@shared_task(bind=True, name="scheduling.execute_run", ignore_result=True, max_retries=infrastructure.TASK_RETRIES)
def execute_run(self, run_id: int) -> str:
    """Execute one job run (the only task type that runs jobs)."""
    from scheduling.services import execution

    try:
        return execution.execute_run(
            run_id, task_id=self.request.id, worker=self.request.hostname or "", after_outage=self.request.retries > 0
        )
    except Exception as exc:
        _retry_through_outage(self, exc)
        raise


@shared_task(bind=True, name="scheduling.execute_chunk", max_retries=None, ignore_result=True)
def execute_chunk(self, run_id: int, index: int) -> str:
    """Execute one chunk of a fanned-out run; retried with the job's backoff."""
    from scheduling.services import execution

    try:
        outcome = execution.execute_chunk(
            run_id, index, retries=self.request.retries, worker=self.request.hostname or ""
        )
    except Exception as exc:
        _retry_through_outage(self, exc)
        raise
    if isinstance(outcome, execution.RetryLater):
        raise self.retry(countdown=outcome.delay)
    return outcome


def _retry_through_outage(task, exc: Exception) -> None:
    """The database or broker went away mid-task: try again after a backoff instead of
    letting the message be acknowledged as done. The run's state is in the database, so
    the retry carries on where this try left off (a chunk done is found done)."""
    if not infrastructure.is_infrastructure_error(exc) or task.request.retries >= infrastructure.TASK_RETRIES:
        return
    connection.close()  # the next try connects afresh
    delay = infrastructure.retry_delay(task.request.retries)
    logger.warning("%s%s met an outage (%s); trying again in %.0fs", task.name, task.request.args, exc, delay)
    raise task.retry(exc=exc, countdown=delay, max_retries=None)


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
