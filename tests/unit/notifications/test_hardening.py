"""Notifications on SQLite, hardened against what a company member, a client app's endpoint
or a mail server can send back: the curated template library and its bounds, webhooks
refused at private addresses, bad API input answered 400, notify's checks and insert
order, garbled answers, batches whose rest was not tried, a crash mid-task, recipient
refusals, the Message-ID domain and the receiver's signature check."""

from __future__ import annotations

import datetime
import re
import smtplib
import socket
import threading
import time

import pytest
from django.core import mail

from notifications.models import Channel, Delivery, DeliveryStatus, Notification
from notifications.services import delivery, rendering, webhooks
from notifications.services.rendering import RenderError, Source
from notifications.services.sending import Message, NotifyError, notify, notify_many
from tests.factories import NotificationFactory
from tests.unit.notifications.helpers import (
    ENDPOINTS,
    KIND,
    NOTIFICATIONS,
    QUIET_HOURS,
    SECRET,
    TEMPLATES,
    UTC,
    TaskCalls,
    deliveries,
    ids,
    invalid,
    make_endpoint,
    party,
    push,
    template_body,
    work,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("notice")]

THREE_LOOPS = "{% for a in x %}{% for b in a %}{% for c in b %}{{ c }}{% endfor %}{% endfor %}{% endfor %}"
TWO_LOOPS = "{% for a in x %}{% for b in a %}{{ b }}{% endfor %}{% endfor %}"
NOT_TRIED_WEBHOOK = "not tried: the endpoint gave no answer to this batch"
NOT_TRIED_EMAIL = "not tried: the mail server did not answer this batch"


@pytest.fixture
def private_refused(settings):
    settings.NOTIFY_WEBHOOK_ALLOW_PRIVATE = False
    return settings


def emails(company, capture, *addresses: str) -> list[int]:
    """One email-only notification per address, in one call; returns the delivery ids."""
    with capture(execute=True):
        outcome = notify_many(
            Message(party(f"billing.customer:{i}", email=address), KIND, company=company, channels=["email"])
            for i, address in enumerate(addresses)
        )
    rows = Delivery.objects.filter(notification__in=outcome.created).order_by("notification__recipient_email")
    return list(rows.values_list("pk", flat=True))


def run_later(calls: TaskCalls, capture, frozen) -> None:
    """Play the worker for the retries queued so far, once each is due."""
    while calls.later:
        channel, batch, countdown = calls.later.pop(0)
        frozen.shift(datetime.timedelta(seconds=countdown))
        with capture(execute=True):
            delivery.deliver(channel, batch)


# --- Templates: the curated library and its bounds ----------------------------------------


def test_a_padding_width_past_the_bound_previews_as_a_short_400(client):
    response = client.post(
        f"{TEMPLATES}/preview", {"kind": "invoice_issued", "body": '{{ kind|ljust:"99999" }}'}, format="json"
    )

    fields = invalid(response)
    assert "a width is at most 200" in fields["body"][0]
    assert len(response.content) < 2000  # the error, not ninety-nine thousand spaces


@pytest.mark.parametrize(
    ("part", "source"),
    [
        ("body", "{% load static %}{% static 'x.css' %}"),
        ("html", '{% include "x" %}'),
        ("html", "{{ x|safe }}"),
        ("subject", "{% lorem 5 %}"),
        ("body", THREE_LOOPS),
    ],
    ids=["load", "include", "safe", "lorem", "three-loops"],
)
def test_a_template_reaching_outside_the_library_is_refused_on_its_field(client, company, part, source):
    response = client.post(TEMPLATES, template_body(company, **{part: source}), format="json")

    fields = invalid(response)
    assert list(fields) == [part]
    assert fields[part][0].startswith("template error")


def test_two_nested_loops_are_fine(client, company):
    created = client.post(TEMPLATES, template_body(company, body=TWO_LOOPS), format="json")

    assert created.status_code == 201, created.content
    rendered = rendering.render(Source("s", TWO_LOOPS), {"x": [["a", "b"], ["c"]]})
    assert rendered.body == "abc"


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ('{{ n|stringformat:"0300d" }}', "a width is at most 200, not 300"),
        ('{{ n|floatformat:"50" }}', "at most 20 decimal places, not 50"),
    ],
)
def test_a_number_format_past_its_bound_fails_rendering_with_a_template_error(source, error):
    with pytest.raises(RenderError, match=f"^template error while rendering: ValueError: {error}$"):
        rendering.render(Source("s", source), {"n": 3.14159})


