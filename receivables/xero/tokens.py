"""Xero's OAuth tokens: spent at an app's own token URL with the SDK's mechanics, stored
encrypted on the grant, refreshed under the grant's row lock.

The SDK's refresh URL is the class attribute ``TokenApi.refresh_token_url``. Refreshes here
use a subclass that sets it on the instance, so an app's token URL never leaks into another
app's client (a worker may hold clients of several apps) and no global is changed.

Xero rotates refresh tokens: the one spent is dead once the answer arrives (Xero honours it
again for 30 minutes in case the answer was lost). Tenants of one grant share its tokens, so
a refresh takes the grant's row lock and re-reads it: a second tenant waiting on the lock
finds the token the first just got instead of spending a rotated refresh token.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import urllib3
from django.db import connection as db_connection
from django.db import transaction
from django.utils import timezone
from xero_python.api_client import ApiClient, Configuration
from xero_python.api_client.oauth2 import OAuth2Token, TokenApi
from xero_python.exceptions import ApiException, HTTPStatusException

from receivables.models import XeroApp, XeroGrant
from receivables.xero.errors import MalformedAnswer, TokenRefused, XeroUnavailable, json_field, status_of
from receivables.xero.tuning import DEFAULT_TUNING, RETRYABLE_STATUSES, Tuning

logger = logging.getLogger(__name__)


class _AppTokenApi(TokenApi):
    """The SDK's token API at one app's token URL (an instance attribute, thread-safe)."""

    def __init__(self, api_client, client_id: str, client_secret: str, url: str) -> None:
        super().__init__(api_client, client_id, client_secret)
        self.refresh_token_url = url


class _Timed:
    """An ApiClient whose calls carry a timeout: the SDK's token API passes none, and
    urllib3 would then wait for ever on a server that accepted and went quiet."""

    def __init__(self, client: ApiClient, timeout: tuple[float, float]) -> None:
        self.client, self.timeout = client, timeout

    def call_api(self, *args, **kwargs):
        kwargs.setdefault("_request_timeout", self.timeout)
        return self.client.call_api(*args, **kwargs)


def new_api_client(**callbacks) -> ApiClient:
    """An SDK client on a Configuration of its own (a copy, see client), without urllib3's
    retries: every retry here is a call of its own through the governor, where urllib3's
    would count against Xero's limits unseen."""
    api_client = ApiClient(Configuration(), **callbacks)
    api_client.rest_client.pool_manager.connection_pool_kw["retries"] = False
    return api_client


