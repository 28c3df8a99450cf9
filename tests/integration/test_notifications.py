"""Notifications across real processes: workers racing on the same dedupe keys, email
through a real SMTP server, signed webhooks to a real HTTP receiver, quiet hours released
by the dispatch job, and what each company's people see of what was delivered."""

from __future__ import annotations

import contextlib
import datetime
import email
import email.policy
import json
import socket
import subprocess
import threading
import time
import zoneinfo
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from django.db import connection
from django.utils import timezone

from config import jobs as platform_jobs
from notifications.models import Delivery, DeliveryStatus, Notification, QuietHours, WebhookEndpoint
from notifications.services import webhooks
from notifications.services.recipients import Recipient
from notifications.services.sending import Message, notify, notify_many
from notifications.services.staff import notify_staff
from scheduling.choices import RunStatus
from scheduling.models import JobDefinition, JobRun
from scheduling.services import runs
from tests.factories import UserFactory
from tests.helpers import wait_for
from tests.processes import ROOT, manage

pytestmark = pytest.mark.django_db(transaction=True)

# Retries within a second or two instead of half a minute.
QUICK = {"NOTIFY_RETRY_BACKOFF": "0.5", "NOTIFY_RETRY_BACKOFF_MAX": "2"}
ALERT = {
    "job": "GL_DAILY_CLOSE",
    "title": "Daily GL close",
    "cause": "Consecutive failures",
    "severity": "critical",
    "message": "GL_DAILY_CLOSE failed 2 times in a row: <unbalanced>",
}
ALERT_SUBJECT = "[Countinghouse critical] GL_DAILY_CLOSE: Consecutive failures"


def party(i: int, user=None) -> Recipient:
    return Recipient(
        f"test.party:{i}", name=f"Party {i}", email=f"party{i}@example.com", user_id=getattr(user, "pk", None)
    )


def delivery_of(notification: Notification, channel: str) -> Delivery:
    return Delivery.objects.get(notification=notification, channel=channel)


def settled(delivery: Delivery, status: str = DeliveryStatus.SENT, timeout: float = 20) -> Delivery:
    def done():
        delivery.refresh_from_db()
        return delivery.status == status

    wait_for(done, timeout=timeout, interval=0.1, what=f"delivery {delivery.pk} to be {status}")
    return delivery


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- Two workers, one set of dedupe keys ----------------------------------------------------


def test_two_workers_notifying_the_same_2000_keys_at_once_create_and_deliver_each_once(start_worker, company):
    user = UserFactory(username="collector", email="collector@example.com")
    workers = [start_worker(), start_worker()]
    definition = JobDefinition.objects.get(code="TEST_NOTIFY_MANY")
    at = time.time() + 3  # both runs wait for this moment, then insert the same keys
    requested = [
        runs.request_run(
            definition,
            business_date=datetime.date(2026, 11, day),
            params={"company": company.pk, "user": user.pk, "count": 2000, "at": at},
        )[0]
        for day in (1, 2)
    ]

    def finished():
        return all(run.status == RunStatus.SUCCEEDED for run in JobRun.objects.filter(pk__in=[r.pk for r in requested]))

    wait_for(finished, timeout=30, what="both runs to succeed")
    first, second = (JobRun.objects.get(pk=run.pk) for run in requested)
    assert {first.worker, second.worker} == {worker.nodename for worker in workers}
    assert first.result["began"] < second.result["ended"] and second.result["began"] < first.result["ended"]
    assert first.result["created"] + second.result["created"] == 2000
    assert first.result["skipped"] + second.result["skipped"] == 2000

    notifications = Notification.objects.filter(company=company, dedupe_key__startswith="same:")
    assert notifications.count() == 2000
    deliveries = Delivery.objects.filter(notification__in=notifications)
    assert Counter(deliveries.values_list("channel", flat=True)) == {"in_app": 2000, "email": 2000}
    wait_for(
        lambda: not deliveries.exclude(status=DeliveryStatus.SENT).exists(), timeout=30, what="every delivery sent"
    )
    assert set(deliveries.values_list("attempts", flat=True)) == {1}
    assert Notification.objects.inbox(user).count() == 2000
    # each email printed once, by one worker or the other
    printed = Counter()
    for worker in workers:
        for line in worker.output().splitlines():
            if line.startswith("X-Countinghouse-Notification: "):
                printed[int(line.partition(": ")[2])] += 1
    assert printed == Counter(set(notifications.values_list("pk", flat=True)))