def test_number_formats_within_their_bounds_render():
    rendered = rendering.render(
        Source("s", '{{ n|floatformat:"2" }} {{ i|stringformat:"05d" }}'), {"n": 3.14159, "i": 7}
    )

    assert rendered.body == "3.14 00007"


def test_a_rendered_part_over_the_output_cap_is_a_render_error(monkeypatch):
    monkeypatch.setattr(rendering, "MAX_OUTPUT", 50)

    assert rendering.render(Source("s", "{{ text }}"), {"text": "x" * 50}).body == "x" * 50
    with pytest.raises(RenderError, match="a rendered part is over 50 characters"):
        rendering.render(Source("s", "{{ text }}"), {"text": "x" * 51})
    with pytest.raises(RenderError, match="a rendered part is over 50 characters"):
        rendering.render(Source("s", "b", "<p>{{ text }}</p>"), {"text": "x" * 48})


def test_the_html_part_still_escapes_context_values():
    rendered = rendering.render(Source("{{ name }}", "{{ name }}", "<p>{{ name }}</p>"), {"name": "<b>Tom & Jerry</b>"})

    assert rendered.html == "<p>&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;</p>"
    assert rendered.body == rendered.subject == "<b>Tom & Jerry</b>"


def test_autoescape_off_cannot_unescape_a_context_value_in_the_html_part():
    html = "<p>{% autoescape off %}{{ name }}{% endautoescape %}</p>"

    refused = rendering.check(html, html=True)
    rendered = "" if refused else rendering.render(Source("s", "b", html), {"name": "<script>x</script>"}).html

    assert refused or rendered == "<p>&lt;script&gt;x&lt;/script&gt;</p>"


def test_two_loops_over_long_text_stop_at_a_bound_on_their_passes():
    text = "x" * 1000  # a million passes here; sample data of a megabyte would make a trillion

    with pytest.raises(RenderError):
        rendering.render(Source("s", "{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}"), {"s": text})


# --- Webhooks: private addresses refused --------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/hook", "http://10.0.0.5/hook", "http://169.254.169.254/latest", "http://localhost/"],
)
def test_an_endpoint_at_a_private_address_is_refused_on_its_url(private_refused, client, company, url):
    response = client.post(ENDPOINTS, {"company": company.pk, "name": "Portal", "url": url}, format="json")

    fields = invalid(response)
    assert list(fields) == ["url"]
    assert fields["url"][0].startswith("Webhooks go to public addresses:")


def test_a_delivery_to_a_private_address_saved_around_the_api_fails_at_once_without_a_retry(
    private_refused, company, calls, django_capture_on_commit_callbacks
):
    endpoint = make_endpoint(company, "http://10.0.0.5/hook")
    (pk,) = push(company, django_capture_on_commit_callbacks)

    (result,) = work(calls, django_capture_on_commit_callbacks)

    assert result == {"claimed": 1, "sent": 0, "failed": 1, "retrying": 0}
    (refused,) = deliveries([pk])
    assert (refused.status, refused.attempts, refused.claim) == (DeliveryStatus.FAILED, 1, "")
    assert refused.last_error.startswith("refused:")
    assert "10.0.0.5" in refused.last_error
    assert calls.later == []
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 1


def test_a_host_resolving_to_a_public_address_passes(private_refused, monkeypatch):
    def resolve(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("93.184.216.34", 0))]

    monkeypatch.setattr(webhooks.socket, "getaddrinfo", resolve)

    assert webhooks.destination_refusal("https://hooks.example.com/in") == ""
    webhooks.validate_destination("https://hooks.example.com/in")  # raises nothing


