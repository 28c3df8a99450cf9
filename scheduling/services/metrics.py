"""Prometheus text exposition of the job layer: runs, durations, queues, alerts, beat."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.db.models import Count, Max, OuterRef, Subquery
from django.utils import timezone

from scheduling.choices import RunStatus, Severity
from scheduling.models import BeatLease, JobAlert, JobDefinition, JobPerformance, JobRun

logger = logging.getLogger(__name__)

PREFIX = "countinghouse"


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _family(name: str, kind: str, help_text: str, samples: Iterable[tuple[dict, float]]) -> list[str]:
    lines = [f"# HELP {PREFIX}_{name} {help_text}", f"# TYPE {PREFIX}_{name} {kind}"]
    for labels, value in samples:
        rendered = ",".join(f'{key}="{_escape(val)}"' for key, val in labels.items())
        lines.append(f"{PREFIX}_{name}{{{rendered}}} {value}" if rendered else f"{PREFIX}_{name} {value}")
    return lines


def queue_depths() -> dict[str, int | None]:
    """Messages waiting in each queue, asked of the broker; None where it did not answer."""
    from celery import current_app

    depths: dict[str, int | None] = {}
    try:
        with current_app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
            channel = connection.default_channel
            for name in settings.QUEUES:
                try:
                    depths[name] = channel.queue_declare(queue=name, passive=True).message_count
                except Exception:  # a queue not declared yet on this broker
                    depths[name] = None
    except Exception:
        logger.warning("broker did not answer for queue depths", exc_info=True)
        depths = dict.fromkeys(settings.QUEUES)
    return depths


def render() -> str:
    now = timezone.now()
    codes = dict(JobDefinition.objects.values_list("pk", "code"))
    by_status = list(JobRun.objects.values("job_id", "status").annotate(n=Count("pk")).order_by())
    lines = _family(
        "job_runs",
        "gauge",
        "Runs recorded, by job and status.",
        (({"job": codes[row["job_id"]], "status": row["status"]}, row["n"]) for row in by_status),
    )
    last_success = (
        JobRun.objects.filter(status=RunStatus.SUCCEEDED).values("job_id").annotate(at=Max("finished_at")).order_by()
    )
    lines += _family(
        "job_last_success_timestamp_seconds",
        "gauge",
        "When each job last succeeded (Unix time).",
        (({"job": codes[row["job_id"]]}, row["at"].timestamp()) for row in last_success if row["at"]),
    )
    newest = JobPerformance.objects.filter(job=OuterRef("job")).order_by("-computed_at", "-pk").values("pk")[:1]
    samples = []
    for row in JobPerformance.objects.filter(pk=Subquery(newest)):  # each job's latest window only
        for quantile, value in (("0.5", row.p50), ("0.95", row.p95), ("0.99", row.p99)):
            if value is not None:
                samples.append(({"job": codes[row.job_id], "quantile": quantile}, value))
    lines += _family(
        "job_duration_seconds",
        "gauge",
        "Duration percentiles of succeeded runs over the last SYS_PERFORMANCE_STATS window.",
        samples,
    )
    lines += _family(
        "job_running",
        "gauge",
        "Runs executing now.",
        (({"job": codes[row["job_id"]]}, row["n"]) for row in by_status if row["status"] == RunStatus.RUNNING),
    )
    lines += _family(
        "queue_depth",
        "gauge",
        "Messages waiting in each Celery queue (-1 when the broker did not say).",
        (({"queue": name}, -1 if depth is None else depth) for name, depth in queue_depths().items()),
    )
    open_alerts = JobAlert.objects.open().values("severity").annotate(n=Count("pk")).order_by()
    counts = {row["severity"]: row["n"] for row in open_alerts}
    lines += _family(
        "open_alerts",
        "gauge",
        "Alerts nobody has acknowledged or resolved, by severity.",
        (({"severity": severity}, counts.get(severity, 0)) for severity in Severity.values),
    )
    leading = 1 if BeatLease.live(now) else 0
    lines += _family("beat_leader", "gauge", "1 when a beat holds a live lease.", [({}, leading)])
    return "\n".join(lines) + "\n"
