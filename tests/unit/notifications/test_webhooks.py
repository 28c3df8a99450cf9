"""Webhook push on SQLite, against a receiver on 127.0.0.1 in a thread of the test: the
signature it verifies, the headers and body, retries on 500 and time-outs, an endpoint
switched off after failures in a row, the receiver's own check of a signature, and the
endpoint's secret at rest."""

from __future__ import annotations

import datetime
import time

import pytest
from cryptography.fernet import Fernet

from config import secrets
from config.secrets import SecretUnreadable
from notifications.models import Channel, Delivery, DeliveryStatus, Notification, WebhookEndpoint
from notifications.services import delivery, webhooks
from notifications.services.delivery import NotResendable
from notifications.services.sending import notify
from tests.factories import UserFactory
from tests.unit.notifications.helpers import KIND, NOON, SECRET, deliveries, make_endpoint, party, push, work

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("notice")]


@pytest.fixture
def endpoint(company, receiver):
    return make_endpoint(company, receiver.url, secret=SECRET)


# --- A delivery that goes through ------------------------------------------------------------


def test_a_webhook_is_signed_and_carries_its_headers_and_json_body(
    company, endpoint, receiver, calls, frozen, django_capture_on_commit_callbacks
):
    (pk,) = push(company, django_capture_on_commit_callbacks)

    (result,) = work(calls, django_capture_on_commit_callbacks)

    assert result == {"claimed": 1, "sent": 1, "failed": 0, "retrying": 0}
    (request,) = receiver.received
    assert request.verified
    notification = Notification.objects.get()
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == webhooks.USER_AGENT
    assert request.headers["Countinghouse-Delivery"] == f"dlv_{pk}"
    assert request.headers["Countinghouse-Event"] == KIND
    assert request.headers["Countinghouse-Timestamp"] == str(int(NOON.timestamp()))
    assert request.headers["Countinghouse-Signature"].startswith("v1=")
    assert request.json == {
        "id": f"dlv_{pk}",
        "notification": notification.pk,
        "kind": KIND,
        "company": company.pk,
        "priority": "normal",
        "created_at": "2026-11-02T12:00:00Z",
        "recipient": {"key": "billing.customer:0", "name": "Customer 0", "email": "customer@example.com"},
        "subject": "Hello Customer 0: invoice 0",
        "body": "Topic: invoice 0",
        "data": {"topic": "invoice 0"},
    }
    (sent,) = deliveries([pk])
    assert (sent.status, sent.provider_message_id, sent.sent_at) == (DeliveryStatus.SENT, "req-1", NOON)


def test_each_endpoint_of_the_company_gets_its_own_signed_copy(
    company, receiver, calls, django_capture_on_commit_callbacks
):
    make_endpoint(company, receiver.url, secret=SECRET)
    make_endpoint(company, receiver.url + "?second", secret=SECRET, name="Second")

    push(company, django_capture_on_commit_callbacks)
    work(calls, django_capture_on_commit_callbacks)

    assert [r.verified for r in receiver.received] == [True, True]
    assert len({r.headers["Countinghouse-Delivery"] for r in receiver.received}) == 2


# --- Retries ----------------------------------------------------------------------------------


def test_a_redirect_is_not_followed_and_counts_as_a_failed_attempt(
    company, endpoint, receiver, calls, frozen, django_capture_on_commit_callbacks
):
    receiver.answers = [302]
    (pk,) = push(company, django_capture_on_commit_callbacks)

    work(calls, django_capture_on_commit_callbacks)

    (moved,) = deliveries([pk])
    assert (moved.status, moved.attempts) == (DeliveryStatus.QUEUED, 1)
    assert moved.last_error.startswith("HTTP 302")
    assert len(receiver.received) == 1  # no GET to /moved