@pytest.mark.parametrize("scheme, port", [("http", 80), ("https", 443)])
def test_a_webhook_connects_to_the_address_it_checked_not_to_a_second_lookup(
    private_refused, monkeypatch, company, calls, django_capture_on_commit_callbacks, scheme, port
):
    lookups, connections = [], []

    def rebinding(host, port, *args, **kwargs):
        lookups.append(host)
        address = "93.184.216.34" if len(lookups) == 1 else "127.0.0.1"  # public for the check, then not
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, 0))]

    def connect(address, *args, **kwargs):
        connections.append(address)
        raise ConnectionRefusedError("nobody there")

    make_endpoint(company, f"{scheme}://rebound.example.com/in")
    (pk,) = push(company, django_capture_on_commit_callbacks)
    monkeypatch.setattr(webhooks.socket, "getaddrinfo", rebinding)
    monkeypatch.setattr(webhooks.socket, "create_connection", connect)

    work(calls, django_capture_on_commit_callbacks)

    assert lookups == ["rebound.example.com"]  # looked up once, for the check
    assert connections == [("93.184.216.34", port)]  # and connected to what was checked
    (tried,) = deliveries([pk])
    assert (tried.status, tried.attempts) == (DeliveryStatus.QUEUED, 1)
    assert "nobody there" in tried.last_error


def test_a_host_resolving_to_any_private_address_is_refused(private_refused, monkeypatch):
    def resolve(host, port, *args, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("93.184.216.34", 0)),
            (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("192.168.1.20", 0)),
        ]

    monkeypatch.setattr(webhooks.socket, "getaddrinfo", resolve)

    assert webhooks.destination_refusal("https://rebound.example.com/in") == (
        "rebound.example.com resolves to 192.168.1.20, which is not a public address"
    )


# --- API: bad input answers 400 -----------------------------------------------------------


@pytest.mark.parametrize("zone", ["../../etc/passwd", "/etc/passwd", "zone.tab", "Factory", 123])
def test_quiet_hours_take_only_iana_timezone_names(client, company, zone):
    body = {"company": company.pk, "recipient_key": "user:7", "start": "22:00", "end": "07:00", "timezone": zone}

    fields = invalid(client.post(QUIET_HOURS, body, format="json"))

    assert list(fields) == ["timezone"]


def test_quiet_hours_in_an_iana_timezone_are_created(client, company):
    body = {"company": company.pk, "recipient_key": "user:7", "start": "22:00", "end": "07:00"}

    created = client.post(QUIET_HOURS, {**body, "timezone": "Europe/London"}, format="json")

    assert created.status_code == 201, created.content
    assert created.json()["timezone"] == "Europe/London"


def test_a_created_after_past_the_calendars_end_is_a_400(client):
    fields = invalid(client.get(NOTIFICATIONS, {"created_after": "9999-12-31T23:59:59-23:00"}))

    assert list(fields) == ["created_after"]


def test_a_created_after_with_an_offset_filters_at_that_moment(client, company):
    before = NotificationFactory(company=company, created_at=datetime.datetime(2025, 12, 31, 18, 59, tzinfo=UTC))
    after = NotificationFactory(company=company, created_at=datetime.datetime(2025, 12, 31, 19, 0, tzinfo=UTC))

    listed = ids(client.get(NOTIFICATIONS, {"created_after": "2026-01-01T00:00:00+05:00"}))

    assert listed == [after.pk]
    assert before.pk not in listed


def test_a_nul_in_sample_data_or_preview_data_is_a_400(client, company):
    saved = client.post(TEMPLATES, template_body(company, sample_data={"a": "\u0000"}), format="json")
    drafted = client.post(
        f"{TEMPLATES}/preview", {"kind": "invoice_issued", "body": "ok", "data": {"a": "x\u0000y"}}, format="json"
    )

    assert list(invalid(saved)) == ["sample_data"]
    assert list(invalid(drafted)) == ["data"]


@pytest.mark.parametrize("path", [f"{TEMPLATES}/preview", ENDPOINTS])
def test_a_json_body_nested_past_the_recursion_limit_is_a_400(client, path):
    deep = "[" * 100_000 + "]" * 100_000

    response = client.post(path, deep, content_type="application/json")

    assert response.status_code == 400, response.content[:300]
    assert response.json()["error"]["code"] == "parse_error"


# --- notify: checks and insert order ------------------------------------------------------


def test_a_nul_in_the_context_is_refused(company, calls):
    with pytest.raises(NotifyError, match="NUL"):
        notify(party(), KIND, {"note": "a\u0000b"}, company=company)
    with pytest.raises(NotifyError, match="NUL"):
        notify(party(), KIND, {"note": "\\\u0000"}, company=company)  # a backslash, then a NUL

    assert Notification.objects.count() == 0


