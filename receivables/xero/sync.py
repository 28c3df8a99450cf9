"""Syncing Xero organisations into receivables' tables.

``sync_connection`` reads one organisation's contacts, ACCREC invoices, credit notes,
overpayments, prepayments and payments, a page of up to 1,000 at a time, every call through
the governor. After the first sync it asks only for what changed (If-Modified-Since, a
watermark per kind on the connection), and writes only what differs, so a sync that finds
nothing new changes nothing and leaves the connection's ``data_version`` (which the report
cache keys on) alone. Each page commits on its own; a sync that fails half-way is taken up
again by the next, which asks again from the last watermark saved.

``discover_connections`` asks Xero which organisations a grant reaches and records them.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from receivables.models import Document, XeroApp, XeroConnection, XeroGrant
from receivables.xero import normalise, store
from receivables.xero.client import Tuning, XeroSession
from receivables.xero.errors import MalformedAnswer, SyncFailed, SyncInProgress, XeroError
from receivables.xero.governor import Governor

logger = logging.getLogger(__name__)

# Xero's clock and ours need not agree, and a document changed while its kind was being
# paged may sit on a page already read: the next sync asks again from a little before.
WATERMARK_SLACK = datetime.timedelta(minutes=5)
MAX_PAGES = 10_000  # 10 million documents of one kind: a server paging for ever, not a real organisation
ERROR_LENGTH = 1000


@dataclass(frozen=True)
class Kind:
    name: str  # the watermark's key
    method: str  # AccountingApi's
    attribute: str  # the answer's list
    where: str = ""


KINDS = (
    Kind("contacts", "get_contacts", "contacts"),
    Kind("invoices", "get_invoices", "invoices", 'Type=="ACCREC"'),
    Kind("credit_notes", "get_credit_notes", "credit_notes", 'Type=="ACCRECCREDIT"'),
    Kind("overpayments", "get_overpayments", "overpayments", 'Type=="RECEIVE-OVERPAYMENT"'),
    Kind("prepayments", "get_prepayments", "prepayments", 'Type=="RECEIVE-PREPAYMENT"'),
    Kind("payments", "get_payments", "payments", " OR ".join(f'PaymentType=="{t}"' for t in normalise.PAYMENT_TYPES)),
)


@dataclass
class SyncResult:
    connection: int
    tenant: str
    full: bool
    fetched: dict[str, int] = field(default_factory=dict)  # per kind, what Xero sent
    written: store.Written = field(default_factory=store.Written)
    calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)  # documents left out, and why

    @property
    def changed(self) -> bool:
        return self.written.changed

    @property
    def fetched_total(self) -> int:
        return sum(self.fetched.values())

    def summary(self) -> str:
        written = self.written
        return (
            f"{self.fetched_total:,} fetched, {written.created:,} new, {written.updated:,} changed, "
            f"{written.removed:,} removed in {self.calls} calls, {self.seconds:.1f}s"
        )


def sync_connection(
    connection: XeroConnection,
    *,
    full: bool = False,
    governor: Governor | None = None,
    tuning: Tuning | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> SyncResult:
    """Sync one organisation (``full``: everything, and remove what Xero no longer has).
    A failure is recorded on the connection (``last_error``, ``failed_at``) and raised as
    SyncFailed; another sync of it still running raises SyncInProgress."""
    started = time.monotonic()
    _claim(connection)
    try:
        session = XeroSession.for_connection(connection, governor=governor, tuning=tuning, sleep=sleep)
        result = _sync(connection, session, full)
    except BaseException as exc:
        reason = _reason(exc, connection)
        now = timezone.now()
        XeroConnection.objects.filter(pk=connection.pk).update(last_error=reason, failed_at=now)
        connection.last_error, connection.failed_at = reason, now
        if not isinstance(exc, Exception):
            raise  # an interrupt: the claim is released above, the rest is the caller's
        logger.warning("Xero sync of %s (%s) failed: %s", connection.label, connection.tenant_id, reason)
        raise SyncFailed(connection, reason) from exc
    result.calls, result.retries, result.rate_limited = session.calls, session.retries, session.rate_limited
    result.seconds = time.monotonic() - started
    now = timezone.now()
    bump = {"data_version": F("data_version") + 1} if result.changed else {}
    XeroConnection.objects.filter(pk=connection.pk).update(last_synced_at=now, last_error="", **bump)
    connection.refresh_from_db(fields=["data_version", "last_synced_at", "last_error", "watermarks", "base_currency"])
    logger.info("Xero sync of %s (%s): %s", connection.label, connection.tenant_id, result.summary())
    return result


def _claim(connection: XeroConnection) -> None:
    """Mark the sync started, unless another is running (started, not yet finished or
    failed, and younger than a task may live)."""
    now = timezone.now()
    lapsed = now - datetime.timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    idle = (
        Q(last_sync_started_at__isnull=True)
        | Q(last_sync_started_at__lt=lapsed)
        | Q(last_synced_at__gte=F("last_sync_started_at"))
        | Q(failed_at__gte=F("last_sync_started_at"))
    )
    if not XeroConnection.objects.filter(idle, pk=connection.pk).update(last_sync_started_at=now):
        raise SyncInProgress(f"{connection.label} is being synced already")
    connection.last_sync_started_at = now


def _sync(connection: XeroConnection, session: XeroSession, full: bool) -> SyncResult:
    tenant = connection.tenant_id
    result = SyncResult(connection.pk, tenant, full)
    # An organisation renamed in Xero: its documents carry the new name into reports.
    result.written.renamed += (
        Document.objects.filter(connection=connection)
        .exclude(company_label=connection.label)
        .update(company_label=connection.label)
    )
    if full or not connection.base_currency:
        answer = session.call(session.accounting.get_organisations, tenant)
        organisations = answer.organisations or []
        base = normalise.text(organisations[0].base_currency) if organisations else ""
        if base and base != connection.base_currency:
            XeroConnection.objects.filter(pk=connection.pk).update(base_currency=base)
            connection.base_currency = base
    watermarks = {} if full else dict(connection.watermarks or {})
    seen_documents: set[str] = set()
    seen_allocations: set[str] = set()
    size = session.tuning.page_size
    for kind in KINDS:
        since = _parse(watermarks.get(kind.name))
        asked_at = timezone.now()
        newest = since
        options = {"page_size": size}
        if kind.where:
            options["where"] = kind.where
        if since is not None:
            # Xero reads the header as UTC, to the second.
            options["if_modified_since"] = since.astimezone(datetime.UTC).replace(tzinfo=None, microsecond=0)
        result.fetched[kind.name] = 0
        for number in count(1):
            if number > MAX_PAGES:
                raise MalformedAnswer(f"Xero kept paging {kind.name} past page {MAX_PAGES}")
            answer = session.call(getattr(session.accounting, kind.method), tenant, page=number, **options)
            items = getattr(answer, kind.attribute, None) or []
            result.fetched[kind.name] += len(items)
            if kind.name == "contacts":
                rows, top = normalise.contacts(items)
                result.written.add(store.write_contacts(connection, rows))
            else:
                page = _normalise(kind, items, connection)
                result.written.add(store.write_page(connection, page))
                result.skipped.extend(page.skipped)
                seen_documents.update(page.documents)
                seen_allocations.update(page.allocations)
                top = page.newest
            if top is not None and (newest is None or top > newest):
                newest = top
            pagination = getattr(answer, "pagination", None)
            last_page = getattr(pagination, "page_count", None)
            if len(items) < size or (last_page is not None and number >= last_page):
                break
        mark = min(newest, asked_at - WATERMARK_SLACK).isoformat() if newest is not None else None
        if mark is not None and mark != watermarks.get(kind.name):
            watermarks[kind.name] = mark
            XeroConnection.objects.filter(pk=connection.pk).update(watermarks=watermarks)
    if full:
        result.written.add(store.remove_unseen(connection, seen_documents, seen_allocations))
    return result


def _normalise(kind: Kind, items: list, connection: XeroConnection) -> normalise.Page:
    label, base = connection.label, connection.base_currency
    if kind.name == "invoices":
        return normalise.invoices(items, label, base)
    if kind.name == "payments":
        return normalise.payments(items, label, base)
    return normalise.credits(kind.name, items, label, base)


def _parse(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None  # a watermark nobody can read: ask for everything again
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _reason(exc: BaseException, connection: XeroConnection) -> str:
    """What to record: a XeroError's own words, or the error's type and first line, with
    any of the connection's secrets struck out should one have found its way in."""
    if isinstance(exc, XeroError):
        reason = str(exc)
    elif not isinstance(exc, Exception):
        reason = f"interrupted ({type(exc).__name__})"
    else:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        reason = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    for secret in _secrets(connection):
        reason = reason.replace(secret, "[secret]")
    return reason[:ERROR_LENGTH]


