"""Xero apps and the organisations (tenants) connected through them.

An app is a Xero developer app: its client id and secret, and the limit Xero puts on it
(calls a minute across all its tenants). A connection is one organisation connected
through an app, with its OAuth tokens. Secrets and tokens are stored encrypted with
``config.secrets`` (keys from ``SECRETS_KEYS``) and never logged; the model exposes them
only through the properties below.

A grant is one OAuth authorisation (a token set) that may reach several organisations.

The URLs default to Xero's own; the fake Xero server used by tests, the demo and the
benchmark is another set of URLs.
"""

from __future__ import annotations

from django.db import models

from config import secrets

XERO_API_URL = "https://api.xero.com/api.xro/2.0"
XERO_IDENTITY_URL = "https://api.xero.com"
XERO_TOKEN_URL = "https://identity.xero.com/connect/token"


class XeroApp(models.Model):
    name = models.CharField(max_length=100, unique=True)
    client_id = models.CharField(max_length=100)
    client_secret_encrypted = models.TextField(editable=False)
    api_url = models.URLField(default=XERO_API_URL, help_text="The accounting API's base URL.")
    identity_url = models.URLField(default=XERO_IDENTITY_URL, help_text="Where /connections lives.")
    token_url = models.URLField(default=XERO_TOKEN_URL, help_text="Where tokens are refreshed.")
    calls_per_minute = models.PositiveIntegerField(default=10_000, help_text="Xero's limit across all its tenants.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def client_secret(self) -> str:
        return secrets.decrypt(self.client_secret_encrypted) if self.client_secret_encrypted else ""

    @client_secret.setter
    def client_secret(self, value: str) -> None:
        self.client_secret_encrypted = secrets.encrypt(value)


class XeroGrant(models.Model):
    """One OAuth authorisation of an app: a token set that reaches every organisation the
    user connected with it. Xero rotates the refresh token on each refresh, so the tenants
    of one grant share it; refreshing takes this row's lock (see the Xero client), so two
    tenants' syncs never both spend the same refresh token."""

    app = models.ForeignKey(XeroApp, on_delete=models.PROTECT, related_name="grants")
    name = models.CharField(max_length=200, blank=True, help_text="Who authorised it, for people.")
    access_token_encrypted = models.TextField(blank=True, editable=False)
    refresh_token_encrypted = models.TextField(blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="When the access token expires.")
    scopes = models.JSONField(default=list, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["app", "pk"]

    def __str__(self) -> str:
        return self.name or f"{self.app} grant {self.pk}"

    @property
    def access_token(self) -> str:
        return secrets.decrypt(self.access_token_encrypted) if self.access_token_encrypted else ""

    @access_token.setter
    def access_token(self, value: str) -> None:
        self.access_token_encrypted = secrets.encrypt(value) if value else ""

    @property
    def refresh_token(self) -> str:
        return secrets.decrypt(self.refresh_token_encrypted) if self.refresh_token_encrypted else ""

    @refresh_token.setter
    def refresh_token(self, value: str) -> None:
        self.refresh_token_encrypted = secrets.encrypt(value) if value else ""


class XeroConnectionQuerySet(models.QuerySet):
    def for_user(self, user) -> XeroConnectionQuerySet:
        """Staff read every connection; members read their companies' (a connection with
        no company is the platform's, staff only)."""
        if not user.is_authenticated:
            return self.none()
        if user.is_staff:
            return self.all()
        return self.filter(company__memberships__user=user)

    def active(self) -> XeroConnectionQuerySet:
        return self.filter(active=True, app__active=True)


class XeroConnection(models.Model):
    app = models.ForeignKey(XeroApp, on_delete=models.PROTECT, related_name="connections")
    tenant_id = models.CharField(max_length=64, help_text="Xero's tenant id (the organisation).")
    tenant_name = models.CharField(max_length=200, blank=True)
    business_unit = models.CharField(max_length=100, blank=True, help_text="A grouping shown in reports.")
    company = models.ForeignKey(
        "ledger.Company",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="xero_connections",
        help_text="Whose members may read it; empty: staff only.",
    )
    base_currency = models.CharField(max_length=3, blank=True)
    grant = models.ForeignKey(
        "receivables.XeroGrant",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="connections",
        help_text="The tokens this organisation is reached with.",
    )
    active = models.BooleanField(default=True)
    watermarks = models.JSONField(
        default=dict, blank=True, editable=False, help_text="Per kind, the If-Modified-Since of the next sync."
    )
    data_version = models.PositiveIntegerField(
        default=0, editable=False, help_text="Raised whenever a sync changes this tenant's data."
    )
    last_sync_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_synced_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    failed_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = XeroConnectionQuerySet.as_manager()

    class Meta:
        ordering = ["tenant_name", "pk"]
        constraints = [models.UniqueConstraint(fields=["app", "tenant_id"], name="xero_connection_unique_tenant")]

    def __str__(self) -> str:
        return self.tenant_name or self.tenant_id

    @property
    def label(self) -> str:
        """The company column of a report."""
        return self.tenant_name or self.tenant_id


class XeroContact(models.Model):
    connection = models.ForeignKey(XeroConnection, on_delete=models.CASCADE, related_name="contacts")
    contact_id = models.CharField(max_length=64)
    name = models.CharField(max_length=500)
    email = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=20, blank=True)
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "contact_id"], name="xero_contact_unique_per_connection")
        ]

    def __str__(self) -> str:
        return self.name