def fetch_tokens(
    app: XeroApp,
    refresh_token: str,
    scopes: list[str],
    *,
    tuning: Tuning = DEFAULT_TUNING,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Spend ``refresh_token`` at the app's token URL: the SDK's token dict (``access_token``,
    ``refresh_token``, ``scope`` as a list, ``expires_at``). A 5xx or a lost answer is asked
    again (Xero honours a spent refresh token for 30 minutes); a refusal raises TokenRefused."""
    if not refresh_token:
        raise TokenRefused("the grant has no refresh token; connect the app again (manage.py xero_connect)")
    sdk_token = OAuth2Token(client_id=app.client_id, client_secret=app.client_secret)
    sdk_token.update_token(
        access_token=None, scope=list(scopes or []), expires_in=None, token_type="Bearer", refresh_token=refresh_token
    )
    api_client = new_api_client()
    token_api = _AppTokenApi(
        _Timed(api_client, (tuning.connect_timeout, tuning.read_timeout)),
        app.client_id,
        app.client_secret,
        app.token_url,
    )
    failures = 0
    while True:
        try:
            token = sdk_token.fetch_access_token(token_api)
        except HTTPStatusException as exc:
            status = status_of(exc)
            if status in RETRYABLE_STATUSES and failures + 1 < tuning.attempts:
                failures += 1
                sleep(tuning.pause(failures))
                continue
            if status in RETRYABLE_STATUSES:
                raise XeroUnavailable(f"Xero's token service answered {status} {tuning.attempts} times") from None
            error = json_field(exc, "error") or f"HTTP {status}"
            if error == "invalid_client":
                raise TokenRefused("Xero refused the app's client id or secret (invalid_client)", status) from None
            raise TokenRefused(
                f"Xero refused the grant's refresh token ({error}); connect the app again (manage.py xero_connect)",
                status,
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            failures += 1
            if failures >= tuning.attempts:
                raise XeroUnavailable(f"Xero's token service did not answer ({type(exc).__name__})") from None
            sleep(tuning.pause(failures))
            continue
        except ValueError:
            raise MalformedAnswer("Xero's token service answered with something that is not a token") from None
        except ApiException as exc:
            raise XeroUnavailable(f"Xero's token service could not be reached ({exc.reason or 'no reason'})") from None
        if not isinstance(token, dict) or not token.get("access_token"):
            raise MalformedAnswer("Xero's token service answered without an access token")
        return token


def store_tokens(grant: XeroGrant, token: dict[str, Any]) -> None:
    """Put a token dict on the grant (encrypted by the model) and save those fields."""
    grant.access_token = token["access_token"]
    grant.refresh_token = token.get("refresh_token") or grant.refresh_token
    expires_at = token.get("expires_at")
    grant.expires_at = datetime.datetime.fromtimestamp(expires_at, datetime.UTC) if expires_at else None
    if token.get("scope"):
        grant.scopes = list(token["scope"])
    grant.refreshed_at = timezone.now()
    if grant.pk:
        grant.save(
            update_fields=[
                "access_token_encrypted",
                "refresh_token_encrypted",
                "expires_at",
                "scopes",
                "refreshed_at",
            ]
        )


def needs_refresh(grant: XeroGrant, margin: float, now: datetime.datetime | None = None) -> bool:
    if not grant.access_token_encrypted or grant.expires_at is None:
        return True
    return grant.expires_at <= (now or timezone.now()) + datetime.timedelta(seconds=margin)


def refresh_grant(
    grant: XeroGrant,
    *,
    stale_access_token: str | None = None,
    force: bool = False,
    tuning: Tuning = DEFAULT_TUNING,
    sleep: Callable[[float], None] = time.sleep,
) -> XeroGrant:
    """The grant with a fresh access token, refreshed under its row lock only when still
    needed once the lock is held: when it expires within the margin, when Xero refused
    ``stale_access_token`` and nobody has replaced it yet, or when ``force``d."""

    def locked() -> XeroGrant:
        with transaction.atomic():
            current = XeroGrant.objects.select_for_update().select_related("app").get(pk=grant.pk)
            if stale_access_token is not None:
                due = current.access_token == stale_access_token
            else:
                due = force or needs_refresh(current, tuning.refresh_margin)
            if not due:
                return current  # another worker refreshed it while this one waited for the lock
            token = fetch_tokens(current.app, current.refresh_token, current.scopes, tuning=tuning, sleep=sleep)
            store_tokens(current, token)
            logger.info("refreshed Xero grant %s of app %s", current.pk, current.app.name)
            return current

    return in_own_transaction(locked)


def in_own_transaction(work: Callable[[], Any]) -> Any:
    """Run ``work`` so that what it commits is committed at once.

    A job's chunk runs in one transaction. On PostgreSQL, a token refreshed inside it would
    keep the grant's row locked for the whole sync (the other tenants of the grant waiting)
    and would be lost if the chunk rolled back, after Xero had rotated the refresh token. So
    there the refresh runs on a thread of its own, with its own connection and transaction.
    SQLite has one writer: the chunk's transaction already holds the write lock, and a second
    connection would wait on it for ever, so there the work runs in place (a savepoint)."""
    if db_connection.vendor == "postgresql" and db_connection.in_atomic_block:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="xero-token") as pool:
            return pool.submit(_closing_connection, work).result()
    return work()


def _closing_connection(work: Callable[[], Any]) -> Any:
    try:
        return work()
    finally:
        db_connection.close()  # this thread's own