def test_the_text_backslash_u0000_in_the_context_is_accepted(company, calls):
    text = "\\u0000"  # six characters: a backslash, then u0000

    notification = notify(party(), KIND, {"note": text, "path": "C:\\\\u0000"}, company=company)

    assert notification.data == {"note": text, "path": "C:\\\\u0000"}
    assert len(notification.data["note"]) == 6


def test_an_email_longer_than_its_column_is_refused(company, calls):
    address = "a" * (300 - len("@example.com")) + "@example.com"

    with pytest.raises(NotifyError, match="email is at most 254 characters"):
        notify(party(email=address), KIND, company=company)

    assert Notification.objects.count() == 0


def test_caller_chosen_keys_are_inserted_in_key_order_and_generated_ones_in_the_callers(company, other_company, calls):
    def keyed(company, *keys):
        return [Message(party(f"billing.customer:{k}"), KIND, company=company, dedupe_key=k) for k in keys]

    auto = [Message(party("billing.customer:9"), KIND, {"n": n}, company=company) for n in ("c", "a", "b")]
    # Two companies' keys, each in descending order, with generated keys before and after them.
    first = notify_many([auto[0], *keyed(other_company, "k2", "k1"), *keyed(company, "k5", "k4", "k3"), *auto[1:]])
    second = notify_many(keyed(company, "k7", "k6", "k5", "k4", "k3"))  # overlapping the first

    made = {
        pk: (company_id, key) for pk, company_id, key in Notification.objects.values_list("pk", "company", "dedupe_key")
    }
    keyed_rows = [made[pk] for pk in sorted(first.created) if not made[pk][1].startswith("auto:")]
    assert keyed_rows == sorted(keyed_rows)
    assert [key for _company, key in keyed_rows] == ["k3", "k4", "k5", "k1", "k2"]  # company before other_company
    generated = Notification.objects.filter(pk__in=first.created, dedupe_key__startswith="auto:").order_by("pk")
    assert [n.data["n"] for n in generated] == ["c", "a", "b"]
    assert (second.skipped, [made[pk][1] for pk in sorted(second.created)]) == (3, ["k6", "k7"])


# --- Webhooks: garbled answers and non-ASCII URLs -----------------------------------------


