"""The governor: every worker's Xero calls, together, within Xero's limits.

Xero allows each app, per tenant, 60 calls in any minute, 5 calls in progress at once and
5,000 calls a day (a rolling 24 hours), and across all its tenants ``XeroApp.calls_per_minute``
(10,000) calls a minute. A call first takes a slot (``with governor.slot(app, tenant)``):
the slot is granted at once if every window has room, or the caller sleeps until the
earliest moment one does. A 429 from Xero blocks the tenant (or, for an app-wide problem,
the whole app) for its Retry-After, so every worker waits, not only the one that was told.

Two backends with one interface:
- ``redis_governor.RedisBackend`` (distributed mode): one Lua script decides and records atomically, on
  Redis's clock, so workers on several machines share the windows. A call's concurrency
  slot is a lease with an expiry: a worker killed mid-call frees it when the lease lapses.
- ``FileBackend`` (embedded mode, no Redis): the same state in a JSON file under the var
  directory, read and written under an exclusive ``fcntl`` lock, for the processes of one
  machine. Day and app windows are kept in per-minute and per-second buckets there, which
  errs on the side of waiting.

A wait longer than ``Limits.max_wait`` (a day's allowance spent, a long Retry-After) is
not slept through: ``RateLimited`` fails the call, and with it that tenant's sync, at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from django.conf import settings

from receivables.xero.errors import RateLimited

MINUTE_MS = 60_000
DAY_MS = 86_400_000
DEFAULT_PREFIX = "countinghouse:xero"
CONCURRENCY_POLL_MS = 50  # how often a caller waiting for a call in progress to end looks again


@dataclass(frozen=True)
class Limits:
    per_minute: int = 60
    concurrent: int = 5
    per_day: int = 5000
    app_per_minute: int = 10_000  # the default; each app's own is XeroApp.calls_per_minute
    lease_seconds: float = 120.0  # longer than any call may take (the client's read timeout)
    max_wait: float = 120.0  # longer than this is not worth holding a worker for


@dataclass(frozen=True)
class Usage:
    """What a tenant and its app have used, as the governor sees it now."""

    minute: int
    day: int
    in_flight: int
    app_minute: int
    blocked_for: float  # seconds the tenant (or its app) is still blocked


class Backend(Protocol):
    def acquire(
        self, app: str, tenant: str | None, lease: str, limits: Limits, app_limit: int, now_ms: int | None
    ) -> tuple[int, str]:
        """Record the call and return (0, "") if every window has room; otherwise record
        nothing and return how many milliseconds to wait and which limit is full."""

    def release(self, app: str, tenant: str | None, lease: str) -> None: ...

    def block(self, app: str, tenant: str | None, ms: int, now_ms: int | None) -> None: ...

    def usage(self, app: str, tenant: str, now_ms: int | None) -> Usage: ...


@dataclass(frozen=True)
class Lease:
    app: str
    tenant: str | None
    id: str


class Governor:
    """Slots for Xero calls. ``clock`` (seconds) and ``sleep`` are injectable for tests;
    without a clock the backend's own is used (Redis's, so machines need not agree)."""

    def __init__(
        self,
        backend: Backend,
        limits: Limits | None = None,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.backend = backend
        self.limits = limits or Limits()
        self.clock = clock
        self.sleep = sleep

    def _now_ms(self) -> int | None:
        return None if self.clock is None else int(self.clock() * 1000)

    @contextlib.contextmanager
    def slot(self, app: str, tenant: str | None, *, app_limit: int | None = None) -> Iterator[Lease]:
        """Hold a slot for one call: ``tenant`` None is a call outside any organisation
        (the identity API), counted against the app only."""
        lease = self.acquire(app, tenant, app_limit=app_limit)
        try:
            yield lease
        finally:
            self.release(lease)

    def acquire(self, app: str, tenant: str | None, *, app_limit: int | None = None) -> Lease:
        lease = Lease(app, tenant, uuid.uuid4().hex)
        waited = 0.0
        while True:
            wait_ms, reason = self.backend.acquire(
                app, tenant, lease.id, self.limits, app_limit or self.limits.app_per_minute, self._now_ms()
            )
            if not wait_ms:
                return lease
            wait = wait_ms / 1000
            if waited + wait > self.limits.max_wait:
                who = "the app" if reason.startswith("app") else "this organisation"
                raise RateLimited(
                    f"Xero's {reason} limit for {who} leaves no call for {wait:,.0f}s; try again later", wait
                )
            # A little jitter, so workers released by the same moment do not all ask at once.
            pause = wait + random.uniform(0, min(0.05, wait / 10))
            self.sleep(pause)
            waited += pause

    def release(self, lease: Lease) -> None:
        self.backend.release(lease.app, lease.tenant, lease.id)

    def block(self, app: str, tenant: str | None, seconds: float, problem: str = "") -> None:
        """Xero answered 429 (Retry-After ``seconds``, X-Rate-Limit-Problem ``problem``): no
        call for the tenant, or the whole app when the app-wide limit was the problem."""
        scope = None if "app" in problem.lower() or tenant is None else tenant
        self.backend.block(app, scope, max(1, int(seconds * 1000)), self._now_ms())

    def usage(self, app: str, tenant: str) -> Usage:
        return self.backend.usage(app, tenant, self._now_ms())


# --- A file, for one machine without Redis ----------------------------------------------------------


class FileBackend:
    """The windows in a JSON file, changed under an exclusive lock by every process of the
    machine. State per tenant: call times of the last minute (exact), calls per minute of
    the last day, leases; per app: calls per second of the last minute; blocks."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @contextlib.contextmanager
    def _state(self) -> Iterator[dict]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                handle.seek(0)
                text = handle.read()
                try:
                    state = json.loads(text) if text.strip() else {}
                except ValueError:
                    state = {}  # a file cut short by a crash: the windows start again empty
                state.setdefault("tenants", {})
                state.setdefault("apps", {})
                yield state
                handle.seek(0)
                handle.truncate()
                handle.write(json.dumps(state, separators=(",", ":")))
                handle.flush()
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @staticmethod
    def _now(now_ms: int | None) -> int:
        return int(time.time() * 1000) if now_ms is None else now_ms

    @staticmethod
    def _prune(state: dict, now: int) -> None:
        for key, tenant in list(state["tenants"].items()):
            tenant["minute"] = [t for t in tenant.get("minute", []) if t > now - MINUTE_MS]
            tenant["day"] = {m: n for m, n in tenant.get("day", {}).items() if (int(m) + 1) * MINUTE_MS + DAY_MS > now}
            tenant["leases"] = {lease: t for lease, t in tenant.get("leases", {}).items() if t > now}
            if not (tenant["minute"] or tenant["day"] or tenant["leases"] or tenant.get("blocked", 0) > now):
                del state["tenants"][key]
        for key, app in list(state["apps"].items()):
            app["seconds"] = {s: n for s, n in app.get("seconds", {}).items() if (int(s) + 1) * 1000 + MINUTE_MS > now}
            if not (app["seconds"] or app.get("blocked", 0) > now):
                del state["apps"][key]

    @staticmethod
    def _bucket_wait(buckets: dict[str, int], limit: int, width: int, span: int, now: int) -> int:
        """Milliseconds until the buckets (``width`` ms each, counted for ``span`` after they
        end) hold fewer than ``limit`` calls; 0 when they already do."""
        total = sum(buckets.values())
        if total < limit:
            return 0
        for start in sorted(buckets, key=int):
            total -= buckets[start]
            if total < limit:
                return (int(start) + 1) * width + span - now
        return 0

    def acquire(self, app, tenant, lease, limits, app_limit, now_ms) -> tuple[int, str]:
        now = self._now(now_ms)
        with self._state() as state:
            self._prune(state, now)
            waits: list[tuple[int, str]] = []
            app_state = state["apps"].setdefault(app, {"seconds": {}})
            if app_state.get("blocked", 0) > now:
                waits.append((app_state["blocked"] - now, "app blocked"))
            waits.append((self._bucket_wait(app_state["seconds"], app_limit, 1000, MINUTE_MS, now), "app minute"))
            tenant_state = None
            if tenant:
                tenant_state = state["tenants"].setdefault(f"{app}:{tenant}", {"minute": [], "day": {}, "leases": {}})
                if tenant_state.get("blocked", 0) > now:
                    waits.append((tenant_state["blocked"] - now, "blocked"))
                minute = sorted(tenant_state["minute"])
                if len(minute) >= limits.per_minute:
                    waits.append((minute[len(minute) - limits.per_minute] + MINUTE_MS - now, "minute"))
                waits.append((self._bucket_wait(tenant_state["day"], limits.per_day, MINUTE_MS, DAY_MS, now), "day"))
                leases = tenant_state["leases"]
                if len(leases) >= limits.concurrent:
                    waits.append((max(1, min(CONCURRENCY_POLL_MS, min(leases.values()) - now)), "concurrent"))
            wait, reason = max(waits)
            if wait > 0:
                return wait, reason
            second = str(now // 1000)
            app_state["seconds"][second] = app_state["seconds"].get(second, 0) + 1
            if tenant_state is not None:
                tenant_state["minute"].append(now)
                minute_bucket = str(now // MINUTE_MS)
                tenant_state["day"][minute_bucket] = tenant_state["day"].get(minute_bucket, 0) + 1
                tenant_state["leases"][lease] = now + int(limits.lease_seconds * 1000)
            return 0, ""

    def release(self, app, tenant, lease) -> None:
        if not tenant:
            return
        with self._state() as state:
            tenant_state = state["tenants"].get(f"{app}:{tenant}")
            if tenant_state:
                tenant_state.get("leases", {}).pop(lease, None)

    def block(self, app, tenant, ms, now_ms) -> None:
        now = self._now(now_ms)
        with self._state() as state:
            if tenant:
                target = state["tenants"].setdefault(f"{app}:{tenant}", {"minute": [], "day": {}, "leases": {}})
            else:
                target = state["apps"].setdefault(app, {"seconds": {}})
            target["blocked"] = max(target.get("blocked", 0), now + ms)

    def usage(self, app, tenant, now_ms) -> Usage:
        now = self._now(now_ms)
        with self._state() as state:
            self._prune(state, now)
            tenant_state = state["tenants"].get(f"{app}:{tenant}", {})
            app_state = state["apps"].get(app, {})
            blocked = max(tenant_state.get("blocked", 0), app_state.get("blocked", 0))
            return Usage(
                len(tenant_state.get("minute", [])),
                sum(tenant_state.get("day", {}).values()),
                len(tenant_state.get("leases", {})),
                sum(app_state.get("seconds", {}).values()),
                max(0, blocked - now) / 1000,
            )

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


# --- The platform's governor --------------------------------------------------------------------


def default_governor() -> Governor:
    """The governor the settings call for: Redis wherever the shared cache is Redis (or at
    ``XERO_GOVERNOR_REDIS_URL``), a file under the var directory otherwise (embedded mode,
    unit tests). ``XERO_GOVERNOR_PREFIX`` and ``XERO_GOVERNOR_FILE`` move it elsewhere."""
    url = getattr(settings, "XERO_GOVERNOR_REDIS_URL", "") or _cache_redis_url()
    if url:
        return Governor(_redis_backend(url, getattr(settings, "XERO_GOVERNOR_PREFIX", "") or DEFAULT_PREFIX))
    path = getattr(settings, "XERO_GOVERNOR_FILE", "") or Path(settings.VAR_DIR) / "xero-governor.json"
    return Governor(FileBackend(path))


def _cache_redis_url() -> str:
    cache = settings.CACHES.get("default", {})
    location = cache.get("LOCATION", "")
    if cache.get("BACKEND", "").endswith("RedisCache") and isinstance(location, str):
        return location
    return ""


@lru_cache(maxsize=8)
def _redis_backend(url: str, prefix: str) -> Backend:
    """One client (and connection pool) per process and place; the embedded mode never
    imports Redis."""
    from receivables.xero.redis_governor import RedisBackend

    return RedisBackend(url, prefix)
