"""What goes wrong talking to Xero. Every message is safe to store on a connection and show
to an operator: it never carries a token or a secret."""

from __future__ import annotations

import json


class XeroError(Exception):
    """A Xero call, a token refresh or a sync failed."""


class XeroUnavailable(XeroError):
    """Xero did not answer, or answered 5xx, every time it was asked."""


class XeroRefused(XeroError):
    """Xero refused the request (4xx): no access to the organisation, a bad filter."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TokenRefused(XeroRefused):
    """Xero refused the grant's refresh token or the app's credentials: connect again."""


class MalformedAnswer(XeroError):
    """Xero answered with something that is not the JSON it documents."""


class RateLimited(XeroError):
    """Xero's limits leave no call for longer than a worker should wait."""

    def __init__(self, message: str, wait: float) -> None:
        super().__init__(message)
        self.wait = wait


class NotConfigured(XeroError):
    """The connection cannot be synced as it is set up (no grant, inactive app)."""


class SyncInProgress(XeroError):
    """Another sync of the same connection is running."""


class SyncFailed(XeroError):
    """A connection's sync failed; the reason is recorded on the connection."""

    def __init__(self, connection, reason: str) -> None:
        super().__init__(reason)
        self.connection = connection
        self.reason = reason


# --- Reading the SDK's exceptions -------------------------------------------------------------------


def status_of(exc) -> int | None:
    """The HTTP status of an SDK exception. The accounting API's 400 exception computes
    ``status`` from the body; the response's own is plain."""
    response = getattr(exc, "http_resp", None)
    return getattr(response, "status", None) or exc.status


def json_field(exc, name: str) -> str:
    """A field of the error's JSON body (Xero's words), or nothing."""
    try:
        value = json.loads(exc.body or b"{}")
    except ValueError:
        return ""
    return str(value.get(name) or "")[:200] if isinstance(value, dict) else ""


def detail(exc) -> str:
    """Xero's own words on a failure (its JSON's Detail, Message or Title), never headers."""
    for name in ("Detail", "Message", "Title"):
        text = json_field(exc, name)
        if text:
            return f": {text}"
    return ""