@pytest.fixture
def garbage(monkeypatch):
    """An endpoint that reads one request whole and answers bytes that are no HTTP."""
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    heads: list[bytes] = []

    def serve() -> None:
        try:
            connection, _address = listener.accept()
        except OSError:
            return
        with connection:
            connection.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data and (chunk := connection.recv(65536)):
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE).group(1))
            while len(body) < length and (chunk := connection.recv(65536)):
                body += chunk
            heads.append(head)
            connection.sendall(b"garbage\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/hooks", heads
    listener.close()
    thread.join(timeout=5)


def test_an_answer_that_is_not_http_is_a_failed_attempt_queued_again(
    company, garbage, calls, django_capture_on_commit_callbacks
):
    url, heads = garbage
    make_endpoint(company, url)
    (pk,) = push(company, django_capture_on_commit_callbacks)

    (result,) = work(calls, django_capture_on_commit_callbacks)

    assert result == {"claimed": 1, "sent": 0, "failed": 0, "retrying": 1}
    assert len(heads) == 1
    (answered,) = deliveries([pk])
    assert (answered.status, answered.attempts, answered.claim) == (DeliveryStatus.QUEUED, 1, "")
    assert answered.last_error.startswith("bad answer:")
    assert [batch for _channel, batch, _countdown in calls.later] == [[pk]]


def test_an_endpoint_url_with_a_non_ascii_path_is_posted(company, receiver, calls, django_capture_on_commit_callbacks):
    make_endpoint(company, receiver.url + "/hoök", secret=SECRET)
    (pk,) = push(company, django_capture_on_commit_callbacks)

    work(calls, django_capture_on_commit_callbacks)

    (sent,) = deliveries([pk])
    assert (sent.status, sent.last_error) == (DeliveryStatus.SENT, "")
    assert [r.verified for r in receiver.received] == [True]


# --- Untried deliveries keep their attempts -----------------------------------------------


def test_a_webhook_batch_after_a_time_out_goes_back_untried_in_a_task_of_its_own(
    company, receiver, calls, frozen, django_capture_on_commit_callbacks
):
    make_endpoint(company, receiver.url, secret=SECRET)
    receiver.answers = ["slow", 200, 200]
    ids = push(company, django_capture_on_commit_callbacks, 3)

    (result,) = work(calls, django_capture_on_commit_callbacks)

    assert result == {"claimed": 3, "sent": 0, "failed": 0, "retrying": 3}
    timed_out, *untried = deliveries(ids)
    assert (timed_out.status, timed_out.attempts, timed_out.last_error) == (
        DeliveryStatus.QUEUED,
        1,
        "no answer: timed out",
    )
    assert [(d.status, d.attempts, d.last_error, d.claim) for d in untried] == [
        (DeliveryStatus.QUEUED, 0, NOT_TRIED_WEBHOOK, "")
    ] * 2
    assert sorted(batch for _channel, batch, _countdown in calls.later) == [[ids[0]], ids[1:]]

    run_later(calls, django_capture_on_commit_callbacks, frozen)

    assert [(d.status, d.attempts) for d in deliveries(ids)] == [
        (DeliveryStatus.SENT, 2),
        (DeliveryStatus.SENT, 1),
        (DeliveryStatus.SENT, 1),
    ]


def test_an_email_batch_after_an_unreachable_server_goes_back_untried_in_a_task_of_its_own(
    company, calls, frozen, email_backend, django_capture_on_commit_callbacks
):
    email_backend["a@example.com"] = ConnectionRefusedError("refused")
    ids = emails(company, django_capture_on_commit_callbacks, "a@example.com", "b@example.com", "c@example.com")

    (result,) = work(calls, django_capture_on_commit_callbacks)

    assert result == {"claimed": 3, "sent": 0, "failed": 0, "retrying": 3}
    refused, *untried = deliveries(ids)
    assert (refused.status, refused.attempts) == (DeliveryStatus.QUEUED, 1)
    assert [(d.status, d.attempts, d.last_error) for d in untried] == [(DeliveryStatus.QUEUED, 0, NOT_TRIED_EMAIL)] * 2
    assert sorted(batch for _channel, batch, _countdown in calls.later) == [[ids[0]], ids[1:]]

    email_backend.clear()
    run_later(calls, django_capture_on_commit_callbacks, frozen)

    assert {d.status for d in deliveries(ids)} == {DeliveryStatus.SENT}
    assert sorted(m.to[0] for m in mail.outbox) == ["a@example.com", "b@example.com", "c@example.com"]


# --- A crash returns the batch with its error ---------------------------------------------


def crash(*args, **kwargs):
    raise RuntimeError("renderer fell over")


def test_a_crash_mid_task_requeues_the_claimed_deliveries_with_its_error_and_reraises(
    company, calls, monkeypatch, email_backend, django_capture_on_commit_callbacks
):
    ids = emails(company, django_capture_on_commit_callbacks, "a@example.com", "b@example.com")
    ((channel, batch),) = calls.delayed
    monkeypatch.setattr(delivery, "_render_all", crash)

    with pytest.raises(RuntimeError, match="renderer fell over"), django_capture_on_commit_callbacks(execute=True):
        delivery.deliver(channel, batch)

    assert [(d.status, d.attempts, d.claim, d.last_error) for d in deliveries(ids)] == [
        (DeliveryStatus.QUEUED, 1, "", "RuntimeError: renderer fell over")
    ] * 2
    assert [sorted(batch) for _channel, batch, _countdown in calls.later] == [ids]
    assert mail.outbox == []


def test_a_crash_at_the_last_attempt_fails_the_claimed_deliveries(
    settings, company, calls, monkeypatch, email_backend, django_capture_on_commit_callbacks
):
    settings.NOTIFY_MAX_ATTEMPTS = 1
    ids = emails(company, django_capture_on_commit_callbacks, "a@example.com")
    monkeypatch.setattr(delivery, "_render_all", crash)

    with pytest.raises(RuntimeError):
        delivery.deliver(Channel.EMAIL, ids)

    (failed,) = deliveries(ids)
    assert (failed.status, failed.attempts, failed.claim) == (DeliveryStatus.FAILED, 1, "")
    assert failed.last_error == "RuntimeError: renderer fell over"
    assert calls.later == []


def test_a_crash_while_building_a_webhook_payload_requeues_its_deliveries(
    company, receiver, calls, monkeypatch, django_capture_on_commit_callbacks
):
    make_endpoint(company, receiver.url, secret=SECRET)
    ids = push(company, django_capture_on_commit_callbacks, 2)
    monkeypatch.setattr(webhooks, "payload", crash)

    with pytest.raises(RuntimeError):
        delivery.deliver(Channel.WEBHOOK, ids)

    assert [(d.status, d.claim, d.last_error) for d in deliveries(ids)] == [
        (DeliveryStatus.QUEUED, "", "RuntimeError: renderer fell over")
    ] * 2
    assert receiver.received == []


def test_a_crash_after_a_webhook_was_posted_leaves_that_one_sent(
    company, receiver, calls, monkeypatch, django_capture_on_commit_callbacks
):
    make_endpoint(company, receiver.url, secret=SECRET)
    first, second = push(company, django_capture_on_commit_callbacks, 2)
    real_payload = webhooks.payload

    def payload_once(delivery_row, notification):
        if delivery_row.pk == second:
            raise RuntimeError("renderer fell over")
        return real_payload(delivery_row, notification)

    monkeypatch.setattr(webhooks, "payload", payload_once)

    with pytest.raises(RuntimeError):
        delivery.deliver(Channel.WEBHOOK, [first, second])

    posted, crashed = deliveries([first, second])
    assert len(receiver.received) == 1
    assert (crashed.status, crashed.last_error) == (DeliveryStatus.QUEUED, "RuntimeError: renderer fell over")
    assert (posted.status, posted.last_error) == (DeliveryStatus.SENT, "")


# --- Email: recipient refusals and the Message-ID -----------------------------------------


def test_a_recipient_refused_for_now_is_retried(company, calls, email_backend, django_capture_on_commit_callbacks):
    email_backend["a@example.com"] = smtplib.SMTPRecipientsRefused({"a@example.com": (450, b"greylisted")})
    (pk,) = emails(company, django_capture_on_commit_callbacks, "a@example.com")

    work(calls, django_capture_on_commit_callbacks)

    (greylisted,) = deliveries([pk])
    assert (greylisted.status, greylisted.attempts) == (DeliveryStatus.QUEUED, 1)
    assert greylisted.last_error.startswith("recipient refused for now: {'a@example.com': (450")
    assert [batch for _channel, batch, _countdown in calls.later] == [[pk]]


def test_a_recipient_refused_for_good_fails_at_once(company, calls, email_backend, django_capture_on_commit_callbacks):
    email_backend["a@example.com"] = smtplib.SMTPRecipientsRefused({"a@example.com": (550, b"no mailbox")})
    (pk,) = emails(company, django_capture_on_commit_callbacks, "a@example.com")

    work(calls, django_capture_on_commit_callbacks)

    (refused,) = deliveries([pk])
    assert (refused.status, refused.attempts) == (DeliveryStatus.FAILED, 1)
    assert refused.last_error.startswith("recipient refused: {'a@example.com': (550")
    assert calls.later == []


def test_the_message_id_domain_comes_from_a_sender_with_a_display_name(
    settings, company, calls, email_backend, django_capture_on_commit_callbacks
):
    settings.DEFAULT_FROM_EMAIL = "Countinghouse <noreply@example.com>"
    emails(company, django_capture_on_commit_callbacks, "a@example.com")

    work(calls, django_capture_on_commit_callbacks)

    (message,) = mail.outbox
    message_id = message.extra_headers["Message-ID"]
    assert message_id.startswith("<") and message_id.endswith("@example.com>")
    assert "<" not in message_id[1:-1] and ">" not in message_id[1:-1]
    assert message.message()["Message-ID"] == message_id


# --- The receiver's signature check -------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "signature"),
    [
        ("now", "v1=é" + "0" * 63),
        ("now", "v1=\udcff"),
        ("", "valid"),
        ("yesterday", "valid"),
        ("1.7e9", "valid"),
        (None, "valid"),
    ],
    ids=["non-ascii", "lone-surrogate", "no-timestamp", "garbage-timestamp", "float-timestamp", "none-timestamp"],
)
def test_verify_answers_false_and_never_raises(timestamp, signature):
    body = b'{"id":"dlv_1"}'
    now = int(time.time())
    if timestamp == "now":
        timestamp = str(now)
    if signature == "valid":
        signature = webhooks.sign(SECRET, now, body)

    assert webhooks.verify(SECRET, timestamp, body, signature) is False


def test_verify_answers_false_for_a_missing_signature():
    now = int(time.time())

    assert webhooks.verify(SECRET, str(now), b"{}", None) is False
