"""Alerts: consecutive failures, slow runs, missed slots, blocked dependencies, lost runs.

One open alert per (job, cause): a cause that keeps happening bumps the open alert's
count instead of mailing staff again. An alert closes when acknowledged, or resolves
itself when its cause is gone (the job succeeds, the blocked run is released).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.module_loading import import_string

from scheduling.choices import Cause, RunStatus, Severity
from scheduling.models import JobAlert, JobDefinition, JobRun

logger = logging.getLogger(__name__)

SLOW_HISTORY = 20  # recent successful runs whose p95 a run is compared with
SLOW_MIN_HISTORY = 5  # fewer than this and "twice its own p95" means nothing yet
SLOW_FACTOR = 2.0
SLOW_FLOOR_SECONDS = 1.0  # a 0.2 s job taking 0.5 s is noise, not an alert


def raise_alert(
    job: JobDefinition, cause: Cause, message: str, *, severity: Severity = Severity.WARNING, run: JobRun | None = None
) -> JobAlert:
    """The open alert for (job, cause): created and delivered once, then only counted."""
    now = timezone.now()
    open_alerts = JobAlert.objects.open().filter(job=job, cause=cause)
    if open_alerts.update(occurrences=F("occurrences") + 1, last_seen_at=now):
        return open_alerts.get()
    try:
        with transaction.atomic():
            alert = JobAlert.objects.create(job=job, cause=cause, severity=severity, message=message, run=run)
    except IntegrityError:
        # Another process opened it between our update and insert: count ours on theirs.
        open_alerts.update(occurrences=F("occurrences") + 1, last_seen_at=now)
        return open_alerts.get()
    logger.warning("alert: %s %s: %s", job.code, cause, message)
    transaction.on_commit(lambda: _queue_delivery(alert.pk), robust=True)
    return alert


def _queue_delivery(alert_id: int) -> None:
    from scheduling import tasks

    tasks.deliver_alert.delay(alert_id)


def resolve(job: JobDefinition, *causes: Cause) -> int:
    return JobAlert.objects.open().filter(job=job, cause__in=causes).update(resolved_at=timezone.now())


def acknowledge(alert: JobAlert, user) -> bool:
    return bool(
        JobAlert.objects.open()
        .filter(pk=alert.pk)
        .update(acknowledged_at=timezone.now(), acknowledged_by=user if user and user.is_authenticated else None)
    )


def evaluate_finished(run: JobRun) -> None:
    definition = run.job
    if run.status == RunStatus.FAILED:
        threshold = definition.failure_alert_after
        recent = list(
            JobRun.objects.filter(job=definition, status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED])
            .exclude(finished_at=None)
            .order_by("-finished_at", "-pk")
            .values_list("status", flat=True)[:threshold]
        )
        if len(recent) == threshold and all(status == RunStatus.FAILED for status in recent):
            raise_alert(
                definition,
                Cause.CONSECUTIVE_FAILURES,
                f"{definition.code} failed {threshold} times in a row; last error: {run.error[:500]}",
                severity=Severity.CRITICAL,
                run=run,
            )
    elif run.status == RunStatus.SUCCEEDED:
        resolve(definition, Cause.CONSECUTIVE_FAILURES, Cause.LOST_RUN)
        check_slow(run)


def check_slow(run: JobRun) -> None:
    """Slower than the job's threshold, or than twice the p95 of its own recent runs."""
    definition = run.job
    if run.duration is None:
        return
    if definition.runtime_threshold and run.duration > definition.runtime_threshold:
        raise_alert(
            definition,
            Cause.SLOW_RUN,
            f"{definition.code} {run.run_key} took {run.duration:.1f}s; its threshold is "
            f"{definition.runtime_threshold}s",
            run=run,
        )
        return
    if run.duration <= SLOW_FLOOR_SECONDS:
        return  # too quick to alert on whatever its history says; spare the query
    history = list(
        JobRun.objects.filter(job=definition, status=RunStatus.SUCCEEDED)
        .exclude(pk=run.pk)
        .exclude(duration=None)
        .order_by("-finished_at")
        .values_list("duration", flat=True)[:SLOW_HISTORY]
    )
    if len(history) < SLOW_MIN_HISTORY:
        return
    p95 = percentile(history, 95)
    if run.duration > max(SLOW_FACTOR * p95, SLOW_FLOOR_SECONDS):
        raise_alert(
            definition,
            Cause.SLOW_RUN,
            f"{definition.code} {run.run_key} took {run.duration:.1f}s, over twice its recent p95 of {p95:.1f}s",
            run=run,
        )


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile: an observed value, never an interpolation."""
    ordered = sorted(values)
    rank = max(1, round(pct / 100 * len(ordered) + 0.4999))
    return ordered[min(rank, len(ordered)) - 1]


def blocked(run: JobRun, reason: str) -> None:
    raise_alert(run.job, Cause.BLOCKED, f"{run.job.code} {run.run_key} is blocked: {reason}", run=run)


def deliver(alert_id: int) -> None:
    """Hand the alert to ``settings.JOB_ALERT_DELIVERY`` (the notifications app: staff get it
    in the app and by email). The job layer imports no other app; the setting wires it."""
    alert = JobAlert.objects.select_related("job", "run").filter(pk=alert_id, notified_at=None).first()
    if alert is None:
        return
    import_string(settings.JOB_ALERT_DELIVERY)(alert)
    JobAlert.objects.filter(pk=alert.pk).update(notified_at=timezone.now())
