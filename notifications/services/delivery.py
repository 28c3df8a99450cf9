"""Sending deliveries: claim, render, send, record; retry with backoff; resend; sweep.

A delivery task gets ids and claims the ones still queued and due with one conditional
UPDATE that stamps them with its own token, so a message delivered twice, or two tasks
given the same ids, send each delivery once. What fails for a reason that can pass (a mail
server down, an endpoint answering 500 or not at all) goes back to the queue with capped
exponential backoff and jitter until NOTIFY_MAX_ATTEMPTS; a template error fails at once.

Anything the broker lost — a retry's message, a worker killed mid-send, a delivery whose
quiet hours ended — is picked up by ``sweep``, which the SYS_NOTIFY_DISPATCH job runs every
minute.
"""

from __future__ import annotations

import datetime
import logging
import random
import smtplib
import socket
import uuid
from collections import defaultdict
from collections.abc import Iterable
from email.utils import make_msgid, parseaddr

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from config import bulk
from config.secrets import SecretUnreadable
from notifications.models import Channel, Delivery, DeliveryStatus, Notification, WebhookEndpoint
from notifications.services import rendering, webhooks
from notifications.services.rendering import RenderError
from notifications.services.sending import dispatch

logger = logging.getLogger(__name__)

STALE_AFTER = datetime.timedelta(minutes=10)  # queued this long past due: its message was lost
SENDING_STALE_AFTER = datetime.timedelta(minutes=15)  # claimed this long ago: its worker died
# Errors that mean no mail server is there to talk to (every SMTP error is an OSError, so
# the test is narrower than that): the rest of the batch is not tried against it.
UNREACHABLE = (ConnectionError, TimeoutError, socket.gaierror, smtplib.SMTPConnectError)
SWEEP_LIMIT = 10_000  # per kind of leftover per sweep; the next minute takes the rest


def deliver(channel: str, ids: Iterable[int]) -> dict[str, int]:
    """Send the deliveries among ``ids`` still queued and due; the task's whole body."""
    claimed = claim(channel, ids)
    if not claimed:
        return {"claimed": 0}
    handler = {Channel.IN_APP: _in_app, Channel.EMAIL: _email, Channel.WEBHOOK: _webhook}[channel]
    token = claimed[0].claim  # recording sends clears it on the instances, before the write that may fail
    try:
        results = handler(claimed)
    except Exception as error:
        # Whatever this task still holds goes back with its error now, rather than to the
        # sweep in 15 minutes with none (rows already recorded as sent hold no claim).
        logger.exception("%s deliveries %s: %s", channel, [d.pk for d in claimed][:20], error)
        for delivery in claimed:
            delivery.claim = token  # rows whose send was recorded hold no claim and are left alone
            delivery.last_error = f"{type(error).__name__}: {error}"[:2000]
        _retry_or_fail(claimed)
        raise
    return {"claimed": len(claimed), **results}


def claim(channel: str, ids: Iterable[int]) -> list[Delivery]:
    token = uuid.uuid4().hex
    now = timezone.now()
    count = (
        Delivery.objects.filter(pk__in=list(ids), channel=channel)
        .due(now)
        .update(status=DeliveryStatus.SENDING, claim=token, claimed_at=now, attempts=F("attempts") + 1, updated_at=now)
    )
    if not count:
        return []
    return list(
        Delivery.objects.filter(claim=token, status=DeliveryStatus.SENDING)
        .select_related("notification", "endpoint")
        .order_by("pk")
    )


# --- Rendering --------------------------------------------------------------------------


def _render_all(deliveries: list[Delivery], *, html: bool) -> dict[int, rendering.Rendered | RenderError]:
    """Each delivery's notification rendered (stored on the notification the first time),
    or the RenderError that stops it. One query for templates, one for company names."""
    notifications = {d.notification_id: d.notification for d in deliveries}
    sources = rendering.sources({(n.company_id, n.kind) for n in notifications.values()})
    names = _company_names({n.company_id for n in notifications.values()} - {None})
    out: dict[int, rendering.Rendered | RenderError] = {}
    fresh: list[Notification] = []
    now = timezone.now()
    for pk, notification in notifications.items():
        source = sources[(notification.company_id, notification.kind)]
        if notification.rendered_at and not (html and source and source.html):
            out[pk] = rendering.Rendered(notification.subject, notification.body, "")
            continue
        try:
            context = rendering.context_of(notification, names.get(notification.company_id, ""))
            out[pk] = rendered = rendering.render(source, context, notification.kind, html=html)
        except RenderError as error:
            out[pk] = error
            continue
        if notification.rendered_at:
            # Rendered before, for the inbox: the email says what the inbox shows; only its HTML is new.
            out[pk] = rendering.Rendered(notification.subject, notification.body, rendered.html)
        else:
            notification.subject, notification.body, notification.rendered_at = rendered.subject, rendered.body, now
            fresh.append(notification)
    if fresh:
        bulk.update_columns(Notification, fresh, ["subject", "body", "rendered_at"])
    return out


