"""Fixtures more than one notifications test module uses. ``notice`` and ``email_backend`` are
not autouse here: the modules that had them autouse ask for them in ``pytestmark``, so the API
and admin tests run without them, as they did. ``client`` is the owner's API client: the
admin tests, which want Django's test client under that name, define their own."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer

import pytest
import time_machine

from notifications import kinds
from tests.factories import MembershipFactory
from tests.unit.notifications.helpers import (
    NOON,
    TIMEOUT,
    FlakyBackend,
    Receiver,
    TaskCalls,
    handler_for,
    record_tasks,
    register_kind,
)


@pytest.fixture
def calls(monkeypatch) -> TaskCalls:
    return record_tasks(monkeypatch)


@pytest.fixture
def notice(monkeypatch) -> kinds.Kind:
    return register_kind(monkeypatch)


@pytest.fixture
def user(company):
    return MembershipFactory(company=company, user__username="reader", user__first_name="Rita").user


@pytest.fixture
def frozen():
    with time_machine.travel(NOON, tick=False) as traveller:
        yield traveller


@pytest.fixture
def email_backend(settings, monkeypatch) -> dict[str, Exception]:
    """Email goes to locmem, except to the addresses given an exception to raise."""
    settings.EMAIL_BACKEND = f"{FlakyBackend.__module__}.FlakyBackend"
    monkeypatch.setattr(FlakyBackend, "failures", {})
    monkeypatch.setattr(FlakyBackend, "during_send", None)
    return FlakyBackend.failures


@pytest.fixture
def client(api, owner):
    """The owner's API client."""
    return api.as_user(owner)


@pytest.fixture
def receiver(settings, monkeypatch):
    """A client app's endpoint on 127.0.0.1, served from a thread for the test."""
    settings.NOTIFY_WEBHOOK_TIMEOUT = TIMEOUT
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    state = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    server.handle_error = lambda request, address: None
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
