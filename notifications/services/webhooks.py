"""Webhook push: the JSON body, its signature, the POST, and switching off an endpoint
that keeps failing.

Each request carries

    Countinghouse-Delivery: <delivery id>   (the same on every retry; dedupe on it)
    Countinghouse-Event: <kind>
    Countinghouse-Timestamp: <unix seconds>
    Countinghouse-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<raw body>" keyed by the secret>

A receiver recomputes the HMAC over the raw body, compares in constant time, and refuses a
timestamp more than a few minutes old (a replay). The README has the snippet.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import http.client
import ipaddress
import json
import secrets
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.encoding import iri_to_uri

from notifications.models import Delivery, DeliveryStatus, Notification, Priority, WebhookEndpoint

SIGNATURE_HEADER = "Countinghouse-Signature"
TIMESTAMP_HEADER = "Countinghouse-Timestamp"
USER_AGENT = "Countinghouse-Webhooks/1"
ENDPOINT_DISABLED = "endpoint disabled"  # the reason on deliveries set aside; they may be resent
RESPONSE_KEPT = 300  # characters of a failing answer kept as the delivery's error


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, tolerance: int = 300) -> bool:
    """What a receiver does; the tests' receiver uses it, and the README shows it."""
    if not isinstance(signature, str):
        return False  # no signature header at all
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(time.time() - sent_at) > tolerance:
        return False
    # Compared as bytes: compare_digest refuses a str with characters outside ASCII.
    return hmac.compare_digest(sign(secret, sent_at, body).encode(), signature.encode("utf-8", "replace"))


def payload(delivery: Delivery, notification: Notification) -> bytes:
    return json.dumps(
        {
            "id": f"dlv_{delivery.pk}",
            "notification": notification.pk,
            "kind": notification.kind,
            "company": notification.company_id,
            "priority": notification.priority,
            "created_at": notification.created_at,
            "recipient": {
                "key": notification.recipient_key,
                "name": notification.recipient_name,
                "email": notification.recipient_email,
            },
            "subject": notification.subject,
            "body": notification.body,
            "data": notification.data,
        },
        cls=DjangoJSONEncoder,
        separators=(",", ":"),
    ).encode()


