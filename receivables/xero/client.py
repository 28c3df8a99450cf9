"""Xero's official SDK, set up per connection: tokens bound to the connection's grant and
refreshed before they expire (see ``tokens``), every call through the governor and retried
as it should be.

SDK facts this module leans on (xero-python 15):
- ``Configuration()`` returns a copy of the first instance ever made in the process, so a
  client's ``oauth2_token`` is set on its own copy explicitly, never passed to the constructor.
- ``AccountingApi`` and ``IdentityApi`` take the app's base URLs.
- The SDK refreshes on its own, through its token getter and saver, when a token is within a
  minute of expiring. Here the token is refreshed earlier, under the grant's row lock, and the
  SDK's own refresh is routed to the same place.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import urllib3
from xero_python.accounting import AccountingApi
from xero_python.api_client.oauth2 import OAuth2Token
from xero_python.exceptions import ApiException, HTTPStatusException
from xero_python.identity import IdentityApi

from receivables.models import XeroApp, XeroConnection, XeroGrant
from receivables.xero.errors import (
    MalformedAnswer,
    NotConfigured,
    RateLimited,
    TokenRefused,
    XeroError,
    XeroRefused,
    XeroUnavailable,
    detail,
    status_of,
)
from receivables.xero.governor import Governor, default_governor
from receivables.xero.tokens import needs_refresh, new_api_client, refresh_grant
from receivables.xero.tuning import DEFAULT_TUNING, RETRYABLE_STATUSES, Tuning

__all__ = ["DEFAULT_TUNING", "Tuning", "XeroSession", "app_key"]

logger = logging.getLogger(__name__)


def app_key(app: XeroApp) -> str:
    """The app's name in the governor."""
    return f"app{app.pk}"


# --- Sessions ------------------------------------------------------------------------------------


class _GrantToken(OAuth2Token):
    """The SDK's token for one session: its own refresh goes through the session's locked
    refresh at the app's token URL, never through TokenApi's class attribute."""

    def __init__(self, session: XeroSession) -> None:
        super().__init__(client_id=session.app.client_id, client_secret=session.app.client_secret)
        self.session = session

    def refresh_access_token(self, api_client) -> bool:
        self.session.refresh()
        self.update_token(**self.session.token())
        return True


# --- Sessions ------------------------------------------------------------------------------------