def _company_names(ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    model = Notification._meta.get_field("company").related_model
    return {company.pk: str(company) for company in model.objects.filter(pk__in=ids)}


# --- Channels ---------------------------------------------------------------------------


def _in_app(deliveries: list[Delivery]) -> dict[str, int]:
    rendered = _render_all(deliveries, html=False)
    ok, failed = [], []
    for d in deliveries:
        (failed if isinstance(rendered[d.notification_id], RenderError) else ok).append(d)
    now = timezone.now()
    with transaction.atomic():
        Notification.objects.filter(pk__in=[d.notification_id for d in ok], in_app_at=None).update(in_app_at=now)
        _mark_sent(ok, now)
        for d in failed:
            _fail(d, str(rendered[d.notification_id]), now)
    return {"sent": len(ok), "failed": len(failed)}


def _email(deliveries: list[Delivery]) -> dict[str, int]:
    rendered = _render_all(deliveries, html=True)
    sent, failed, retrying, untried = [], 0, [], []
    server_down = False
    now = timezone.now()
    connection = get_connection()
    try:
        for delivery in deliveries:
            result = rendered[delivery.notification_id]
            if isinstance(result, RenderError):
                _fail(delivery, str(result), now)
                failed += 1
                continue
            if server_down:
                untried.append(delivery)
                continue
            message = _email_message(delivery, result, connection)
            if timezone.now() - delivery.claimed_at > SENDING_STALE_AFTER / 2 and not _still_held(delivery):
                continue  # a slow batch: the sweep took this one back and another task sends it
            try:
                connection.open()  # kept open across the batch; reopened after a failure
                connection.send_messages([message])
            except smtplib.SMTPRecipientsRefused as error:
                if any(code < 500 for code, _text in error.recipients.values()):
                    delivery.last_error = f"recipient refused for now: {error.recipients}"[:2000]
                    retrying.append(delivery)  # a 4xx (greylisting, a full mailbox) may pass
                else:
                    _fail(delivery, f"recipient refused: {error.recipients}"[:2000], now)
                    failed += 1
                continue
            except Exception as error:  # SMTP and socket errors alike: the server may recover
                logger.warning("email delivery %s failed: %s", delivery.pk, error)
                delivery.last_error = f"{type(error).__name__}: {error}"[:2000]
                retrying.append(delivery)
                connection.close()  # a broken session is not reused for the next message
                if isinstance(error, UNREACHABLE):
                    # No server to talk to: the rest of the batch would each wait out the time-out.
                    server_down = True
                continue
            delivery.provider_message_id = message.extra_headers["Message-ID"]
            sent.append(delivery)
    finally:
        connection.close()
    _mark_sent(sent, timezone.now())
    _retry_or_fail(retrying)
    _put_back(untried, "not tried: the mail server did not answer this batch")
    return {"sent": len(sent), "failed": failed, "retrying": len(retrying) + len(untried)}


def _still_held(delivery: Delivery) -> bool:
    """Whether the task still holds ``delivery``; saying so keeps the sweep off it."""
    now = timezone.now()
    held = Delivery.objects.filter(pk=delivery.pk, claim=delivery.claim, status=DeliveryStatus.SENDING)
    if not held.update(claimed_at=now):
        return False
    delivery.claimed_at = now
    return True


def _email_message(delivery: Delivery, rendered: rendering.Rendered, connection) -> EmailMultiAlternatives:
    notification = delivery.notification
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "localhost"
    message = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[notification.recipient_email],
        connection=connection,
        headers={
            "Message-ID": make_msgid(f"delivery-{delivery.pk}", domain=domain),
            "X-Countinghouse-Kind": notification.kind,
            "X-Countinghouse-Notification": str(notification.pk),
        },
    )
    if rendered.html:
        message.attach_alternative(rendered.html, "text/html")
    return message


