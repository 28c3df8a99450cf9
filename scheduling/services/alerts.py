"""Alerts: consecutive failures, slow and late runs, missed slots, blocked chains, lost and
stalled runs.

One open alert per (job, cause, subject): a cause that keeps happening bumps the open
alert's count instead of mailing staff again. The subject tells apart what one job's
alert can be about: the company, for a per-company job's failures (one company failing
says nothing of another's runs); the root run of a blocked chain (one alert however many
runs it holds back); the run that is late or stalled. An alert closes when acknowledged,
or resolves itself when its cause is gone (the job succeeds, the chain is released).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.module_loading import import_string

from config.companies import company_model
from scheduling.choices import Cause, RunStatus, Severity
from scheduling.models import JobAlert, JobDefinition, JobRun

logger = logging.getLogger(__name__)

SLOW_HISTORY = 20  # recent successful runs whose p95 a run is compared with
SLOW_MIN_HISTORY = 5  # fewer than this and "twice its own p95" means nothing yet
SLOW_FACTOR = 2.0
SLOW_FLOOR_SECONDS = 1.0  # a 0.2 s job taking 0.5 s is noise, not an alert
HELD_LISTED = 20  # runs a blocked-chain alert names before it says "and n more"


def company_subject(company_id: int | None) -> str:
    return f"company:{company_id}" if company_id else ""


def run_subject(run: JobRun) -> str:
    return f"run:{run.pk}"


def raise_alert(
    job: JobDefinition,
    cause: Cause,
    message: str,
    *,
    severity: Severity = Severity.WARNING,
    run: JobRun | None = None,
    company_id: int | None = None,
    subject: str | None = None,
) -> JobAlert:
    """The open alert for (job, cause, subject): created and delivered once, then only
    counted, with its message brought up to date. The subject defaults to the company."""
    subject = company_subject(company_id) if subject is None else subject
    now = timezone.now()
    open_alerts = JobAlert.objects.open().filter(job=job, cause=cause, subject=subject)
    if open_alerts.update(occurrences=F("occurrences") + 1, last_seen_at=now, message=message):
        return open_alerts.get()
    try:
        with transaction.atomic():
            alert = JobAlert.objects.create(
                job=job,
                cause=cause,
                subject=subject,
                company_id=company_id,
                severity=severity,
                message=message,
                run=run,
            )
    except IntegrityError:
        # Another process opened it between our update and insert: count ours on theirs.
        open_alerts.update(occurrences=F("occurrences") + 1, last_seen_at=now, message=message)
        return open_alerts.get()
    logger.warning("alert: %s %s: %s", job.code, cause, message)
    transaction.on_commit(lambda: _queue_delivery(alert.pk), robust=True)
    return alert


def _queue_delivery(alert_id: int) -> None:
    from scheduling import tasks

    tasks.deliver_alert.delay(alert_id)


def resolve(job: JobDefinition | int, *causes: Cause, subject: str | None = None) -> int:
    """Resolve the job's open alerts of these causes: all of them, or one subject's."""
    found = JobAlert.objects.open().filter(job=job, cause__in=causes)
    if subject is not None:
        found = found.filter(subject=subject)
    return found.update(resolved_at=timezone.now())


def acknowledge(alert: JobAlert, user) -> bool:
    return bool(
        JobAlert.objects.open()
        .filter(pk=alert.pk)
        .update(acknowledged_at=timezone.now(), acknowledged_by=user if user and user.is_authenticated else None)
    )


def evaluate_finished(run: JobRun) -> None:
    definition = run.job
    if run.status == RunStatus.FAILED:
        check_failures(run)
    elif run.status == RunStatus.SUCCEEDED:
        # The company's failures and lost runs, and this run's lateness and stall: one statement.
        gone = Q(cause__in=[Cause.CONSECUTIVE_FAILURES, Cause.LOST_RUN], subject=company_subject(run.company_id))
        gone |= Q(cause__in=[Cause.LATE, Cause.STALLED], subject=run_subject(run))
        JobAlert.objects.open().filter(gone, job=definition).update(resolved_at=timezone.now())
        check_slow(run)


def check_failures(run: JobRun) -> None:
    """N failures in a row of this job, for this run's company when the job runs per company:
    another company's runs neither break nor extend the streak."""
    definition = run.job
    threshold = definition.failure_alert_after
    recent = list(
        JobRun.objects.filter(
            job=definition, company=run.company_id, status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED]
        )
        .exclude(finished_at=None)
        .order_by("-finished_at", "-pk")
        .values_list("status", flat=True)[:threshold]
    )
    if len(recent) < threshold or any(status != RunStatus.FAILED for status in recent):
        return
    where = f" for {company_name(run.company_id)}" if run.company_id else ""
    raise_alert(
        definition,
        Cause.CONSECUTIVE_FAILURES,
        f"{definition.code}{where} failed {threshold} times in a row; last error: {run.error[:500]}",
        severity=Severity.CRITICAL,
        run=run,
        company_id=run.company_id,
    )


def company_name(company_id: int | None) -> str:
    if company_id is None:
        return ""
    company = company_model().objects.filter(pk=company_id).first()
    return str(company) if company else f"company {company_id}"


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
            subject="",
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
            subject="",
        )


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile: an observed value, never an interpolation."""
    ordered = sorted(values)
    rank = max(1, round(pct / 100 * len(ordered) + 0.4999))
    return ordered[min(rank, len(ordered)) - 1]


# --- Blocked chains ------------------------------------------------------------------------------


def blocked_chain(root: JobRun) -> JobAlert | None:
    """The one alert for everything ``root`` holds back, naming each held run; resolved when
    nothing is held back by it any more (it was re-run, or the held runs released)."""
    held = list(
        JobRun.objects.filter(blocked_by=root, status=RunStatus.BLOCKED)
        .select_related("job")
        .order_by("slot_at", "pk")[: HELD_LISTED + 1]
    )
    subject = run_subject(root)
    if not held:
        resolve(root.job_id, Cause.BLOCKED, subject=subject)
        return None
    count = JobRun.objects.filter(blocked_by=root, status=RunStatus.BLOCKED).count()
    names = ", ".join(f"{run.job.code} {run.run_key}" for run in held[:HELD_LISTED])
    if count > HELD_LISTED:
        names += f" and {count - HELD_LISTED} more"
    where = f" for {company_name(root.company_id)}" if root.company_id else ""
    reason = f": {root.error[:300]}" if root.error else ""
    return raise_alert(
        root.job,
        Cause.BLOCKED,
        f"{root.job.code} {root.run_key}{where} {root.status}{reason}. It holds back {count} run(s): {names}. "
        "Re-run it, or release the held runs, and the chain proceeds in dependency order.",
        run=root,
        company_id=root.company_id,
        subject=subject,
    )


def deliver(alert_id: int) -> None:
    """Hand the alert to ``settings.JOB_ALERT_DELIVERY`` (the notifications app: staff get it
    in the app and by email). The job layer imports no other app; the setting wires it."""
    alert = JobAlert.objects.select_related("job", "run").filter(pk=alert_id, notified_at=None).first()
    if alert is None:
        return
    import_string(settings.JOB_ALERT_DELIVERY)(alert)
    JobAlert.objects.filter(pk=alert.pk).update(notified_at=timezone.now())