def test_a_500_is_retried_with_backoff_and_fails_after_the_last_attempt(
    settings, company, endpoint, receiver, calls, frozen, django_capture_on_commit_callbacks
):
    settings.NOTIFY_MAX_ATTEMPTS = 3
    receiver.answers = [500, 500, 500]
    (pk,) = push(company, django_capture_on_commit_callbacks)

    work(calls, django_capture_on_commit_callbacks)
    (first,) = deliveries([pk])
    assert (first.status, first.attempts, first.last_error) == (DeliveryStatus.QUEUED, 1, "HTTP 500: receiver broke")
    assert NOON + datetime.timedelta(seconds=15) <= first.next_attempt_at <= NOON + datetime.timedelta(seconds=30)
    while calls.later:
        channel, ids, countdown = calls.later.pop(0)
        frozen.shift(datetime.timedelta(seconds=countdown))
        with django_capture_on_commit_callbacks(execute=True):
            delivery.deliver(channel, ids)

    (last,) = deliveries([pk])
    assert (last.status, last.attempts, last.last_error) == (DeliveryStatus.FAILED, 3, "HTTP 500: receiver broke")
    assert len(receiver.received) == 3
    assert len({r.headers["Countinghouse-Delivery"] for r in receiver.received}) == 1  # the receiver's dedupe key
    endpoint.refresh_from_db()
    assert (endpoint.consecutive_failures, endpoint.active) == (1, True)


def test_a_time_out_is_retried_and_the_rest_of_that_batch_is_not_tried_but_requeued(
    company, endpoint, receiver, calls, frozen, django_capture_on_commit_callbacks
):
    receiver.answers = ["slow"]
    ids = push(company, django_capture_on_commit_callbacks, 3)

    (result,) = work(calls, django_capture_on_commit_callbacks)

    assert result == {"claimed": 3, "sent": 0, "failed": 0, "retrying": 3}
    assert len(receiver.received) == 1  # the two after the time-out were not posted
    timed_out, *untried = deliveries(ids)
    assert timed_out.last_error == "no answer: timed out"
    for waiting in untried:
        assert waiting.last_error == "not tried: the endpoint gave no answer to this batch"
    assert {d.status for d in deliveries(ids)} == {DeliveryStatus.QUEUED}
    assert sorted(pk for _channel, batch, _countdown in calls.later for pk in batch) == ids
    assert all(countdown > 0 for _channel, _batch, countdown in calls.later)

    frozen.shift(datetime.timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True):
        for channel, batch, _countdown in calls.later:
            delivery.deliver(channel, batch)
    assert {d.status for d in deliveries(ids)} == {DeliveryStatus.SENT}
    assert all(r.verified for r in receiver.received)


def test_a_time_out_at_one_endpoint_does_not_hold_up_another(
    company, receiver, calls, django_capture_on_commit_callbacks
):
    slow = make_endpoint(company, receiver.url + "?slow", secret=SECRET, name="Slow")
    fine = make_endpoint(company, receiver.url + "?fine", secret=SECRET, name="Fine")
    receiver.answers = ["slow"]

    push(company, django_capture_on_commit_callbacks, 2)
    # The slow endpoint's task runs first: its deliveries were queued first.
    work(calls, django_capture_on_commit_callbacks)

    assert sorted(Delivery.objects.filter(endpoint=slow).values_list("last_error", flat=True)) == [
        "no answer: timed out",
        "not tried: the endpoint gave no answer to this batch",
    ]
    assert set(Delivery.objects.filter(endpoint=slow).values_list("status", flat=True)) == {DeliveryStatus.QUEUED}
    assert set(Delivery.objects.filter(endpoint=fine).values_list("status", flat=True)) == {DeliveryStatus.SENT}
    assert len(receiver.received) == 3


# --- Disabling an endpoint that keeps failing -------------------------------------------------


