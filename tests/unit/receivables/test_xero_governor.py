"""The governor keeps every caller within Xero's limits: per tenant a minute, at once and a
day, per app a minute, and a 429's Retry-After. Here with the file backend (no Redis) and
a fake clock; the Redis backend runs the same checks in the integration tests."""

from __future__ import annotations

import threading
import time

import pytest

from receivables.models import XeroConnection
from receivables.xero.client import Tuning, XeroSession
from receivables.xero.errors import RateLimited
from receivables.xero.governor import FileBackend, Governor, Limits
from tests.fakes.xero_server import FakeXero, install
from tests.fakes.xero_server import Limits as XeroLimits

APP = "app1"


class Clock:
    """Seconds that pass only when someone sleeps."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.slept.append(seconds)
            self.now += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def governed(tmp_path, clock):
    def make(**limits) -> Governor:
        return Governor(FileBackend(tmp_path / "governor.json"), Limits(**limits), clock=clock, sleep=clock.sleep)

    return make


def test_calls_within_the_minute_limit_go_at_once_and_the_next_waits_for_the_oldest_to_leave(governed, clock):
    governor = governed(per_minute=3)
    start = clock.now
    for _ in range(3):
        with governor.slot(APP, "acme"):
            clock.now += 1  # each call takes a second

    with governor.slot(APP, "acme"):
        waited = clock.now - start

    assert 60 <= waited < 60.1  # the first call, made at 0s, left the window at 60s
    assert governor.usage(APP, "acme").minute == 3  # the first has left; three in the last minute


def test_tenants_have_minutes_of_their_own(governed, clock):
    governor = governed(per_minute=2)
    for tenant in ("acme", "acme", "rival", "rival"):
        with governor.slot(APP, tenant):
            pass

    assert clock.slept == []


def test_no_more_than_the_concurrent_limit_are_in_progress_and_a_release_frees_a_place(governed, clock):
    governor = governed(concurrent=2, lease_seconds=120)
    first, second = governor.acquire(APP, "acme"), governor.acquire(APP, "acme")
    assert governor.usage(APP, "acme").in_flight == 2

    governor.release(first)
    third = governor.acquire(APP, "acme")

    assert clock.slept == [] and governor.usage(APP, "acme").in_flight == 2
    governor.release(second)
    governor.release(third)
    assert governor.usage(APP, "acme").in_flight == 0


def test_the_place_of_a_caller_that_died_mid_call_lapses_with_its_lease(governed, clock):
    governor = governed(concurrent=1, lease_seconds=3, max_wait=60)
    start = clock.now
    governor.acquire(APP, "acme")  # a worker killed before releasing

    governor.acquire(APP, "acme")

    assert 3 <= clock.now - start < 3.2  # polled until the lease lapsed


def test_a_spent_day_fails_at_once_rather_than_holding_a_worker(governed, clock):
    governor = governed(per_day=5, max_wait=300)
    for _ in range(5):
        with governor.slot(APP, "acme"):
            clock.now += 120  # spread out: the minute limit never matters

    with pytest.raises(RateLimited, match="day limit for this organisation") as caught:
        governor.acquire(APP, "acme")

    assert caught.value.wait > 80_000 and clock.slept == []


def test_the_day_window_rolls_the_first_calls_free_their_places_a_day_later(governed, clock):
    governor = governed(per_day=2, max_wait=90_000)
    start = clock.now
    for _ in range(2):
        with governor.slot(APP, "acme"):
            pass

    with governor.slot(APP, "acme"):
        waited = clock.now - start

    assert 86_400 <= waited <= 86_400 + 61  # the file keeps the day in minutes, erring on waiting


def test_the_app_minute_limit_is_shared_by_all_its_tenants(governed, clock):
    governor = governed(per_minute=100)
    start = clock.now
    for tenant in ("a", "b", "c", "d"):
        with governor.slot(APP, tenant, app_limit=4):
            pass

    with governor.slot(APP, "e", app_limit=4):
        waited = clock.now - start
    with governor.slot("app2", "f", app_limit=4):  # another app has its own
        pass

    assert 60 <= waited <= 61.1
    assert clock.now - start == waited


def test_a_call_outside_any_tenant_counts_against_the_app_only(governed, clock):
    governor = governed(per_minute=1)
    for _ in range(3):
        with governor.slot(APP, None, app_limit=10):
            pass

    assert clock.slept == [] and governor.usage(APP, "acme").app_minute == 3


def test_a_429_blocks_the_tenant_for_its_retry_after_and_leaves_others_alone(governed, clock):
    governor = governed()
    start = clock.now
    governor.block(APP, "acme", 30, "minute")

    with governor.slot(APP, "rival"):
        assert clock.now == start
    with governor.slot(APP, "acme"):
        assert 30 <= clock.now - start < 30.1


def test_an_app_wide_429_blocks_every_tenant_of_the_app(governed, clock):
    governor = governed()
    start = clock.now
    governor.block(APP, "acme", 20, "AppMinute")

    with governor.slot(APP, "rival"):
        assert 20 <= clock.now - start < 20.1


def test_a_block_longer_than_is_worth_waiting_fails_at_once(governed, clock):
    governor = governed(max_wait=60)
    governor.block(APP, "acme", 3600, "day")

    with pytest.raises(RateLimited, match="3,600s"):
        governor.acquire(APP, "acme")


def test_a_later_shorter_block_does_not_shorten_a_longer_one(governed, clock):
    governor = governed(max_wait=600)
    start = clock.now
    governor.block(APP, "acme", 50)
    governor.block(APP, "acme", 5)

    with governor.slot(APP, "acme"):
        assert clock.now - start >= 50


def test_a_cut_short_state_file_starts_the_windows_again(tmp_path, clock):
    path = tmp_path / "governor.json"
    path.write_text('{"tenants": {"app1:acme": {"minute": [1, 2')
    governor = Governor(FileBackend(path), Limits(per_minute=1), clock=clock, sleep=clock.sleep)

    with governor.slot(APP, "acme"):
        pass

    assert clock.slept == []


# --- Against the fake Xero, enforcing Xero's limits -------------------------------------------------


@pytest.mark.django_db
def test_a_minute_limited_tenant_is_called_within_the_limit_the_server_enforces(tmp_path):
    # Given a Xero enforcing 5 calls a minute, on a clock that moves only when callers wait
    clock = Clock(start=time.time())
    with FakeXero(clock=clock, limits=XeroLimits(per_minute=5)) as xero:
        acme = xero.add_tenant("Acme Ltd")
        install(xero, [acme])
        connection = XeroConnection.objects.select_related("app", "grant").get()
        governor = Governor(FileBackend(tmp_path / "g.json"), Limits(per_minute=5), clock=clock, sleep=clock.sleep)
        session = XeroSession.for_connection(connection, governor=governor, tuning=Tuning(backoff=0.01))

        # When twelve calls are made
        for _ in range(12):
            session.call(session.accounting.get_contacts, acme.tenant_id, page=1, page_size=10)

        # Then Xero never had to refuse one, and the callers waited two minutes for it
        assert xero.limit_hits == [] and session.rate_limited == 0
        assert len(xero.calls_to("/Contacts")) == 12
        assert 120 <= sum(clock.slept) < 122


@pytest.mark.django_db
@pytest.mark.parametrize(("governed_at", "refused"), [(2, False), (10, True)])
def test_parallel_callers_keep_to_the_concurrent_limit_the_server_enforces(tmp_path, governed_at, refused):
    # Given a Xero allowing 2 calls at once per tenant, answering slowly
    with FakeXero(limits=XeroLimits(concurrent=2)) as xero:
        acme = xero.add_tenant("Acme Ltd")
        install(xero, [acme])
        xero.slow(0.15, tenant=acme.tenant_id)
        connection = XeroConnection.objects.select_related("app", "grant").get()
        governor = Governor(FileBackend(tmp_path / "g.json"), Limits(concurrent=governed_at))
        sessions = [
            XeroSession.for_connection(connection, governor=governor, tuning=Tuning(backoff=0.01)) for _ in range(6)
        ]

        # When six callers call at once
        threads = [
            threading.Thread(target=s.call, args=(s.accounting.get_contacts, acme.tenant_id), kwargs={"page": 1})
            for s in sessions
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)

        # Then, governed at Xero's limit, none is refused; governed above it, Xero refuses some
        assert len([c for c in xero.calls_to("/Contacts") if c.status == 200]) == 6
        assert bool(xero.limit_hits) is refused
        if not refused:
            assert xero.max_in_flight(acme.tenant_id) == 2
