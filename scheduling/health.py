"""Health of the platform's moving parts: database, broker, cache, workers and beat.

Each check answers ok or failing with its latency. The checks named in
HEALTH_CRITICAL_CHECKS decide the overall status: any of them failing makes the platform
"failing" (HTTP 503); a non-critical check failing makes it "degraded".
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from scheduling.models import BeatHeartbeat


@dataclass
class CheckResult:
    name: str
    ok: bool
    critical: bool
    latency_ms: float = 0.0
    detail: str = ""
    data: dict = field(default_factory=dict)


@dataclass
class HealthReport:
    status: str  # ok, degraded or failing
    checks: list[CheckResult]

    @property
    def http_status(self) -> int:
        return 503 if self.status == "failing" else 200

    def as_dict(self, *, details: bool = True) -> dict:
        """The report; without ``details`` (anonymous callers) no host names or error texts."""
        shown = {"ok", "critical", "latency_ms"} | ({"detail", "data"} if details else set())
        return {
            "status": self.status,
            "mode": settings.MODE,
            "checked_at": timezone.now().isoformat(),
            "checks": {c.name: {k: v for k, v in asdict(c).items() if k in shown} for c in self.checks},
        }


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


def check_broker() -> str:
    with current_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=0)  # one attempt: a health check must answer fast
        return conn.as_uri()


def check_cache() -> str:
    key = f"health:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=10)
    found = cache.get(key)
    cache.delete(key)
    if found != "1":
        raise RuntimeError("a value written to the cache could not be read back")
    return settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]


def check_workers() -> tuple[str, dict]:
    # limit=1: return as soon as one worker answers instead of waiting out the timeout.
    replies = current_app.control.ping(timeout=settings.HEALTH_WORKER_TIMEOUT, limit=1) or []
    if not replies:
        raise RuntimeError(f"no worker answered a ping within {settings.HEALTH_WORKER_TIMEOUT}s")
    names = sorted(name for reply in replies for name in reply)
    return f"{names[0]} answered", {"workers": names}


def check_beat() -> tuple[str, dict]:
    beat = BeatHeartbeat.objects.order_by("-last_tick_at").first()
    if beat is None:
        raise RuntimeError("beat has never ticked")
    age = (timezone.now() - beat.last_tick_at).total_seconds()
    data = {"beat": beat.hostname, "last_tick_at": beat.last_tick_at.isoformat(), "age_seconds": round(age, 1)}
    if timezone.now() - beat.last_tick_at > timedelta(seconds=settings.HEALTH_BEAT_STALE_AFTER):
        raise RuntimeError(f"beat's last tick was {age:.0f}s ago ({beat.hostname})")
    return f"last tick {age:.0f}s ago", data


CHECKS: dict[str, Callable[[], str | tuple[str, dict]]] = {
    "database": check_database,
    "broker": check_broker,
    "cache": check_cache,
    "workers": check_workers,
    "beat": check_beat,
}


def run_check(name: str, *, skip_because: str = "") -> CheckResult:
    critical = name in settings.HEALTH_CRITICAL_CHECKS
    if skip_because:
        return CheckResult(name, False, critical, 0.0, f"not checked: {skip_because}")
    started = time.perf_counter()
    try:
        outcome = CHECKS[name]()
    except Exception as exc:  # a health check reports every failure, whatever its kind
        latency = (time.perf_counter() - started) * 1000
        return CheckResult(name, False, critical, round(latency, 1), f"{type(exc).__name__}: {exc}")
    latency = (time.perf_counter() - started) * 1000
    detail, data = outcome if isinstance(outcome, tuple) else (outcome, {})
    return CheckResult(name, True, critical, round(latency, 1), detail, data)


def check_health() -> HealthReport:
    results: dict[str, CheckResult] = {}
    for name in CHECKS:
        # Pinging workers through a broker that is down only waits out its connection retries.
        broker_down = name == "workers" and not results["broker"].ok
        results[name] = run_check(name, skip_because="the broker is failing" if broker_down else "")
    checks = list(results.values())
    if any(not r.ok and r.critical for r in checks):
        status = "failing"
    elif any(not r.ok for r in checks):
        status = "degraded"
    else:
        status = "ok"
    return HealthReport(status, checks)
