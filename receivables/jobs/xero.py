"""XERO_SYNC: every active Xero organisation synced, hourly, on the ``receivables`` queue.

The run first asks Xero which organisations each grant reaches (so an organisation newly
connected to an existing grant is picked up), then fans out one chunk per active
connection, so organisations sync in parallel on as many workers as there are, all under
the one governor that keeps every worker within Xero's limits together.

A tenant that fails (Xero down for it, its grant refused, a malformed answer) is recorded on
its connection (``last_error``, ``failed_at``; reports built from it say so), counted as
failed on the run and logged as an error naming it; the chunk itself succeeds. A chunk that
raised would fail the whole run and stop the chunks not yet run, so one dead organisation
would keep every other from syncing. The run therefore ends succeeded with its failed
count, and the organisations that failed are in its log and on their connections.
"""

from __future__ import annotations

from receivables.jobs.common import QUEUE, RECEIVABLES_RETRY
from receivables.models import XeroConnection, XeroGrant
from receivables.xero import sync
from receivables.xero.errors import SyncInProgress, XeroError
from scheduling.calendar import Cron
from scheduling.choices import KeyBy, Scope
from scheduling.registry import JobError, Param, job

REPORTED_SKIPS = 20  # documents left out that a tenant's log lines name; the count covers the rest


@job(
    "XERO_SYNC",
    title="Xero sync",
    queue=QUEUE,
    scope=Scope.GLOBAL,
    schedule=Cron(minute="15"),
    key_by=KeyBy.HOUR,
    atomic=False,
    atomic_chunks=False,  # a tenant's sync waits on Xero: it commits page by page, not in one transaction
    retry=RECEIVABLES_RETRY,
    time_limit=3300,
    params={
        "app": Param(str, default=None, help="only this Xero app's organisations (its name)"),
        "full": Param(bool, default=False, help="fetch everything and remove what Xero no longer has"),
        "discover": Param(bool, default=True, help="ask Xero first which organisations each grant reaches"),
    },
)
def xero_sync(ctx) -> None:
    """Syncs the contacts, sales invoices, credit notes, overpayments, prepayments and
    payments of every active Xero organisation: only what changed since the last sync, or
    everything with ``full``."""
    app, full = ctx.params["app"], ctx.params["full"]
    try:
        sync.connections_to_sync(app)  # an unknown app fails the run at once, before any call
    except LookupError as exc:
        raise JobError(str(exc)) from None
    discovered = _discover(ctx, app) if ctx.params["discover"] else 0
    connections = sync.connections_to_sync(app)
    ctx.result = {"app": app, "full": full, "tenants": len(connections), "discovered": discovered}
    if not connections:
        ctx.info("no active Xero organisations to sync")
        return
    ctx.info(f"syncing {len(connections)} Xero organisations" + (" in full" if full else ""))
    ctx.fan_out({"connection": connection.pk, "tenant": connection.tenant_id} for connection in connections)


@xero_sync.chunk
def sync_one(ctx, chunk: dict) -> None:
    connection = XeroConnection.objects.select_related("app", "grant").filter(pk=chunk["connection"]).first()
    if connection is None or not connection.active or not connection.app.active:
        ctx.info(f"organisation {chunk['tenant']} is no longer active; skipped", tenant=chunk["tenant"])
        ctx.count(skipped=1)
        return
    try:
        result = sync.sync_connection(connection, full=ctx.params["full"])
    except SyncInProgress as exc:
        ctx.warning(f"{connection.label}: {exc}; skipped", tenant=connection.tenant_id)
        ctx.count(skipped=1)
        return
    except XeroError as exc:
        ctx.error(f"{connection.label}: {exc}", tenant=connection.tenant_id, connection=connection.pk)
        ctx.count(failed=1)
        return
    ctx.count(processed=result.fetched_total, created=result.written.created)
    ctx.info(
        f"{connection.label}: {result.summary()}",
        tenant=connection.tenant_id,
        fetched=result.fetched,
        updated=result.written.updated,
        removed=result.written.removed,
        changed=result.changed,
    )
    for reason in result.skipped[:REPORTED_SKIPS]:
        ctx.warning(f"{connection.label}: left out {reason}", tenant=connection.tenant_id)
    if len(result.skipped) > REPORTED_SKIPS:
        ctx.warning(f"{connection.label}: {len(result.skipped)} documents left out in all", tenant=connection.tenant_id)


def _discover(ctx, app: str | None) -> int:
    """New organisations of each grant; a grant Xero refuses is a warning here (its
    organisations' syncs fail and say why)."""
    grants = XeroGrant.objects.filter(app__active=True).select_related("app").order_by("pk")
    if app:
        grants = grants.filter(app__name=app)
    created = 0
    for grant in grants:
        try:
            found = sync.discover_connections(grant)
        except XeroError as exc:
            ctx.warning(f"could not ask Xero which organisations grant {grant} reaches: {exc}", grant=grant.pk)
            continue
        for connection in found.created:
            ctx.info(f"new Xero organisation {connection.label} ({connection.tenant_id})", grant=grant.pk)
        created += len(found.created)
    return created
