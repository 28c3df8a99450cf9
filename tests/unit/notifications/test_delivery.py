"""Notifications on SQLite, the delivery side: templates and rendering, the in-app and
email channels (locmem), retries with backoff, claiming, resend and the sweep. The test
plays the worker: it calls ``delivery.deliver(channel, ids)`` with what the code queued."""

from __future__ import annotations

import datetime
import smtplib

import pytest
from django.core import mail

from notifications.models import Channel, Delivery, DeliveryStatus, Notification, Template
from notifications.services import delivery
from notifications.services.delivery import NotResendable
from notifications.services.sending import Message, notify, notify_many
from tests.factories import MembershipFactory
from tests.unit.notifications.helpers import (
    KIND,
    NOON,
    FlakyBackend,
    make_endpoint,
    party,
    statuses,
    the_delivery,
    work,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("email_backend", "notice")]


def sent(capture, calls, *args, **kwargs) -> Notification:
    """notify, then run the queued delivery tasks."""
    with capture(execute=True):
        notification = notify(*args, **kwargs)
    work(calls, capture)
    notification.refresh_from_db()
    return notification


# --- Templates --------------------------------------------------------------------------------


def test_the_kind_default_template_renders_and_is_stored_on_the_notification(
    company, user, calls, django_capture_on_commit_callbacks
):
    notification = sent(django_capture_on_commit_callbacks, calls, user, KIND, {"topic": "rent"}, company=company)

    assert (notification.subject, notification.body) == ("Hello Rita: rent", "Topic: rent")
    assert notification.rendered_at is not None
    assert set(statuses(notification).values()) == {DeliveryStatus.SENT}


def test_a_platform_template_overrides_the_default_and_a_company_template_overrides_the_platform(
    company, other_company, user, calls, django_capture_on_commit_callbacks
):
    Template.objects.create(company=None, kind=KIND, subject="Platform: {{ topic }}", body="p")
    Template.objects.create(company=company, kind=KIND, subject="{{ company }}: {{ topic }}", body="c")
    capture = django_capture_on_commit_callbacks

    own = sent(capture, calls, user, KIND, {"topic": "rent"}, company=company, channels=["in_app"])
    elsewhere = sent(capture, calls, user, KIND, {"topic": "rent"}, company=other_company, channels=["in_app"])
    platform = sent(capture, calls, user, KIND, {"topic": "rent"}, channels=["in_app"])

    assert (own.subject, own.body) == ("Acme Books Ltd: rent", "c")
    assert (elsewhere.subject, elsewhere.body) == ("Platform: rent", "p")
    assert (platform.subject, platform.body) == ("Platform: rent", "p")


def test_a_kind_nobody_registered_fails_its_deliveries_with_no_template(
    company, user, calls, django_capture_on_commit_callbacks
):
    notification = sent(django_capture_on_commit_callbacks, calls, user, "mystery_kind", company=company)

    for channel in (Channel.IN_APP, Channel.EMAIL):
        failed = the_delivery(notification, channel)
        assert failed.status == DeliveryStatus.FAILED
        assert failed.last_error.startswith("no template for 'mystery_kind'")
    assert (notification.rendered_at, notification.in_app_at) == (None, None)
    assert mail.outbox == []


def test_a_kind_nobody_registered_is_sent_once_a_template_row_exists(
    company, user, calls, django_capture_on_commit_callbacks
):
    Template.objects.create(company=company, kind="mystery_kind", subject="Found", body="It is here")

    notification = sent(django_capture_on_commit_callbacks, calls, user, "mystery_kind", company=company)

    assert set(statuses(notification).values()) == {DeliveryStatus.SENT}
    assert mail.outbox[0].subject == "Found"


def test_a_template_syntax_error_fails_every_channel_it_renders_for_and_crashes_nothing(
    company, user, calls, django_capture_on_commit_callbacks
):
    # Subject and body are shared by the channels: a broken subject leaves nothing to send anywhere.
    Template.objects.create(company=company, kind=KIND, subject="{% if %}", body="b")

    notification = sent(django_capture_on_commit_callbacks, calls, user, KIND, company=company)

    for channel in (Channel.IN_APP, Channel.EMAIL):
        failed = the_delivery(notification, channel)
        assert failed.status == DeliveryStatus.FAILED
        assert failed.last_error.startswith("template error")
        assert failed.attempts == 1  # not retried: the template will not mend itself
    assert mail.outbox == []