def test_failures_in_a_row_disable_the_endpoint_set_aside_its_queue_and_tell_staff(
    settings, company, endpoint, receiver, calls, staff, django_capture_on_commit_callbacks
):
    settings.NOTIFY_MAX_ATTEMPTS, settings.NOTIFY_WEBHOOK_DISABLE_AFTER = 1, 3
    second = UserFactory(username="staff2", is_staff=True)
    receiver.answers = [500] * 3
    capture = django_capture_on_commit_callbacks
    failing = [push(company, capture, dedupe_key=f"k{n}")[0] for n in range(3)]
    waiting = push(company, capture, dedupe_key="later")  # queued: its task has not run yet
    tasks_for_waiting = [c for c in calls.delayed if c[1] == waiting]
    calls.delayed[:] = [c for c in calls.delayed if c[1] != waiting]

    for n, pk in enumerate(failing):
        with capture(execute=True):
            delivery.deliver(Channel.WEBHOOK, [pk])
        endpoint.refresh_from_db()
        assert (endpoint.consecutive_failures, endpoint.active) == (n + 1, n < 2)

    assert endpoint.disabled_at is not None
    assert endpoint.disabled_reason == "3 deliveries in a row failed; last: HTTP 500: receiver broke"
    assert {d.status for d in deliveries(failing)} == {DeliveryStatus.FAILED}
    (set_aside,) = deliveries(waiting)
    assert (set_aside.status, set_aside.last_error) == (DeliveryStatus.SUPPRESSED, "endpoint disabled")
    assert delivery.deliver(*tasks_for_waiting[0]) == {"claimed": 0}
    alerts = Notification.objects.filter(kind="webhook_disabled").order_by("user_id")
    assert [n.user for n in alerts] == [staff, second]
    assert alerts[0].company is None
    assert alerts[0].data["url"] == receiver.url
    assert alerts[0].data["company"] == "Acme Books Ltd"
    work(calls, capture)  # the staff notifications go out
    assert Notification.objects.inbox(staff).get().subject == "Webhook endpoint Portal disabled"
    assert len(receiver.received) == 3


def test_a_disabled_endpoint_gets_no_new_deliveries_and_its_old_ones_are_not_resent(
    company, endpoint, receiver, calls, django_capture_on_commit_callbacks
):
    (pk,) = push(company, django_capture_on_commit_callbacks)
    webhooks.disable(endpoint, "switched off by hand")
    Delivery.objects.filter(pk=pk).update(status=DeliveryStatus.FAILED)

    with pytest.raises(NotResendable):
        delivery.resend(Delivery.objects.get(pk=pk))
    assert push(company, django_capture_on_commit_callbacks, dedupe_key="after") == []


def test_a_delivery_claimed_before_its_endpoint_was_disabled_is_suppressed_not_posted(
    company, endpoint, receiver, calls, django_capture_on_commit_callbacks
):
    (pk,) = push(company, django_capture_on_commit_callbacks)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(active=False)

    work(calls, django_capture_on_commit_callbacks)

    (set_aside,) = deliveries([pk])
    assert (set_aside.status, set_aside.last_error) == (DeliveryStatus.SUPPRESSED, "endpoint disabled")
    assert receiver.received == []


def test_a_success_resets_the_failures_in_a_row(
    settings, company, endpoint, receiver, calls, django_capture_on_commit_callbacks
):
    settings.NOTIFY_MAX_ATTEMPTS = 1
    receiver.answers = [500, 500]
    for n in range(2):
        push(company, django_capture_on_commit_callbacks, dedupe_key=f"k{n}")
        work(calls, django_capture_on_commit_callbacks)
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 2

    push(company, django_capture_on_commit_callbacks, dedupe_key="ok")
    work(calls, django_capture_on_commit_callbacks)

    endpoint.refresh_from_db()
    assert (endpoint.consecutive_failures, endpoint.active) == (0, True)


def test_enabling_an_endpoint_clears_its_failures_and_its_deliveries_can_be_resent(
    company, endpoint, receiver, calls, django_capture_on_commit_callbacks
):
    (pk,) = push(company, django_capture_on_commit_callbacks)
    calls.delayed.clear()
    webhooks.disable(endpoint, "down")
    webhooks.enable(endpoint)

    with django_capture_on_commit_callbacks(execute=True):
        delivery.resend(Delivery.objects.get(pk=pk))
    work(calls, django_capture_on_commit_callbacks)

    endpoint.refresh_from_db()
    assert (endpoint.active, endpoint.disabled_at, endpoint.disabled_reason, endpoint.consecutive_failures) == (
        True,
        None,
        "",
        0,
    )
    assert deliveries([pk])[0].status == DeliveryStatus.SENT
    assert [r.verified for r in receiver.received] == [True]


