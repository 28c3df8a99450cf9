from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import URLValidator
from django.db import transaction

from config.commands import database_ready
from receivables.models import XeroApp, XeroGrant
from receivables.models.xero import XERO_API_URL, XERO_IDENTITY_URL, XERO_TOKEN_URL
from receivables.xero.errors import XeroError
from receivables.xero.sync import discover_connections
from receivables.xero.tokens import fetch_tokens, store_tokens

URLS = {"api_url": XERO_API_URL, "identity_url": XERO_IDENTITY_URL, "token_url": XERO_TOKEN_URL}


class Command(BaseCommand):
    help = (
        "Connect a Xero app: create or update the app (client id and secret, URLs), spend a refresh "
        "token from Xero's authorisation once to store the grant's tokens (encrypted), and record the "
        "organisations the grant reaches. Nothing is saved when Xero refuses the token."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--app", required=True, help="the app's name here (created if new)")
        parser.add_argument("--client-id", help="the Xero app's client id (required for a new app)")
        parser.add_argument("--client-secret", help="the Xero app's client secret (required for a new app)")
        parser.add_argument("--api-url", help=f"the accounting API (default {XERO_API_URL})")
        parser.add_argument("--identity-url", help=f"where /connections lives (default {XERO_IDENTITY_URL})")
        parser.add_argument("--token-url", help=f"where tokens are refreshed (default {XERO_TOKEN_URL})")
        parser.add_argument("--refresh-token", required=True, help="a refresh token from Xero's authorisation")
        parser.add_argument("--scope", default="", help="the grant's scopes, space-separated (optional)")
        parser.add_argument("--name", default="", help="who authorised it; a grant of this name is replaced")

    def handle(self, *args, **options) -> None:
        name = (options["app"] or "").strip()
        refresh_token = (options["refresh_token"] or "").strip()
        if not name or len(name) > XeroApp._meta.get_field("name").max_length:
            raise CommandError("--app needs a name of 1 to 100 characters")
        if not refresh_token:
            raise CommandError("--refresh-token is empty")
        urls = {field: options[field] for field in URLS if options[field]}
        for field, url in urls.items():
            try:
                URLValidator(schemes=["http", "https"])(url)
            except ValidationError:
                raise CommandError(f"--{field.replace('_', '-')} {url!r} is not an http(s) URL") from None
        with database_ready():
            app = XeroApp.objects.filter(name=name).first()
            created = app is None
            if created and not (options["client_id"] and options["client_secret"]):
                raise CommandError(f"app {name!r} is new: give --client-id and --client-secret")
            app = app or XeroApp(name=name)
            if options["client_id"]:
                app.client_id = options["client_id"].strip()
            if options["client_secret"]:
                app.client_secret = options["client_secret"].strip()
            for field, url in urls.items():
                setattr(app, field, url)
            scopes = options["scope"].split()
            try:
                # Asked before anything is saved: a refused token or wrong secret leaves nothing behind.
                token = fetch_tokens(app, refresh_token, scopes)
            except XeroError as exc:
                raise CommandError(f"Xero refused to connect: {exc}") from None
            with transaction.atomic():
                app.save()
                grant = XeroGrant.objects.filter(app=app, name=options["name"]).first() if options["name"] else None
                grant = grant or XeroGrant(app=app, name=options["name"])
                grant.scopes = scopes
                store_tokens(grant, token)
                grant.save()
            self.stdout.write(f"app {name} {'created' if created else 'updated'}; grant {grant.pk} saved")
            try:
                found = discover_connections(grant)
            except XeroError as exc:
                raise CommandError(
                    f"the grant is saved, but Xero would not list its organisations: {exc} "
                    "(the next XERO_SYNC run asks again)"
                ) from None
        new = {connection.pk for connection in found.created}
        for connection in found.connections:
            self.stdout.write(f"  {connection.label} ({connection.tenant_id}){' new' if connection.pk in new else ''}")
        for connection in found.missing:
            self.stdout.write(f"  {connection.label} ({connection.tenant_id}) no longer reached by this grant")
        count = len(found.connections)
        self.stdout.write(f"{count} organisation{'s' if count != 1 else ''} reached, {len(new)} new")