@dataclass(frozen=True)
class Answer:
    ok: bool
    error: str = ""
    message_id: str = ""
    unreachable: bool = False  # no answer at all: the endpoint's other deliveries will fare no better now
    permanent: bool = False  # retrying cannot help


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as the 3xx it is. Followed, urllib would turn the POST into a
    GET without its body, and a 200 from wherever it lands would count as delivered."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address that was checked, not to whatever a second lookup of the
    host answers: a name that resolved to a public address for the check and to a private
    one for the connection (DNS rebinding) would otherwise get past it."""

    def __init__(self, *args, address: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout, self.source_address)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """As above; the certificate is still checked against the URL's host name."""

    def __init__(self, *args, address: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout, self.source_address)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _pinned_opener(address: str) -> urllib.request.OpenerDirector:
    class Http(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(functools.partial(_PinnedHTTPConnection, address=address), req)

    class Https(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(functools.partial(_PinnedHTTPSConnection, address=address), req, context=self._context)

    # No proxy from the environment: the connection goes to the checked address or nowhere.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects, Http, Https)


@dataclass(frozen=True)
class Destination:
    refusal: str = ""  # why the URL may not be posted to; empty when it may
    address: str = ""  # the checked address to connect to; empty when any will do


def destination(url: str) -> Destination:
    """Where a webhook to ``url`` may go. Endpoints are the companies' to set, so without
    NOTIFY_WEBHOOK_ALLOW_PRIVATE a URL that resolves to a loopback, private, link-local or
    otherwise non-public address is refused: the platform's own network (a metadata
    service, an admin port) is not for its tenants to probe."""
    if settings.NOTIFY_WEBHOOK_ALLOW_PRIVATE:
        return Destination()
    host = urlsplit(url).hostname
    if not host:
        return Destination("the URL names no host")
    try:
        addresses = sorted({info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)})
    except (socket.gaierror, UnicodeError):
        return Destination()  # unresolvable now: the POST fails and is retried like any other outage
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global or ip.is_multicast:
            return Destination(f"{host} resolves to {ip}, which is not a public address")
    return Destination(address=addresses[0])


def destination_refusal(url: str) -> str:
    return destination(url).refusal


def validate_destination(url: str) -> None:
    """The API's and admin's check of an endpoint URL (see ``destination_refusal``)."""
    refusal = destination_refusal(url)
    if refusal:
        raise ValidationError(f"Webhooks go to public addresses: {refusal}.")


def post(endpoint: WebhookEndpoint, delivery: Delivery, body: bytes) -> Answer:
    where = destination(endpoint.url)
    if where.refusal:
        return Answer(False, f"refused: {where.refusal}", permanent=True)
    opener = _pinned_opener(where.address) if where.address else _opener
    timestamp = int(time.time())
    request = urllib.request.Request(
        iri_to_uri(endpoint.url),
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Countinghouse-Delivery": f"dlv_{delivery.pk}",
            "Countinghouse-Event": delivery.notification.kind,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(endpoint.secret, timestamp, body),
        },
    )
    try:
        with opener.open(request, timeout=settings.NOTIFY_WEBHOOK_TIMEOUT) as response:
            return Answer(True, message_id=response.headers.get("X-Request-Id", "") or f"http-{response.status}")
    except urllib.error.HTTPError as error:
        text = error.read(RESPONSE_KEPT).decode("utf-8", "replace")
        return Answer(False, f"HTTP {error.code}: {text}".strip())
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        return Answer(False, f"no answer: {reason}", unreachable=True)
    except (http.client.HTTPException, ValueError) as error:  # a garbled answer, a URL urllib cannot send
        return Answer(False, f"bad answer: {type(error).__name__}: {error}"[:RESPONSE_KEPT])


def record_outcome(endpoint_id: int, *, delivered: bool, last_error: str = "") -> None:
    """A delivery to the endpoint succeeded or finally failed: reset or count the failures,
    and disable the endpoint at NOTIFY_WEBHOOK_DISABLE_AFTER."""
    endpoints = WebhookEndpoint.objects.filter(pk=endpoint_id)
    if delivered:
        endpoints.exclude(consecutive_failures=0).update(consecutive_failures=0)
        return
    with transaction.atomic():
        endpoints.update(consecutive_failures=F("consecutive_failures") + 1)
        endpoint = endpoints.select_for_update().first()
        if endpoint is None or not endpoint.active:
            return
        if endpoint.consecutive_failures < settings.NOTIFY_WEBHOOK_DISABLE_AFTER:
            return
        disable(endpoint, f"{endpoint.consecutive_failures} deliveries in a row failed; last: {last_error[:200]}")


def disable(endpoint: WebhookEndpoint, reason: str) -> None:
    """Switch the endpoint off, set aside what waits for it, and tell staff."""
    from notifications.services import staff

    now = timezone.now()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        active=False, disabled_at=now, disabled_reason=reason[:300], updated_at=now
    )
    Delivery.objects.filter(endpoint=endpoint, status__in=[DeliveryStatus.QUEUED, DeliveryStatus.WAITING]).update(
        status=DeliveryStatus.SUPPRESSED, last_error=ENDPOINT_DISABLED, claim="", updated_at=now
    )
    staff.notify_staff(
        "webhook_disabled",
        {
            "endpoint": endpoint.name,
            "url": endpoint.url,
            "company": str(endpoint.company),
            "failures": endpoint.consecutive_failures,
            "error": reason,
        },
        dedupe_key=f"webhook_disabled:{endpoint.pk}:{int(now.timestamp())}",
        priority=Priority.HIGH,
    )


def enable(endpoint: WebhookEndpoint) -> None:
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        active=True, disabled_at=None, disabled_reason="", consecutive_failures=0, updated_at=timezone.now()
    )
