from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from config.commands import database_ready
from receivables.models import XeroApp, XeroConnection
from receivables.xero.errors import SyncInProgress, XeroError
from receivables.xero.sync import connections_to_sync, sync_connection


class Command(BaseCommand):
    help = (
        "Sync Xero organisations now, in this process: every active one, one app's (--app) or one "
        "(--tenant); only what changed since the last sync, or everything with --full. A line per "
        "organisation, then a summary; exits non-zero when any failed."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--app", help="only this Xero app's organisations (the app's name)")
        parser.add_argument("--tenant", help="only this organisation (its Xero tenant id)")
        parser.add_argument("--full", action="store_true", help="fetch everything and remove what Xero no longer has")

    def handle(self, *args, **options) -> None:
        with database_ready():
            connections = self._chosen(options["app"], options["tenant"])
            if not connections:
                self.stdout.write("no active Xero organisations to sync")
                return
            synced = failed = skipped = 0
            for connection in connections:
                name = f"{connection.label} ({connection.tenant_id})"
                try:
                    result = sync_connection(connection, full=options["full"])
                except SyncInProgress:
                    self.stdout.write(f"{name}: skipped, a sync of it is running")
                    skipped += 1
                    continue
                except XeroError as exc:
                    self.stdout.write(f"{name}: failed: {exc}")
                    failed += 1
                    continue
                self.stdout.write(f"{name}: {result.summary()}")
                synced += 1
        total = len(connections)
        tail = "".join(f"; {n} {what}" for n, what in ((failed, "failed"), (skipped, "skipped")) if n)
        self.stdout.write(f"synced {synced} of {total} Xero organisation{'s' if total != 1 else ''}{tail}")
        if failed:
            raise CommandError(f"{failed} of {total} Xero organisations failed to sync (see above)")

    def _chosen(self, app: str | None, tenant: str | None) -> list[XeroConnection]:
        if app and not XeroApp.objects.filter(name=app).exists():
            raise CommandError(f"no Xero app named {app!r}")
        if not tenant:
            return connections_to_sync(app)
        found = XeroConnection.objects.select_related("app", "grant").filter(tenant_id=tenant)
        if app:
            found = found.filter(app__name=app)
        found = list(found)
        if not found:
            raise CommandError(f"no Xero organisation {tenant!r}" + (f" in app {app!r}" if app else ""))
        if len(found) > 1:
            apps = ", ".join(sorted(connection.app.name for connection in found))
            raise CommandError(
                f"organisation {tenant!r} is connected through several apps ({apps}); name one with --app"
            )
        connection = found[0]
        if not connection.active or not connection.app.active:
            raise CommandError(f"{connection.label} ({tenant}) is inactive; activate it in the admin first")
        return found