def _secrets(connection: XeroConnection) -> list[str]:
    found = []
    try:
        found.append(connection.app.client_secret)
        if connection.grant_id is not None:
            found += [connection.grant.access_token, connection.grant.refresh_token]
    except Exception:  # an unreadable secret cannot leak either
        logger.debug("a secret of connection %s could not be read", connection.pk)
    return [secret for secret in found if secret and len(secret) >= 8]


# --- Which organisations -----------------------------------------------------------------------


@dataclass
class Discovery:
    grant: int
    connections: list[XeroConnection]
    created: list[XeroConnection]
    missing: list[XeroConnection]  # linked to the grant here, no longer reached by it in Xero


def discover_connections(
    grant: XeroGrant, *, governor: Governor | None = None, tuning: Tuning | None = None
) -> Discovery:
    """Ask Xero (GET /connections) which organisations the grant reaches; record each as a
    connection of the grant's app, linked to this grant. Connections an operator made
    inactive stay inactive."""
    app = grant.app
    session = XeroSession(app, grant, governor=governor, tuning=tuning)
    listed = session.call(session.identity.get_connections) or []
    connections, created = [], []
    for found in listed:
        if normalise.text(found.tenant_type) not in ("", "ORGANISATION") or not found.tenant_id:
            continue  # a practice or a workflow tenant has no accounting to sync
        name = normalise.text(found.tenant_name)[: XeroConnection._meta.get_field("tenant_name").max_length]
        connection, made = XeroConnection.objects.get_or_create(
            app=app, tenant_id=normalise.text(found.tenant_id), defaults={"tenant_name": name, "grant": grant}
        )
        if made:
            created.append(connection)
        else:
            # Every grant of one Xero user lists all the user's organisations: a connection
            # keeps the grant it has (any of them reaches it) rather than flip between them.
            changes = {"tenant_name": name} if name and name != connection.tenant_name else {}
            if connection.grant_id is None:
                changes["grant"] = grant
            if changes:
                XeroConnection.objects.filter(pk=connection.pk).update(**changes)
                for field_name, value in changes.items():
                    setattr(connection, field_name, value)
        connections.append(connection)
    reached = {connection.pk for connection in connections}
    missing = list(XeroConnection.objects.filter(grant=grant).exclude(pk__in=reached).order_by("pk"))
    return Discovery(grant.pk, connections, created, missing)


def connections_to_sync(app: str | None = None) -> list[XeroConnection]:
    """The active connections of active apps (of the app named ``app``), in a stable order.
    An unknown app name raises LookupError."""
    chosen = XeroConnection.objects.active().select_related("app", "grant")
    if app:
        if not XeroApp.objects.filter(name=app).exists():
            raise LookupError(f"no Xero app named {app!r}")
        chosen = chosen.filter(app__name=app)
    return list(chosen.order_by("app__name", "tenant_name", "pk"))