def _webhook(deliveries: list[Delivery]) -> dict[str, int]:
    rendered = _render_all(deliveries, html=False)
    sent, failed, retrying, untried = [], 0, [], []
    unreachable: set[int] = set()
    now = timezone.now()
    for delivery in deliveries:
        endpoint = delivery.endpoint
        result = rendered[delivery.notification_id]
        if isinstance(result, RenderError):
            _fail(delivery, str(result), now)
            failed += 1
            continue
        if not endpoint.active:
            _settle(delivery, DeliveryStatus.SUPPRESSED, webhooks.ENDPOINT_DISABLED, now)
            continue
        if endpoint.pk in unreachable:
            # It gave no answer a moment ago; asking again now only holds the task up.
            untried.append(delivery)
            continue
        try:
            answer = webhooks.post(endpoint, delivery, webhooks.payload(delivery, delivery.notification))
        except SecretUnreadable:
            _fail(delivery, "the endpoint's secret cannot be decrypted (SECRETS_KEYS changed?): set it again", now)
            failed += 1
            continue
        if answer.ok:
            delivery.provider_message_id = answer.message_id[:255]
            _mark_sent([delivery], timezone.now())  # at once: a POST made is not made again
            sent.append(delivery)
            continue
        delivery.last_error = answer.error[:2000]
        if answer.permanent:
            _fail(delivery, delivery.last_error, now)
            failed += 1
            webhooks.record_outcome(endpoint.pk, delivered=False, last_error=delivery.last_error)
            continue
        retrying.append(delivery)
        if answer.unreachable:
            unreachable.add(endpoint.pk)
    for endpoint_id in {d.endpoint_id for d in sent}:
        webhooks.record_outcome(endpoint_id, delivered=True)
    for delivery in _retry_or_fail(retrying):
        webhooks.record_outcome(delivery.endpoint_id, delivered=False, last_error=delivery.last_error)
    _put_back(untried, "not tried: the endpoint gave no answer to this batch")
    return {"sent": len(sent), "failed": failed, "retrying": len(retrying) + len(untried)}


# --- Recording --------------------------------------------------------------------------


def _mark_sent(deliveries: list[Delivery], now: datetime.datetime) -> None:
    if not deliveries:
        return
    for delivery in deliveries:
        delivery.status, delivery.sent_at, delivery.claim, delivery.last_error = DeliveryStatus.SENT, now, "", ""
        delivery.updated_at = now
    bulk.update_columns(
        Delivery, deliveries, ["status", "sent_at", "claim", "last_error", "provider_message_id", "updated_at"]
    )


def _settle(delivery: Delivery, status: str, error: str, now: datetime.datetime) -> None:
    # Only while this task holds it: a row already recorded as sent keeps that.
    Delivery.objects.filter(pk=delivery.pk, claim=delivery.claim, status=DeliveryStatus.SENDING).update(
        status=status, last_error=error[:2000], claim="", updated_at=now
    )


def _fail(delivery: Delivery, error: str, now: datetime.datetime) -> None:
    _settle(delivery, DeliveryStatus.FAILED, error, now)


