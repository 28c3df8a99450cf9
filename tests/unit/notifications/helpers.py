"""What the notification tests share that is not a fixture (the fixtures are in conftest.py):
the task recorder and the worker it plays, a kind registered for one test, recipients and
webhook endpoints, the email backend that fails on demand, the webhook receiver on 127.0.0.1
and the notifications API's paths and answers."""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from django.core.mail.backends import locmem

from notifications import kinds, tasks
from notifications.models import Delivery, Notification, WebhookEndpoint
from notifications.services import delivery, webhooks
from notifications.services.recipients import Recipient
from notifications.services.sending import Message, notify_many

UTC = datetime.UTC
NOON = datetime.datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
KIND = "test_notice"
SECRET = "whsec_receiver_test_secret"
TIMEOUT = 0.3  # seconds NOTIFY_WEBHOOK_TIMEOUT is set to here; a slow answer takes twice that


# --- Delivery tasks, kinds, recipients and endpoints ------------------------------------------


@dataclass
class TaskCalls:
    """What the code handed to the delivery task: ``delayed`` as (channel, ids), ``later``
    (retries) as (channel, ids, countdown)."""

    delayed: list[tuple[str, list[int]]] = field(default_factory=list)
    later: list[tuple[str, list[int], float]] = field(default_factory=list)

    def ids(self, channel: str | None = None) -> list[int]:
        return sorted(pk for ch, ids in self.delayed if channel in (None, ch) for pk in ids)


def record_tasks(monkeypatch) -> TaskCalls:
    calls = TaskCalls()
    monkeypatch.setattr(tasks.deliver, "delay", lambda channel, ids: calls.delayed.append((channel, list(ids))))

    def apply_async(args, countdown=None, **options):
        channel, ids = args
        calls.later.append((channel, list(ids), countdown))

    monkeypatch.setattr(tasks.deliver, "apply_async", apply_async)
    return calls


def work(calls: TaskCalls, capture) -> list[dict]:
    """Play the worker: run every delivery task queued so far (and any those queue), as the
    worker would, each committing on its own."""
    results = []
    while calls.delayed:
        channel, ids = calls.delayed.pop(0)
        with capture(execute=True):
            results.append(delivery.deliver(channel, ids))
    return results


def register_kind(monkeypatch, code: str = KIND, **template) -> kinds.Kind:
    """A kind registered for one test only."""
    monkeypatch.setitem(kinds._KINDS, code, None)  # removed again when the test ends
    defaults = {
        "subject": "Hello {{ recipient_name }}: {{ topic }}",
        "body": "Topic: {{ topic }}",
        "html": "<p>Topic: {{ topic }}</p>",
    }
    return kinds.register(code, **{**defaults, **template})


def party(key: str = "billing.customer:1", *, email: str = "customer@example.com", **kwargs) -> Recipient:
    return Recipient(key, name=kwargs.pop("name", "A Customer"), email=email, **kwargs)


def statuses(notification: Notification) -> dict[str, str]:
    return dict(notification.deliveries.values_list("channel", "status"))


def the_delivery(notification: Notification, channel: str) -> Delivery:
    return notification.deliveries.get(channel=channel)


def make_endpoint(company, url: str = "https://hooks.example.com/in", *, secret: str = "whsec_test", **fields):
    endpoint = WebhookEndpoint(company=company, name=fields.pop("name", "Portal"), url=url, **fields)
    endpoint.secret = secret
    endpoint.save()
    return endpoint


# --- Email: a backend that fails on demand ---------------------------------------------------


class FlakyBackend(locmem.EmailBackend):
    """The locmem backend, except that a message to an address in ``failures`` raises."""

    failures: dict[str, Exception] = {}
    during_send = None  # called with each message before it is kept: what happens while it goes

    def send_messages(self, messages):
        for message in messages:
            if self.during_send:
                self.during_send(message)
            for address in message.to:
                if address in self.failures:
                    raise self.failures[address]
        return super().send_messages(messages)


# --- Webhooks: a client app's receiver and the pushes to it ---------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A client app's endpoint: records each request and whether its signature verifies,
    and answers from ``answers`` in turn (200 once they run out): a status code, or "slow"
    to answer only after the sender's time-out."""

    url: str = ""
    secret: str = SECRET
    answers: list = field(default_factory=list)
    received: list[Received] = field(default_factory=list)


def handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            verified = webhooks.verify(
                receiver.secret,
                self.headers.get(webhooks.TIMESTAMP_HEADER, ""),
                body,
                self.headers.get(webhooks.SIGNATURE_HEADER, ""),
            )
            receiver.received.append(Received(dict(self.headers), body, verified))
            answer = receiver.answers.pop(0) if receiver.answers else 200
            if answer == "slow":
                time.sleep(TIMEOUT * 2)
                answer = 200
            try:
                self.send_response(answer)
                self.send_header("X-Request-Id", f"req-{len(receiver.received)}")
                if 300 <= answer < 400:
                    self.send_header("Location", "/moved")  # where a GET would land, answering 200
                self.end_headers()
                self.wfile.write(b"ok" if answer < 400 else b"receiver broke")
            except OSError:
                pass  # the sender gave up waiting

        def log_message(self, *args):
            pass

    return Handler


def push(company, capture, n: int = 1, **message) -> list[int]:
    """``n`` webhook notifications for the company; returns the queued delivery ids."""
    with capture(execute=True):
        outcome = notify_many(
            Message(
                party(f"billing.customer:{i}", name=f"Customer {i}"),
                KIND,
                {"topic": f"invoice {i}"},
                company=company,
                channels=["webhook"],
                **message,
            )
            for i in range(n)
        )
    return list(Delivery.objects.filter(notification__in=outcome.created).order_by("pk").values_list("pk", flat=True))


def deliveries(ids) -> list[Delivery]:
    return list(Delivery.objects.filter(pk__in=ids).order_by("pk"))


# --- The notifications API ------------------------------------------------------------------

BASE = "/api/v1/notifications"
INBOX = f"{BASE}/inbox"
NOTIFICATIONS = f"{BASE}/notifications"
DELIVERIES = f"{BASE}/deliveries"
ENDPOINTS = f"{BASE}/webhook-endpoints"
TEMPLATES = f"{BASE}/templates"
PREFERENCES = f"{BASE}/preferences"
QUIET_HOURS = f"{BASE}/quiet-hours"
KINDS = f"{BASE}/kinds"


def invalid(response) -> dict:
    """The fields of a 400 in the shared error shape."""
    assert response.status_code == 400, response.content
    body = response.json()["error"]
    assert (body["status"], body["code"]) == (400, "invalid")
    return body["fields"]


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def template_body(company, **fields) -> dict:
    return {
        "company": company.pk if company else None,
        "kind": "invoice_issued",
        "subject": "Invoice {{ number }}",
        "body": "Dear {{ recipient_name }}, invoice {{ number }} is attached.",
        "html": "<p>Invoice {{ number }}</p>",
        "sample_data": {"number": "INV-1", "recipient_name": "Ada"},
        **fields,
    }