class Background(threading.Thread):
    def __init__(self, work) -> None:
        super().__init__(daemon=True)
        self.work, self.result, self.error = work, None, None

    def run(self) -> None:
        try:
            self.result = self.work()
        except Exception as exc:  # reported to the test thread
            self.error = exc
        finally:
            connection.close()


def test_notify_many_from_two_connections_with_the_same_keys_in_opposite_orders_does_not_deadlock(company):
    user = UserFactory(username="collector")
    keys = range(5000)
    for round_ in range(3):
        barrier = threading.Barrier(2)

        def call(order, round_=round_, barrier=barrier):
            messages = [
                Message(
                    party(i, user), "job_alert", company=company, dedupe_key=f"race:{round_}:{i}", channels=["in_app"]
                )
                for i in order
            ]
            barrier.wait()
            return notify_many(messages)

        callers = [Background(lambda: call(keys)), Background(lambda: call(reversed(keys)))]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(60)
        assert [caller.error for caller in callers] == [None, None], f"round {round_}"
        assert sum(len(caller.result.created) for caller in callers) == len(keys)
    assert Notification.objects.filter(dedupe_key__startswith="race:").count() == 3 * len(keys)


# --- Email through a real SMTP server ---------------------------------------------------------


class Mailbox:
    """An aiosmtpd handler keeping what it receives."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if address.endswith("@refused.example"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted for delivery"


def smtp_server(mailbox: Mailbox, port: int) -> Controller:
    server = Controller(mailbox, hostname="127.0.0.1", port=port)
    server.start()
    return server


def test_email_goes_through_smtp_with_both_parts_and_is_retried_while_the_server_is_down(start_worker, company):
    mailbox, port = Mailbox(), free_port()
    server = smtp_server(mailbox, port)
    try:
        start_worker(env={"EMAIL_URL": f"smtp://127.0.0.1:{port}", "NOTIFY_MAX_ATTEMPTS": "10", **QUICK})
        ada = UserFactory(username="ada", first_name="Ada", last_name="Lovelace", email="ada@example.com")

        first = notify(ada, "job_alert", ALERT, company=company, dedupe_key="smtp:1")
        sent = settled(delivery_of(first, "email"))
        (message,) = mailbox.messages
        assert message["Subject"] == ALERT_SUBJECT
        assert message["To"] == "ada@example.com"
        assert message["Message-ID"] == sent.provider_message_id
        assert message["X-Countinghouse-Notification"] == str(first.pk)
        assert message.get_content_type() == "multipart/alternative"
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert "GL_DAILY_CLOSE failed 2 times in a row: <unbalanced>" in text
        assert "<p>GL_DAILY_CLOSE failed 2 times in a row: &lt;unbalanced&gt;</p>" in html
        assert (sent.attempts, sent.last_error) == (1, "")

        nobody = Recipient("test.party:nobody", email="nobody@refused.example")
        refused = notify(nobody, "job_alert", ALERT, company=company, dedupe_key="smtp:refused", channels=["email"])
        refused = settled(delivery_of(refused, "email"), DeliveryStatus.FAILED)  # not retried: it cannot pass
        assert refused.attempts == 1 and refused.last_error.startswith("recipient refused")
        assert len(mailbox.messages) == 1

        server.stop()
        second = notify(ada, "job_alert", ALERT, company=company, dedupe_key="smtp:2")
        retrying = delivery_of(second, "email")

        def back_in_queue():
            retrying.refresh_from_db()
            return retrying.status == DeliveryStatus.QUEUED and retrying.attempts >= 1 and retrying.last_error

        wait_for(back_in_queue, timeout=15, interval=0.05, what="the delivery to go back to the queue")
        assert "Connection refused" in retrying.last_error or "ConnectionRefused" in retrying.last_error
        assert len(mailbox.messages) == 1

        server = smtp_server(mailbox, port)
        delivered = settled(retrying)
        assert delivered.attempts >= 2
        assert [m["Message-ID"] for m in mailbox.messages] == [sent.provider_message_id, delivered.provider_message_id]
        assert mailbox.messages[1]["X-Countinghouse-Notification"] == str(second.pk)
    finally:
        server.stop()


# --- Webhooks to a real receiver ---------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool


@contextlib.contextmanager
def receiver(secret: str, answer):
    """An HTTP server on 127.0.0.1 that checks each request's signature, keeps it, and
    answers ``answer(n)`` = (status, seconds to wait first) to the n-th."""
    received: list[Received] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            verified = webhooks.verify(
                secret, self.headers[webhooks.TIMESTAMP_HEADER], body, self.headers[webhooks.SIGNATURE_HEADER]
            )
            received.append(Received(dict(self.headers), body, verified))
            status, wait = answer(len(received))
            time.sleep(wait)
            with contextlib.suppress(OSError):  # the sender may have given up waiting
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks", received
    finally:
        server.shutdown()
        server.server_close()


def endpoint_for(company, url: str, secret: str) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(company=company, name="Portal", url=url)
    endpoint.secret = secret
    endpoint.save()
    return endpoint


def push(company, key: str) -> Notification:
    return notify(party(1), "job_alert", ALERT, company=company, dedupe_key=key, channels=["webhook"])


def test_a_webhook_answering_500_then_200_is_delivered_on_the_second_attempt_signed_both_times(start_worker, company):
    secret = webhooks.new_secret()
    with receiver(secret, lambda n: (500 if n == 1 else 200, 0)) as (url, received):
        endpoint = endpoint_for(company, url, secret)
        start_worker(env={"NOTIFY_MAX_ATTEMPTS": "3", **QUICK})

        notification = push(company, "hook:1")
        delivery = settled(delivery_of(notification, "webhook"))

    assert delivery.attempts == 2
    assert len(received) == 2
    assert all(request.verified for request in received)
    assert {request.headers["Countinghouse-Delivery"] for request in received} == {f"dlv_{delivery.pk}"}
    assert {request.headers["Countinghouse-Event"] for request in received} == {"job_alert"}
    first, second = (json.loads(request.body) for request in received)
    assert first == second  # a retry sends the same payload
    assert (first["id"], first["notification"], first["subject"]) == (
        f"dlv_{delivery.pk}",
        notification.pk,
        ALERT_SUBJECT,
    )
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).consecutive_failures == 0


def test_a_webhook_slower_than_the_timeout_is_retried(start_worker, company):
    secret = webhooks.new_secret()
    with receiver(secret, lambda n: (200, 2.0 if n == 1 else 0)) as (url, received):
        endpoint = endpoint_for(company, url, secret)
        # a slower backoff than QUICK, so the delivery is seen back in the queue between attempts
        start_worker(env={"NOTIFY_WEBHOOK_TIMEOUT": "0.5", "NOTIFY_RETRY_BACKOFF": "2", "NOTIFY_MAX_ATTEMPTS": "3"})

        delivery = delivery_of(push(company, "hook:slow"), "webhook")

        def timed_out():
            delivery.refresh_from_db()
            return delivery.status == DeliveryStatus.QUEUED and "timed out" in delivery.last_error

        wait_for(timed_out, timeout=10, interval=0.1, what="the first attempt to time out")
        assert delivery.attempts == 1
        delivery = settled(delivery)

    assert delivery.attempts == 2
    assert len(received) == 2 and all(request.verified for request in received)
    assert {request.headers["Countinghouse-Delivery"] for request in received} == {f"dlv_{delivery.pk}"}
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).consecutive_failures == 0


def test_a_webhook_endpoint_failing_every_attempt_is_disabled_and_staff_are_told(start_worker, company):
    ops = UserFactory(username="ops", email="ops@example.com", is_staff=True)
    secret = webhooks.new_secret()
    with receiver(secret, lambda n: (500, 0)) as (url, received):
        endpoint = endpoint_for(company, url, secret)
        start_worker(env={"NOTIFY_MAX_ATTEMPTS": "2", "NOTIFY_WEBHOOK_DISABLE_AFTER": "2", **QUICK})

        first = settled(delivery_of(push(company, "hook:a"), "webhook"), DeliveryStatus.FAILED)
        assert WebhookEndpoint.objects.get(pk=endpoint.pk).active
        second = settled(delivery_of(push(company, "hook:b"), "webhook"), DeliveryStatus.FAILED)

    endpoint.refresh_from_db()
    assert not endpoint.active and endpoint.disabled_at
    assert endpoint.consecutive_failures == 2
    assert endpoint.disabled_reason.startswith("2 deliveries in a row failed; last: HTTP 500")
    assert (first.attempts, second.attempts) == (2, 2)
    assert "HTTP 500" in first.last_error and "HTTP 500" in second.last_error
    assert len(received) == 4 and all(request.verified for request in received)

    told = Notification.objects.get(kind="webhook_disabled", user=ops)
    assert told.company is None and told.data["endpoint"] == "Portal"
    settled(delivery_of(told, "in_app"))
    assert list(Notification.objects.inbox(ops)) == [told]
    assert "Portal" in settled(delivery_of(told, "email")).notification.subject
    # what comes after goes to no disabled endpoint
    assert not push(company, "hook:c").deliveries.exists()


# --- Quiet hours, released by the dispatch job -------------------------------------------------


def midday_zone(now: datetime.datetime) -> zoneinfo.ZoneInfo:
    """A fixed-offset zone (Etc/GMT-14 to Etc/GMT+12) where ``now`` falls between 10:00 and 14:00."""
    for hours in range(-12, 15):
        if 10 <= (now.hour + hours) % 24 <= 13:
            # Etc/ zones name the offset with the POSIX sign: Etc/GMT-3 is three hours east of UTC.
            return zoneinfo.ZoneInfo(f"Etc/GMT{-hours:+d}" if hours else "Etc/GMT")
    raise AssertionError("some offset from -12 to +14 hours always lands on midday")


def test_an_email_held_by_quiet_hours_goes_out_when_the_dispatch_job_runs_after_the_window(
    start_worker, platform_env, company
):
    worker = start_worker()
    ada = UserFactory(username="ada", email="ada@example.com")
    # A window that ends a few seconds from now, in a zone where it is midday whatever the hour
    # here: the test takes the same path at 23:59 as at noon, and no worker start eats the window.
    now = timezone.now()
    zone = midday_zone(now)
    local = now.astimezone(zone)
    window_end = now + datetime.timedelta(seconds=3)
    QuietHours.objects.create(
        company=company,
        start=(local - datetime.timedelta(hours=1)).time(),
        end=window_end.astimezone(zone).time(),
        timezone=zone,
    )

    notification = notify(ada, "job_alert", ALERT, company=company, dedupe_key="quiet:1")
    held = delivery_of(notification, "email")
    assert held.status == DeliveryStatus.WAITING
    assert abs(held.next_attempt_at - window_end) < datetime.timedelta(seconds=2)
    settled(delivery_of(notification, "in_app"))  # the inbox is never held
    time.sleep(max(0.0, (held.next_attempt_at - timezone.now()).total_seconds()) + 0.5)
    held.refresh_from_db()
    assert held.status == DeliveryStatus.WAITING  # nothing but the dispatch job releases it

    code = platform_jobs.notify_dispatch.code
    finished = subprocess.run(
        manage("run_job", code, "--wait", "--timeout", "30"),
        cwd=ROOT,
        env=platform_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 0, finished.stderr
    sent = settled(held)
    assert sent.attempts == 1
    assert JobRun.objects.get(job__code=code).result["released"] == 1
    worker.wait_for_output(f"Subject: {ALERT_SUBJECT}", timeout=5)


# --- What each company's people see ------------------------------------------------------------


def test_a_member_of_one_company_never_sees_another_company_s_notifications(
    start_worker, api, company, other_company, owner, outsider, staff
):
    start_worker()
    ours = notify(owner, "job_alert", ALERT, company=company, dedupe_key="scope:ours")
    theirs = notify(outsider, "job_alert", ALERT, company=other_company, dedupe_key="scope:theirs")
    theirs_to_a_party = notify(
        party(9, outsider), "job_alert", ALERT, company=other_company, dedupe_key="scope:party", channels=["in_app"]
    )
    (platform_id,) = notify_staff("job_alert", ALERT, dedupe_key="scope:staff").created
    platform = Notification.objects.get(pk=platform_id)
    for notification in (ours, theirs, theirs_to_a_party, platform):
        settled(Delivery.objects.get(notification=notification, channel="in_app"))

    assert list(Notification.objects.inbox(owner)) == [ours]
    assert set(Notification.objects.for_user(owner)) == {ours}
    assert set(Delivery.objects.for_user(owner).values_list("notification", flat=True)) == {ours.pk}
    assert set(Notification.objects.inbox(outsider)) == {theirs, theirs_to_a_party}
    assert set(Notification.objects.for_user(outsider)) == {theirs, theirs_to_a_party}

    client = api.as_user(owner)
    assert ids(client, "/api/v1/notifications/inbox") == [ours.pk]
    assert ids(client, "/api/v1/notifications/notifications") == [ours.pk]
    assert {d["notification"] for d in results(client, "/api/v1/notifications/deliveries")} == {ours.pk}
    for other in (theirs, theirs_to_a_party, platform):
        assert client.get(f"/api/v1/notifications/inbox/{other.pk}").status_code == 404
        assert client.get(f"/api/v1/notifications/notifications/{other.pk}").status_code == 404
        for path in ("read", "unread"):
            assert client.post(f"/api/v1/notifications/inbox/{other.pk}/{path}").status_code == 404
    assert Notification.objects.filter(read_at__isnull=False).count() == 0
    assert sorted(ids(api.as_user(outsider), "/api/v1/notifications/inbox")) == sorted(
        [theirs.pk, theirs_to_a_party.pk]
    )


def results(client, path: str) -> list[dict]:
    response = client.get(path)
    assert response.status_code == 200, response.content
    return response.json()["results"]


def ids(client, path: str) -> list[int]:
    return [row["id"] for row in results(client, path)]


# --- A database error after the claim ------------------------------------------------------------


@pytest.fixture
def first_sent_mark_fails():
    """The first UPDATE that marks a delivery sent fails as a deadlock would (SQLSTATE 40P01)."""
    table = Delivery._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            CREATE SEQUENCE test_sent_marks;
            CREATE FUNCTION test_fail_first_sent_mark() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.status = 'sent' AND OLD.status <> 'sent' AND nextval('test_sent_marks') = 1 THEN
                    RAISE EXCEPTION 'deadlock detected (a test)' USING ERRCODE = '40P01';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER test_fail_first_sent_mark BEFORE UPDATE ON {table}
                FOR EACH ROW EXECUTE FUNCTION test_fail_first_sent_mark();
            """
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute(
            f"DROP TRIGGER test_fail_first_sent_mark ON {table}; DROP FUNCTION test_fail_first_sent_mark(); "
            "DROP SEQUENCE test_sent_marks;"
        )


def test_deliveries_whose_task_hit_a_database_error_go_back_to_the_queue_and_are_delivered(
    start_worker, first_sent_mark_fails, owner
):
    worker = start_worker(env=QUICK)
    notification = notify(owner, "job_alert", ALERT, company=None, dedupe_key="retry:1", channels=["in_app"])
    in_app = delivery_of(notification, "in_app")
    worker.wait_for_output("deadlock detected (a test)", timeout=10)  # the task failed after its claim

    in_app = settled(in_app, timeout=8)  # not left 'sending' for the sweep's 15 minutes
    assert in_app.attempts == 2
    assert Notification.objects.inbox(owner).get() == notification