def backoff(attempts: int) -> float:
    """Seconds before the next attempt: capped exponential with equal jitter."""
    ceiling = min(settings.NOTIFY_RETRY_BACKOFF_MAX, settings.NOTIFY_RETRY_BACKOFF * 2 ** max(attempts - 1, 0))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _retry_or_fail(deliveries: list[Delivery]) -> list[Delivery]:
    """Queue each again after its backoff, or fail it at its last attempt. Returns the ones
    that failed for good."""
    now = timezone.now()
    final = [d for d in deliveries if d.attempts >= settings.NOTIFY_MAX_ATTEMPTS]
    for delivery in final:
        _fail(delivery, delivery.last_error, now)
    # One delay per attempt count, so a batch that failed together is retried together, in one task.
    delays = {attempts: round(backoff(attempts), 3) for attempts in {d.attempts for d in deliveries}}
    again: dict[float, list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        if delivery.attempts < settings.NOTIFY_MAX_ATTEMPTS:
            again[delays[delivery.attempts]].append(delivery)
    for delay, batch in again.items():
        when = now + datetime.timedelta(seconds=delay)
        for delivery in batch:
            Delivery.objects.filter(pk=delivery.pk, claim=delivery.claim, status=DeliveryStatus.SENDING).update(
                status=DeliveryStatus.QUEUED,
                next_attempt_at=when,
                last_error=delivery.last_error,
                claim="",
                updated_at=now,
            )
        ids = [d.pk for d in batch]
        channel = batch[0].channel
        transaction.on_commit(lambda ids=ids, channel=channel, delay=delay: _queue_later(channel, ids, delay))
    return final


def _put_back(deliveries: list[Delivery], reason: str) -> None:
    """Deliveries a batch did not get to, because what they go to gave no answer just
    before: queued again in a task of their own, without using an attempt, so neither a
    slow payload ahead of them nor a long outage fails them unsent."""
    if not deliveries:
        return
    now = timezone.now()
    delay = round(backoff(1), 3)
    ids = [d.pk for d in deliveries]
    Delivery.objects.filter(pk__in=ids, claim=deliveries[0].claim, status=DeliveryStatus.SENDING).update(
        status=DeliveryStatus.QUEUED,
        attempts=F("attempts") - 1,
        next_attempt_at=now + datetime.timedelta(seconds=delay),
        last_error=reason,
        claim="",
        updated_at=now,
    )
    channel = deliveries[0].channel
    transaction.on_commit(lambda: _queue_later(channel, ids, delay))


def _queue_later(channel: str, ids: list[int], delay: float) -> None:
    from notifications import tasks

    tasks.deliver.apply_async((channel, ids), countdown=delay)


# --- Operators --------------------------------------------------------------------------


class NotResendable(Exception):
    pass


def resend(delivery: Delivery) -> Delivery:
    """Queue a failed or suppressed delivery again, with fresh attempts."""
    if delivery.status not in (DeliveryStatus.FAILED, DeliveryStatus.SUPPRESSED):
        raise NotResendable(f"delivery {delivery.pk} is {delivery.status}; only failed or suppressed ones are resent")
    if delivery.endpoint_id and not WebhookEndpoint.objects.filter(pk=delivery.endpoint_id, active=True).exists():
        raise NotResendable(f"delivery {delivery.pk}'s webhook endpoint is disabled; enable it first")
    if delivery.status == DeliveryStatus.SUPPRESSED and delivery.last_error != webhooks.ENDPOINT_DISABLED:
        raise NotResendable(
            f"delivery {delivery.pk} was suppressed: {delivery.last_error}; resending would ignore that"
        )
    now = timezone.now()
    updated = Delivery.objects.filter(pk=delivery.pk, status=delivery.status).update(
        status=DeliveryStatus.QUEUED, attempts=0, next_attempt_at=now, last_error="", claim="", updated_at=now
    )
    if not updated:
        raise NotResendable(f"delivery {delivery.pk} changed meanwhile; look again")
    transaction.on_commit(lambda: dispatch({(delivery.channel, delivery.endpoint_id): [delivery.pk]}), robust=True)
    delivery.refresh_from_db()
    return delivery


def sweep(now: datetime.datetime | None = None) -> dict[str, int]:
    """Queue what is due and has no message on its way: deliveries whose quiet hours
    ended, queued ones whose message was lost, and ones claimed by a worker that died."""
    now = now or timezone.now()
    released = list(
        Delivery.objects.filter(status=DeliveryStatus.WAITING, next_attempt_at__lte=now)
        .order_by("pk")
        .values_list("pk", flat=True)[:SWEEP_LIMIT]
    )
    if released:
        Delivery.objects.filter(pk__in=released, status=DeliveryStatus.WAITING).update(
            status=DeliveryStatus.QUEUED, next_attempt_at=now, updated_at=now
        )
    stale = Delivery.objects.filter(status=DeliveryStatus.SENDING, claimed_at__lt=now - SENDING_STALE_AFTER)
    # A delivery that took its worker down at every attempt stops here, not every 15 minutes forever.
    stale.filter(attempts__gte=settings.NOTIFY_MAX_ATTEMPTS).update(
        status=DeliveryStatus.FAILED, claim="", last_error="its worker was lost at every attempt", updated_at=now
    )
    abandoned = list(stale.order_by("pk").values_list("pk", flat=True)[:SWEEP_LIMIT])
    if abandoned:
        Delivery.objects.filter(pk__in=abandoned, status=DeliveryStatus.SENDING).update(
            status=DeliveryStatus.QUEUED, claim="", next_attempt_at=now, updated_at=now
        )
    lost = list(
        Delivery.objects.filter(status=DeliveryStatus.QUEUED, next_attempt_at__lt=now - STALE_AFTER)
        .exclude(pk__in=released + abandoned)
        .order_by("pk")
        .values_list("pk", flat=True)[:SWEEP_LIMIT]
    )
    if lost:
        # Due from now: sent to the queue again, it counts as lost only once STALE_AFTER passes again.
        Delivery.objects.filter(pk__in=lost, status=DeliveryStatus.QUEUED).update(next_attempt_at=now, updated_at=now)
    queued: dict[tuple[str, int | None], list[int]] = defaultdict(list)
    rows = Delivery.objects.filter(pk__in=released + abandoned + lost).order_by("pk")
    for pk, channel, endpoint in rows.values_list("pk", "channel", "endpoint_id"):
        queued[(channel, endpoint)].append(pk)
    if queued:
        transaction.on_commit(lambda: dispatch(queued), robust=True)
    return {
        "released": len(released),
        "abandoned": len(abandoned),
        "requeued": sum(len(ids) for ids in queued.values()) - len(released) - len(abandoned),
    }