class XeroSession:
    """The SDK's clients for one grant (and tenant): ``accounting`` and ``identity``, and
    ``call`` to make a governed, retried call with them."""

    def __init__(
        self,
        app: XeroApp,
        grant: XeroGrant,
        *,
        tenant_id: str | None = None,
        governor: Governor | None = None,
        tuning: Tuning | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.app, self.grant, self.tenant_id = app, grant, tenant_id
        self.governor = governor or default_governor()
        self.tuning = tuning or DEFAULT_TUNING
        self.sleep = sleep
        self.calls = 0
        self.retries = 0
        self.rate_limited = 0
        self._access_token = grant.access_token
        self.api_client = new_api_client(oauth2_token_getter=self.token, oauth2_token_saver=self._saved)
        # A copy of the process's first Configuration: its token may be another app's.
        self.api_client.configuration.oauth2_token = _GrantToken(self)
        self.accounting = AccountingApi(self.api_client, base_url=app.api_url)
        self.identity = IdentityApi(self.api_client, base_url=app.identity_url)

    @classmethod
    def for_connection(cls, connection: XeroConnection, **options) -> XeroSession:
        if not connection.app.active:
            raise NotConfigured(f"the Xero app {connection.app.name} is inactive")
        if connection.grant_id is None:
            raise NotConfigured("the connection has no grant; connect the app again (manage.py xero_connect)")
        grant = connection.grant
        if grant.app_id != connection.app_id:
            raise NotConfigured("the connection's grant belongs to another Xero app; connect it again")
        grant.app = connection.app
        return cls(connection.app, grant, tenant_id=connection.tenant_id, **options)

    # Tokens
    def token(self) -> dict[str, Any]:
        """The SDK's token dict for the grant as this session knows it."""
        expires_at = self.grant.expires_at.timestamp() if self.grant.expires_at else None
        return {
            "access_token": self._access_token,
            "refresh_token": None,  # the SDK never refreshes by itself here (see _GrantToken)
            "scope": list(self.grant.scopes or []),
            "expires_in": max(0, int(expires_at - time.time())) if expires_at else None,
            "expires_at": expires_at,
            "token_type": "Bearer",
            "id_token": None,
        }

    def _saved(self, token: dict) -> None:
        """The SDK's token saver: refreshes are saved by refresh_grant, nothing to do."""

    def ensure_fresh(self) -> None:
        if needs_refresh(self.grant, self.tuning.refresh_margin):
            self.refresh()

    def refresh(self, *, stale_access_token: str | None = None, force: bool = False) -> None:
        self.grant = refresh_grant(
            self.grant, stale_access_token=stale_access_token, force=force, tuning=self.tuning, sleep=self.sleep
        )
        self._access_token = self.grant.access_token

    # Calls
    def call(self, operation: Callable, *args, **kwargs) -> Any:
        """One Xero call: in a governor slot; a 429 blocks the tenant (or app) for its
        Retry-After and is asked again; 5xx and network failures are retried with backoff;
        a 401 refreshes the token once. Anything else raises a XeroError."""
        tuning = self.tuning
        failures = limited = 0
        reauthorised = False
        timeout = (tuning.connect_timeout, tuning.read_timeout)
        while True:
            self.ensure_fresh()
            used = self._access_token
            try:
                with self.governor.slot(app_key(self.app), self.tenant_id, app_limit=self.app.calls_per_minute):
                    self.calls += 1
                    return operation(*args, _request_timeout=timeout, **kwargs)
            except HTTPStatusException as exc:
                status = status_of(exc)
                if status == 429:
                    limited += 1
                    self.rate_limited += 1
                    if limited > tuning.rate_limited:
                        raise RateLimited(f"Xero answered 429 {limited} times in a row", 0) from None
                    seconds, problem = _retry_after(exc)
                    logger.info("Xero 429 (%s) for %s: waiting %ss", problem or "limit", self._who(), seconds)
                    self.governor.block(app_key(self.app), self.tenant_id, seconds, problem)
                    continue
                if status == 401 and not reauthorised:
                    reauthorised = True
                    self.refresh(stale_access_token=used)
                    continue
                if status in RETRYABLE_STATUSES:
                    failures += 1
                    if failures >= tuning.attempts:
                        raise XeroUnavailable(f"Xero answered {status} {failures} times{detail(exc)}") from None
                    self._retry(failures)
                    continue
                raise _refusal(status, exc) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                failures += 1
                if failures >= tuning.attempts:
                    raise XeroUnavailable(f"Xero did not answer {failures} times ({type(exc).__name__})") from None
                self._retry(failures)
            except ApiException as exc:
                raise XeroError(f"the Xero call failed: {exc.reason or type(exc).__name__}") from None
            except ValueError as exc:
                raise MalformedAnswer(
                    f"Xero answered with something that is not the expected JSON ({exc})"[:300]
                ) from None

    def _retry(self, failures: int) -> None:
        self.retries += 1
        self.sleep(self.tuning.pause(failures))

    def _who(self) -> str:
        return self.tenant_id or f"app {self.app.name}"


def _refusal(status: int | None, exc: ApiException) -> XeroRefused:
    if status == 401:
        return TokenRefused("Xero refused the access token even after a refresh (401)", status)
    if status == 403:
        return XeroRefused(f"Xero refused access to this organisation (403){detail(exc)}", status)
    return XeroRefused(f"Xero refused the request ({status}){detail(exc)}", status)


def _retry_after(exc: ApiException) -> tuple[float, str]:
    headers = {name.lower(): value for name, value in (exc.headers or {}).items()}
    problem = headers.get("x-rate-limit-problem", "")
    try:
        seconds = float(headers.get("retry-after", ""))
    except ValueError:
        seconds = 60.0  # Xero always says; a minute is the window that most often fills
    return max(seconds, 1.0), problem
