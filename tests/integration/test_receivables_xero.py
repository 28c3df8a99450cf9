"""Xero sync on real workers against the fake Xero server, under the Redis governor:
organisations sync in parallel on two workers, a dead one among them is recorded and the
others complete, a grant shared by two organisations is refreshed once across processes,
an app-wide 429 holds every worker for its Retry-After, and Xero's limits (enforced by the
fake) are never exceeded. Also the Redis governor's windows, on a fake clock."""

from __future__ import annotations

import datetime
import uuid

import pytest
from django.conf import settings
from django.utils import timezone

import receivables.jobs.xero  # noqa: F401 (registers XERO_SYNC should the app not have yet)
from receivables.models import Document, XeroConnection, XeroGrant
from receivables.xero.client import app_key
from receivables.xero.errors import RateLimited
from receivables.xero.governor import DEFAULT_PREFIX, Governor, Limits
from receivables.xero.redis_governor import RedisBackend
from scheduling.choices import RunStatus
from scheduling.models import JobDefinition, JobRun
from scheduling.services import runs
from scheduling.services.sync import sync_jobs
from tests.fakes.xero_server import FakeXero, install
from tests.fakes.xero_server import Limits as XeroLimits
from tests.helpers import wait_for

GOVERNOR_DB = "redis://127.0.0.1:6379/9"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def redis_governor():
    """A governor in Redis database 9 under a prefix of the test's own, on a fake clock."""
    backend = RedisBackend(GOVERNOR_DB, prefix=f"test-xero-{uuid.uuid4().hex[:8]}")
    clock = Clock()

    def make(**limits) -> Governor:
        return Governor(backend, Limits(**limits), clock=clock, sleep=clock.sleep)

    make.clock = clock
    yield make
    backend.clear()


def test_the_redis_governor_holds_the_minute_and_rolls_it(redis_governor):
    governor, clock = redis_governor(per_minute=3), redis_governor.clock
    start = clock.now
    for _ in range(3):
        with governor.slot("app", "acme"):
            clock.now += 1

    with governor.slot("app", "acme"):
        assert 60 <= clock.now - start < 60.1
    with governor.slot("app", "rival"):  # another tenant's minute is its own
        assert 60 <= clock.now - start < 60.1


def test_the_redis_governor_lets_a_dead_callers_lease_lapse(redis_governor):
    governor, clock = redis_governor(concurrent=1, lease_seconds=2, max_wait=10), redis_governor.clock
    start = clock.now
    governor.acquire("app", "acme")

    governor.acquire("app", "acme")

    assert 2 <= clock.now - start < 2.2
    assert governor.usage("app", "acme").in_flight == 1


def test_the_redis_governor_refuses_a_spent_day_and_shares_the_app_minute(redis_governor):
    governor, clock = redis_governor(per_day=2, max_wait=600), redis_governor.clock
    for _ in range(2):
        with governor.slot("app", "acme"):
            clock.now += 100
    with pytest.raises(RateLimited, match="day limit"):
        governor.acquire("app", "acme")

    start = clock.now
    for tenant in ("a", "b", "c"):
        with governor.slot("app2", tenant, app_limit=3):
            pass
    with governor.slot("app2", "d", app_limit=3):
        assert 60 <= clock.now - start < 60.1


def test_the_redis_governor_blocks_a_tenant_or_the_app_for_a_retry_after(redis_governor):
    governor, clock = redis_governor(), redis_governor.clock
    start = clock.now
    governor.block("app", "acme", 30, "minute")
    with governor.slot("app", "rival"):
        assert clock.now == start
    governor.block("app", "acme", 10, "appminute")
    with governor.slot("app", "rival"):
        assert 10 <= clock.now - start < 10.1
    with governor.slot("app", "acme"):
        assert 30 <= clock.now - start < 30.1


# --- XERO_SYNC on workers -------------------------------------------------------------------------


@pytest.fixture
def shared_governor():
    """The governor the workers use (the cache's Redis): empty before and after."""
    backend = RedisBackend(settings.CACHES["default"]["LOCATION"], DEFAULT_PREFIX)
    backend.clear()
    yield backend
    backend.clear()