def test_a_failure_while_rendering_is_a_template_error_too(company, user, calls, django_capture_on_commit_callbacks):
    Template.objects.create(company=company, kind=KIND, subject="s", body='{{ kind|rjust:"5000" }}')

    notification = sent(django_capture_on_commit_callbacks, calls, user, KIND, company=company)

    in_app = the_delivery(notification, Channel.IN_APP)
    assert in_app.status == DeliveryStatus.FAILED
    assert in_app.last_error == "template error while rendering: ValueError: a width is at most 200, not 5000"


def test_an_error_in_the_html_part_alone_fails_the_email_but_not_the_inbox(
    company, user, calls, django_capture_on_commit_callbacks
):
    Template.objects.create(company=company, kind=KIND, subject="s", body="b", html="<p>{% for %}</p>")

    notification = sent(django_capture_on_commit_callbacks, calls, user, KIND, company=company)

    assert statuses(notification) == {Channel.IN_APP: DeliveryStatus.SENT, Channel.EMAIL: DeliveryStatus.FAILED}


def test_the_html_part_escapes_context_values_and_the_text_parts_do_not(
    company, user, calls, django_capture_on_commit_callbacks
):
    notification = sent(
        django_capture_on_commit_callbacks, calls, user, KIND, {"topic": "<b>Tom & Jerry</b>"}, company=company
    )

    (message,) = mail.outbox
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert html == "<p>Topic: &lt;b&gt;Tom &amp; Jerry&lt;/b&gt;</p>"
    assert message.body == "Topic: <b>Tom & Jerry</b>"
    assert message.subject == notification.subject == "Hello Rita: <b>Tom & Jerry</b>"


def test_a_subject_is_collapsed_to_one_line(company, user, calls, django_capture_on_commit_callbacks):
    Template.objects.create(company=company, kind=KIND, subject="Line one\n  {{ topic }}\r\n\n end ", body="b")

    notification = sent(django_capture_on_commit_callbacks, calls, user, KIND, {"topic": "two\nthree"}, company=company)

    assert notification.subject == "Line one two three end"
    assert mail.outbox[0].subject == "Line one two three end"