def test_a_secret_no_key_reads_fails_the_delivery_without_posting(
    fernet, company, endpoint, receiver, calls, django_capture_on_commit_callbacks
):
    (pk,) = push(company, django_capture_on_commit_callbacks)
    fernet.SECRET_KEY = "a different secret key"
    secrets._fernet.cache_clear()

    work(calls, django_capture_on_commit_callbacks)

    (failed,) = deliveries([pk])
    assert failed.status == DeliveryStatus.FAILED
    assert "cannot be decrypted" in failed.last_error
    assert receiver.received == []


# --- The receiver's check ---------------------------------------------------------------------


def test_verify_accepts_the_signature_and_refuses_a_tampered_body_a_wrong_secret_or_an_old_timestamp():
    body = b'{"id":"dlv_1","kind":"invoice_issued"}'
    now = int(time.time())
    signature = webhooks.sign(SECRET, now, body)

    assert webhooks.verify(SECRET, str(now), body, signature)
    assert not webhooks.verify(SECRET, str(now), body.replace(b"dlv_1", b"dlv_2"), signature)
    assert not webhooks.verify("whsec_someone_else", str(now), body, signature)
    assert not webhooks.verify(SECRET, str(now + 1), body, signature)  # the timestamp is signed too
    assert not webhooks.verify(SECRET, "yesterday", body, signature)
    old = now - 301
    assert not webhooks.verify(SECRET, str(old), body, webhooks.sign(SECRET, old, body))
    assert webhooks.verify(SECRET, str(old), body, webhooks.sign(SECRET, old, body), tolerance=600)


def test_a_new_secret_is_long_and_random():
    first, second = webhooks.new_secret(), webhooks.new_secret()

    assert first.startswith("whsec_") and len(first) > 40
    assert first != second


def test_a_notification_without_webhook_channel_posts_nothing(
    company, endpoint, receiver, calls, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        notify(party(), KIND, company=company, channels=["email"])
    work(calls, django_capture_on_commit_callbacks)

    assert receiver.received == []


# --- Secrets at rest --------------------------------------------------------------------------


@pytest.fixture
def fernet(settings):
    """Keys read afresh: ``_fernet`` is cached for the process."""
    secrets._fernet.cache_clear()
    yield settings
    secrets._fernet.cache_clear()


def test_a_webhook_secret_round_trips_and_is_not_stored_in_clear(company, fernet):
    endpoint = make_endpoint(company, secret="whsec_very_secret_value")

    stored = WebhookEndpoint.objects.get(pk=endpoint.pk)

    assert stored.secret == "whsec_very_secret_value"
    assert "whsec_very_secret_value" not in stored.secret_encrypted
    assert "very_secret" not in stored.secret_encrypted


def test_another_secret_key_cannot_read_a_stored_secret(company, fernet):
    endpoint = make_endpoint(company, secret="whsec_abc")
    fernet.SECRET_KEY = "another-secret-key-entirely"
    secrets._fernet.cache_clear()

    stored = WebhookEndpoint.objects.get(pk=endpoint.pk)
    with pytest.raises(SecretUnreadable):
        stored.secret  # noqa: B018 (reading it is the test)


def test_secrets_keys_other_than_the_one_that_encrypted_cannot_read_it(company, fernet):
    fernet.SECRETS_KEYS = [Fernet.generate_key().decode()]
    endpoint = make_endpoint(company, secret="whsec_abc")
    fernet.SECRETS_KEYS = [Fernet.generate_key().decode()]
    secrets._fernet.cache_clear()

    stored = WebhookEndpoint.objects.get(pk=endpoint.pk)
    with pytest.raises(SecretUnreadable):
        stored.secret  # noqa: B018 (reading it is the test)


def test_a_new_key_in_front_still_reads_secrets_of_the_old_one_and_encrypts_with_the_new(company, fernet):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    fernet.SECRETS_KEYS = [old]
    endpoint = make_endpoint(company, secret="whsec_abc")
    fernet.SECRETS_KEYS = [new, old]
    secrets._fernet.cache_clear()

    assert WebhookEndpoint.objects.get(pk=endpoint.pk).secret == "whsec_abc"
    fresh = secrets.encrypt("whsec_def")
    assert Fernet(new.encode()).decrypt(fresh.encode()) == b"whsec_def"