def finished(run: JobRun, timeout: float = 60) -> JobRun:
    def done():
        run.refresh_from_db()
        return run.is_finished

    wait_for(done, timeout=timeout, what=f"run {run.pk} to finish")
    return run


def test_organisations_sync_in_parallel_on_two_workers_within_xeros_limits(start_worker, shared_governor):
    with FakeXero(limits=XeroLimits()) as xero:
        # Given six organisations of one app: two reached through one grant about to expire,
        # one dead (Xero answers 500 to everything), one that will draw an app-wide 429
        tenants, made = [], {}
        for n, name in enumerate(("North", "South", "East", "West", "Central", "Dead")):
            tenant = xero.add_tenant(f"{name} Ltd", tenant_id=str(uuid.uuid4()))
            made[tenant.tenant_id] = tenant.populate(300, seed=n + 1, start=datetime.date(2026, 1, 31))
            tenants.append(tenant)
        north, south, east, *_, dead = tenants
        app = install(xero, [north, south], shared_grant=True)
        XeroGrant.objects.update(expires_at=timezone.now() + datetime.timedelta(seconds=20))
        client_id = app.client_id
        for tenant in tenants[2:]:
            tokens = xero.issue_tokens(client_id, [tenant.tenant_id])
            grant = XeroGrant(app=app, name=tenant.name, expires_at=tokens.expires_at_datetime, scopes=tokens.scopes)
            grant.access_token, grant.refresh_token = tokens.access_token, tokens.refresh_token
            grant.save()
            XeroConnection.objects.create(app=app, tenant_id=tenant.tenant_id, tenant_name=tenant.name, grant=grant)
        xero.kill_tenant(dead.tenant_id, status=500)
        xero.rate_limit(retry_after=2, problem="appminute", tenant=east.tenant_id, path="/CreditNotes")
        sync_jobs()

        # When XERO_SYNC runs on two workers
        workers = [start_worker(queues="receivables", concurrency=2) for _ in range(2)]
        run, _ = runs.request_run(JobDefinition.objects.get(code="XERO_SYNC"), params={"discover": False})
        run = finished(run)

        # Then the run succeeded with the dead organisation counted failed, the others synced
        assert run.status == RunStatus.SUCCEEDED, run.error
        assert (run.chunks_total, run.failed) == (6, 1)
        for tenant in tenants[:-1]:
            connection = XeroConnection.objects.get(tenant_id=tenant.tenant_id)
            assert connection.last_error == "" and connection.last_synced_at is not None, connection.last_error
            documents = sum(count for kind, count in made[tenant.tenant_id].items() if kind != "contact")
            assert Document.objects.filter(connection=connection).count() == documents
        lost = XeroConnection.objects.get(tenant_id=dead.tenant_id)
        assert lost.failed_at is not None and lost.last_error.startswith("Xero answered 500 4 times")

        # and the organisations synced on both workers, at the same time
        assert all("scheduling.execute_chunk" in worker.output() for worker in workers)
        listed = xero.calls_to("/api.xro")
        assert any(
            a.tenant != b.tenant and a.started < b.finished and b.started < a.finished for a in listed for b in listed
        )

        # and the shared grant was refreshed once, by whichever organisation got there first
        assert len(xero.calls_to("/connect/token")) == 1

        # and Xero's limits were never exceeded; the 429 Xero sent held every worker
        assert xero.limit_hits == []
        calls = [call for call in xero.calls if call.path != "/connect/token"]
        limited = [call for call in calls if call.status == 429]
        assert len(limited) == 1
        blocked_from = limited[0].finished + 0.05  # calls whose slots were taken before the block was recorded
        blocked_until = limited[0].finished + 2 - 0.25  # Retry-After, less the clocks' and scheduling's slack
        assert not [call for call in calls if blocked_from < call.started < blocked_until]
        assert any(call.started >= blocked_until for call in calls)

        # and the workers counted every call in the shared governor
        usage = shared_governor.usage(app_key(app), north.tenant_id, None)
        assert usage.minute == len(xero.calls_to("/api.xro", tenant=north.tenant_id)) and usage.in_flight == 0