def test_a_notification_is_rendered_once_and_a_later_template_edit_does_not_change_it(
    company, user, calls, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    with capture(execute=True):
        notification = notify(user, KIND, {"topic": "rent"}, company=company)
    in_app = [c for c in calls.delayed if c[0] == Channel.IN_APP]
    calls.delayed[:] = [c for c in calls.delayed if c[0] != Channel.IN_APP]
    with capture(execute=True):
        delivery.deliver(*in_app[0])
    notification.refresh_from_db()
    first = (notification.subject, notification.body, notification.rendered_at)

    Template.objects.create(company=company, kind=KIND, subject="Edited {{ topic }}", body="edited", html="")
    work(calls, capture)

    notification.refresh_from_db()
    assert (notification.subject, notification.body, notification.rendered_at) == first
    assert (mail.outbox[0].subject, mail.outbox[0].body) == ("Hello Rita: rent", "Topic: rent")


def test_an_email_sends_the_subject_and_text_the_inbox_shows(company, user, calls, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    with capture(execute=True):
        notification = notify(user, KIND, {"topic": "rent"}, company=company)
    in_app = [c for c in calls.delayed if c[0] == Channel.IN_APP]
    calls.delayed[:] = [c for c in calls.delayed if c[0] != Channel.IN_APP]
    with capture(execute=True):
        delivery.deliver(*in_app[0])

    Template.objects.create(company=company, kind=KIND, subject="Edited {{ topic }}", body="edited", html="<p>e</p>")
    work(calls, capture)

    notification.refresh_from_db()
    assert (mail.outbox[0].subject, mail.outbox[0].body) == (notification.subject, notification.body)


def test_the_template_sees_recipient_company_and_kind(company, user, calls, django_capture_on_commit_callbacks):
    Template.objects.create(
        company=company,
        kind=KIND,
        subject="{{ kind }} for {{ recipient_name }} <{{ recipient_email }}> at {{ company }}",
        body="{{ missing }}|{{ topic }}",
    )

    notification = sent(django_capture_on_commit_callbacks, calls, user, KIND, {"topic": "t"}, company=company)

    assert notification.subject == "test_notice for Rita <reader@example.com> at Acme Books Ltd"
    assert notification.body == "|t"  # an unknown name renders empty, as Django's templates do


# --- In-app -----------------------------------------------------------------------------------


def test_an_in_app_delivery_puts_the_notification_in_the_inbox(
    company, user, calls, frozen, django_capture_on_commit_callbacks
):
    notification = sent(django_capture_on_commit_callbacks, calls, user, KIND, company=company, channels=["in_app"])

    in_app = the_delivery(notification, Channel.IN_APP)
    assert (in_app.status, in_app.sent_at, in_app.attempts, in_app.claim) == (DeliveryStatus.SENT, NOON, 1, "")
    assert notification.in_app_at == NOON
    assert list(Notification.objects.inbox(user).unread()) == [notification]


# --- Email ------------------------------------------------------------------------------------


def test_an_email_carries_subject_text_html_recipient_and_its_headers(
    settings, company, user, calls, frozen, django_capture_on_commit_callbacks
):
    settings.DEFAULT_FROM_EMAIL = "notices@books.example.com"

    notification = sent(
        django_capture_on_commit_callbacks, calls, user, KIND, {"topic": "rent"}, company=company, channels=["email"]
    )

    (message,) = mail.outbox
    email = the_delivery(notification, Channel.EMAIL)
    assert (message.subject, message.body, message.to) == ("Hello Rita: rent", "Topic: rent", ["reader@example.com"])
    assert message.from_email == "notices@books.example.com"
    assert message.alternatives[0][0] == "<p>Topic: rent</p>"
    assert message.extra_headers["X-Countinghouse-Kind"] == KIND
    assert message.extra_headers["X-Countinghouse-Notification"] == str(notification.pk)
    message_id = message.extra_headers["Message-ID"]
    assert message_id.startswith("<") and message_id.endswith("@books.example.com>")
    assert f"delivery-{email.pk}" in message_id
    assert message.message()["Message-ID"] == message_id
    assert (email.status, email.provider_message_id, email.sent_at) == (DeliveryStatus.SENT, message_id, NOON)
    assert notification.in_app_at is None  # email only: not in the inbox


def test_a_template_without_html_sends_text_only(company, user, calls, django_capture_on_commit_callbacks):
    Template.objects.create(company=company, kind=KIND, subject="s", body="plain", html="")

    sent(django_capture_on_commit_callbacks, calls, user, KIND, company=company, channels=["email"])

    assert (mail.outbox[0].body, mail.outbox[0].alternatives) == ("plain", [])


def test_a_mail_server_that_drops_the_connection_queues_the_email_again_with_backoff(
    company, user, calls, frozen, email_backend, django_capture_on_commit_callbacks
):
    email_backend["reader@example.com"] = smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

    notification = sent(django_capture_on_commit_callbacks, calls, user, KIND, company=company, channels=["email"])

    email = the_delivery(notification, Channel.EMAIL)
    assert (email.status, email.attempts, email.claim) == (DeliveryStatus.QUEUED, 1, "")
    assert email.last_error == "SMTPServerDisconnected: Connection unexpectedly closed"
    # The first retry waits between half and all of NOTIFY_RETRY_BACKOFF (30 s).
    assert NOON + datetime.timedelta(seconds=15) <= email.next_attempt_at <= NOON + datetime.timedelta(seconds=30)
    ((channel, ids, countdown),) = calls.later
    assert (channel, ids) == (Channel.EMAIL, [email.pk])
    assert countdown == pytest.approx((email.next_attempt_at - NOON).total_seconds(), abs=0.001)
    assert mail.outbox == []


def test_an_email_retried_too_often_fails_with_its_last_error(
    settings, company, user, calls, frozen, email_backend, django_capture_on_commit_callbacks
):
    settings.NOTIFY_MAX_ATTEMPTS = 3
    email_backend["reader@example.com"] = smtplib.SMTPServerDisconnected("gone")
    notification = sent(django_capture_on_commit_callbacks, calls, user, KIND, company=company, channels=["email"])
    email = the_delivery(notification, Channel.EMAIL)
    countdowns = []

    while calls.later:
        channel, ids, countdown = calls.later.pop(0)
        countdowns.append(countdown)
        frozen.shift(datetime.timedelta(seconds=countdown))
        with django_capture_on_commit_callbacks(execute=True):
            assert delivery.deliver(channel, ids)["claimed"] == 1  # due exactly at its countdown

    email.refresh_from_db()
    assert (email.status, email.attempts, email.last_error) == (
        DeliveryStatus.FAILED,
        3,
        "SMTPServerDisconnected: gone",
    )
    assert len(countdowns) == 2
    assert 15 <= countdowns[0] <= 30 and 30 <= countdowns[1] <= 60  # doubling, with jitter


def test_backoff_doubles_with_jitter_up_to_its_cap(settings):
    settings.NOTIFY_RETRY_BACKOFF, settings.NOTIFY_RETRY_BACKOFF_MAX = 30, 100

    for attempts, (low, high) in {1: (15, 30), 2: (30, 60), 3: (50, 100), 9: (50, 100)}.items():
        for _ in range(20):
            assert low <= delivery.backoff(attempts) <= high


def test_a_refused_recipient_fails_at_once(company, user, calls, email_backend, django_capture_on_commit_callbacks):
    email_backend["reader@example.com"] = smtplib.SMTPRecipientsRefused({"reader@example.com": (550, b"no mailbox")})

    notification = sent(django_capture_on_commit_callbacks, calls, user, KIND, company=company, channels=["email"])

    email = the_delivery(notification, Channel.EMAIL)
    assert (email.status, email.attempts) == (DeliveryStatus.FAILED, 1)
    assert email.last_error.startswith("recipient refused: {'reader@example.com': (550")
    assert calls.later == []


def test_one_failing_message_does_not_stop_the_rest_of_the_batch(
    company, calls, email_backend, django_capture_on_commit_callbacks
):
    email_backend["b@example.com"] = smtplib.SMTPServerDisconnected("gone")
    email_backend["c@example.com"] = smtplib.SMTPRecipientsRefused({"c@example.com": (550, b"no")})
    with django_capture_on_commit_callbacks(execute=True):
        notify_many(
            Message(party(f"billing.customer:{x}", email=f"{x}@example.com"), KIND, company=company, channels=["email"])
            for x in "abcd"
        )
    assert len(calls.delayed) == 1  # one task for the four

    (result,) = work(calls, django_capture_on_commit_callbacks)

    assert result == {"claimed": 4, "sent": 2, "failed": 1, "retrying": 1}
    assert sorted(m.to[0] for m in mail.outbox) == ["a@example.com", "d@example.com"]
    by_address = dict(Delivery.objects.values_list("notification__recipient_email", "status"))
    assert by_address == {
        "a@example.com": DeliveryStatus.SENT,
        "b@example.com": DeliveryStatus.QUEUED,
        "c@example.com": DeliveryStatus.FAILED,
        "d@example.com": DeliveryStatus.SENT,
    }


def test_a_mail_server_that_cannot_be_reached_is_not_tried_again_for_the_rest_of_the_batch(
    company, calls, email_backend, django_capture_on_commit_callbacks
):
    email_backend["a@example.com"] = ConnectionRefusedError("refused")
    with django_capture_on_commit_callbacks(execute=True):
        notify_many(
            Message(party(f"billing.customer:{x}", email=f"{x}@example.com"), KIND, company=company, channels=["email"])
            for x in "abc"
        )

    (result,) = work(calls, django_capture_on_commit_callbacks)

    assert result == {"claimed": 3, "sent": 0, "failed": 0, "retrying": 3}
    errors = dict(Delivery.objects.values_list("notification__recipient_email", "last_error"))
    assert errors["a@example.com"] == "ConnectionRefusedError: refused"
    assert errors["b@example.com"] == errors["c@example.com"] == "not tried: the mail server did not answer this batch"


def test_a_batch_that_failed_together_is_retried_together(
    company, calls, email_backend, django_capture_on_commit_callbacks
):
    for x in "abc":
        email_backend[f"{x}@example.com"] = smtplib.SMTPServerDisconnected("gone")
    with django_capture_on_commit_callbacks(execute=True):
        notify_many(
            Message(party(f"billing.customer:{x}", email=f"{x}@example.com"), KIND, company=company, channels=["email"])
            for x in "abc"
        )

    work(calls, django_capture_on_commit_callbacks)

    assert len(calls.later) == 1


def test_a_failing_email_does_not_hold_up_the_in_app_delivery(
    company, user, calls, email_backend, django_capture_on_commit_callbacks
):
    email_backend["reader@example.com"] = smtplib.SMTPServerDisconnected("gone")

    notification = sent(django_capture_on_commit_callbacks, calls, user, KIND, company=company)

    assert statuses(notification) == {Channel.IN_APP: DeliveryStatus.SENT, Channel.EMAIL: DeliveryStatus.QUEUED}
    assert list(Notification.objects.inbox(user)) == [notification]


@pytest.mark.parametrize(
    ("channel", "queries"),
    [
        # claim, the claimed rows, templates (company, platform), company names, the rendered
        # subjects stored, then the sends recorded (in-app: in a transaction with in_app_at).
        (Channel.IN_APP, 10),
        (Channel.EMAIL, 7),
    ],
)
def test_a_batch_is_delivered_in_a_fixed_number_of_queries(
    company, calls, channel, queries, django_capture_on_commit_callbacks, django_assert_num_queries
):
    users = [MembershipFactory(company=company).user for _ in range(40)]
    with django_capture_on_commit_callbacks(execute=True):
        notify_many(Message(u, KIND, {"topic": "t"}, company=company, channels=[channel]) for u in users)
    ((queued_channel, ids),) = calls.delayed

    with django_assert_num_queries(queries):  # whatever the batch size, up to the chunk
        result = delivery.deliver(queued_channel, ids)

    assert result["sent"] == 40


# --- Claiming ---------------------------------------------------------------------------------


def test_delivering_the_same_ids_twice_sends_once(company, user, calls, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        notify(user, KIND, company=company, channels=["email"])
    ((channel, ids),) = calls.delayed

    first = delivery.deliver(channel, ids)
    second = delivery.deliver(channel, ids)

    assert (first["claimed"], second) == (1, {"claimed": 0})
    assert len(mail.outbox) == 1
    assert Delivery.objects.get().attempts == 1


def test_a_delivery_not_yet_due_is_not_claimed(company, user, calls, frozen):
    notification = notify(user, KIND, company=company, channels=["email"])
    email = the_delivery(notification, Channel.EMAIL)
    Delivery.objects.filter(pk=email.pk).update(next_attempt_at=NOON + datetime.timedelta(seconds=1))

    assert delivery.deliver(Channel.EMAIL, [email.pk]) == {"claimed": 0}
    frozen.shift(datetime.timedelta(seconds=1))
    assert delivery.deliver(Channel.EMAIL, [email.pk])["sent"] == 1


def test_ids_of_another_channel_or_status_are_not_claimed(company, user, calls, frozen):
    notification = notify(user, KIND, company=company)
    in_app, email = the_delivery(notification, Channel.IN_APP), the_delivery(notification, Channel.EMAIL)
    Delivery.objects.filter(pk=email.pk).update(status=DeliveryStatus.WAITING)

    assert delivery.deliver(Channel.EMAIL, [in_app.pk, email.pk]) == {"claimed": 0}
    assert mail.outbox == []


def test_a_batch_the_sweep_took_back_mid_send_is_not_sent_again_by_the_slow_task(
    company, calls, frozen, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        notify_many(
            Message(party(f"billing.customer:{x}", email=f"{x}@example.com"), KIND, company=company, channels=["email"])
            for x in "ab"
        )
    ((channel, ids),) = calls.delayed
    slow = {"first": True}

    def a_slow_mail_server(message):
        if slow.pop("first", False):  # the first message takes 16 minutes to go ...
            frozen.shift(datetime.timedelta(minutes=16))
            delivery.sweep()  # ... so the sweep takes both back
            delivery.deliver(channel, ids)  # and another worker sends both

    FlakyBackend.during_send = staticmethod(a_slow_mail_server)
    delivery.deliver(channel, ids)

    # The message in flight goes twice (nothing can tell a slow worker from a dead one); the
    # second must not: by then the slow task no longer holds it.
    assert sorted(m.to[0] for m in mail.outbox) == ["a@example.com", "a@example.com", "b@example.com"]


# --- Resend -----------------------------------------------------------------------------------


def failed_email(company, user, calls, capture, email_backend) -> Delivery:
    email_backend["reader@example.com"] = smtplib.SMTPRecipientsRefused({"reader@example.com": (550, b"no")})
    notification = sent(capture, calls, user, KIND, company=company, channels=["email"])
    email_backend.clear()
    return the_delivery(notification, Channel.EMAIL)


def test_resending_a_failed_delivery_queues_it_with_fresh_attempts_and_sends_it(
    company, user, calls, email_backend, django_capture_on_commit_callbacks
):
    email = failed_email(company, user, calls, django_capture_on_commit_callbacks, email_backend)
    assert email.status == DeliveryStatus.FAILED

    with django_capture_on_commit_callbacks(execute=True):
        again = delivery.resend(email)

    assert (again.status, again.attempts, again.last_error) == (DeliveryStatus.QUEUED, 0, "")
    assert calls.delayed == [(Channel.EMAIL, [email.pk])]
    work(calls, django_capture_on_commit_callbacks)
    email.refresh_from_db()
    assert (email.status, email.attempts, len(mail.outbox)) == (DeliveryStatus.SENT, 1, 1)


def test_a_sent_delivery_is_not_resent(company, user, calls, django_capture_on_commit_callbacks):
    notification = sent(django_capture_on_commit_callbacks, calls, user, KIND, company=company, channels=["email"])

    with pytest.raises(NotResendable, match="is sent"):
        delivery.resend(the_delivery(notification, Channel.EMAIL))


def test_a_delivery_changed_meanwhile_is_not_resent(
    company, user, calls, email_backend, django_capture_on_commit_callbacks
):
    email = failed_email(company, user, calls, django_capture_on_commit_callbacks, email_backend)
    Delivery.objects.filter(pk=email.pk).update(status=DeliveryStatus.QUEUED)

    with pytest.raises(NotResendable, match="changed meanwhile"):
        delivery.resend(email)


def test_a_delivery_to_a_disabled_endpoint_is_not_resent(company, calls):
    endpoint = make_endpoint(company)
    notification = notify(party(), KIND, company=company, channels=["webhook"])
    webhook = the_delivery(notification, Channel.WEBHOOK)
    Delivery.objects.filter(pk=webhook.pk).update(status=DeliveryStatus.FAILED)
    endpoint.active = False
    endpoint.save()
    webhook.refresh_from_db()

    with pytest.raises(NotResendable, match="endpoint is disabled"):
        delivery.resend(webhook)


def test_a_delivery_suppressed_for_want_of_an_address_is_not_resent_as_sent(
    company, calls, django_capture_on_commit_callbacks
):
    notification = notify(party(email=""), KIND, company=company, channels=["email"])
    email = the_delivery(notification, Channel.EMAIL)
    assert email.last_error == "no email address"

    try:
        with django_capture_on_commit_callbacks(execute=True):
            delivery.resend(email)
    except NotResendable:
        pass
    work(calls, django_capture_on_commit_callbacks)

    email.refresh_from_db()
    assert email.status != DeliveryStatus.SENT


def test_a_delivery_the_recipient_turned_off_is_not_resent(company, user, calls, django_capture_on_commit_callbacks):
    from notifications.models import Preference

    Preference.objects.create(company=company, recipient_key=f"user:{user.pk}", channel="email", enabled=False)
    email = the_delivery(notify(user, KIND, company=company, channels=["email"]), Channel.EMAIL)

    with pytest.raises(NotResendable):
        delivery.resend(email)


# --- Sweep ------------------------------------------------------------------------------------


def test_the_sweep_requeues_a_queued_delivery_whose_message_was_lost(
    company, user, calls, frozen, django_capture_on_commit_callbacks
):
    lost = the_delivery(notify(user, KIND, company=company, channels=["email"]), Channel.EMAIL)  # never dispatched
    frozen.shift(datetime.timedelta(minutes=9))
    fresh = the_delivery(notify(user, KIND, company=company, channels=["email"]), Channel.EMAIL)
    frozen.shift(datetime.timedelta(minutes=1, seconds=1))

    with django_capture_on_commit_callbacks(execute=True):
        result = delivery.sweep()

    assert result == {"released": 0, "abandoned": 0, "requeued": 1}
    assert calls.delayed == [(Channel.EMAIL, [lost.pk])]
    work(calls, django_capture_on_commit_callbacks)
    assert [m.extra_headers["X-Countinghouse-Notification"] for m in mail.outbox] == [str(lost.notification_id)]
    fresh.refresh_from_db()
    assert fresh.status == DeliveryStatus.QUEUED


def test_the_sweep_resets_a_delivery_whose_worker_died_mid_send(
    company, user, calls, frozen, django_capture_on_commit_callbacks
):
    notification = notify(user, KIND, company=company)
    in_app, email = the_delivery(notification, Channel.IN_APP), the_delivery(notification, Channel.EMAIL)
    delivery.claim(Channel.EMAIL, [email.pk])  # the worker took it and died
    frozen.shift(datetime.timedelta(minutes=10))
    delivery.claim(Channel.IN_APP, [in_app.pk])  # this one is still at work
    frozen.shift(datetime.timedelta(minutes=5, seconds=1))

    with django_capture_on_commit_callbacks(execute=True):
        result = delivery.sweep()

    assert result == {"released": 0, "abandoned": 1, "requeued": 0}
    email.refresh_from_db()
    in_app.refresh_from_db()
    assert (email.status, email.claim, email.attempts) == (DeliveryStatus.QUEUED, "", 1)
    assert in_app.status == DeliveryStatus.SENDING
    assert calls.delayed == [(Channel.EMAIL, [email.pk])]
    work(calls, django_capture_on_commit_callbacks)
    email.refresh_from_db()
    assert (email.status, email.attempts, len(mail.outbox)) == (DeliveryStatus.SENT, 2, 1)


def test_the_sweep_fails_a_delivery_whose_worker_died_at_every_attempt(
    settings, company, user, calls, frozen, django_capture_on_commit_callbacks
):
    settings.NOTIFY_MAX_ATTEMPTS = 2
    email = the_delivery(notify(user, KIND, company=company, channels=["email"]), Channel.EMAIL)
    Delivery.objects.filter(pk=email.pk).update(attempts=1)
    delivery.claim(Channel.EMAIL, [email.pk])
    frozen.shift(datetime.timedelta(minutes=16))

    with django_capture_on_commit_callbacks(execute=True):
        delivery.sweep()

    email.refresh_from_db()
    assert (email.status, email.last_error) == (DeliveryStatus.FAILED, "its worker was lost at every attempt")
    assert calls.delayed == []


def test_the_sweep_leaves_fresh_queued_and_settled_deliveries_alone(
    company, user, calls, frozen, django_capture_on_commit_callbacks
):
    sent(django_capture_on_commit_callbacks, calls, user, KIND, company=company)
    notify(user, KIND, company=company)
    frozen.shift(datetime.timedelta(minutes=5))

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        result = delivery.sweep()

    assert result == {"released": 0, "abandoned": 0, "requeued": 0}
    assert (callbacks, calls.delayed) == ([], [])


def test_a_delivery_the_sweep_requeued_is_not_requeued_again_a_minute_later(
    company, user, calls, frozen, django_capture_on_commit_callbacks
):
    notify(user, KIND, company=company, channels=["email"])  # its message was lost
    frozen.shift(datetime.timedelta(minutes=11))
    with django_capture_on_commit_callbacks(execute=True):
        delivery.sweep()
    assert len(calls.delayed) == 1

    frozen.shift(datetime.timedelta(minutes=1))  # the workers have not got to it yet
    with django_capture_on_commit_callbacks(execute=True):
        delivery.sweep()

    assert len(calls.delayed) == 1
