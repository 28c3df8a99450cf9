"""Xero apps, grants and connections in the admin.

Apps and grants are the platform's: their secrets and tokens are write-only (stored
encrypted, never shown). Connections belong to a company, or to nobody (staff only); an
operator sees how each one's last sync went and may deactivate one, which leaves it out
of syncs and reports.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db import models

from config.companies import CompanyScoped
from receivables.models import XeroApp, XeroConnection, XeroGrant


def _https(field: models.Field, **kwargs) -> forms.Field:
    if isinstance(field, models.URLField):
        kwargs["assume_scheme"] = "https"  # Xero's URLs, and Django 6's default
    return field.formfield(**kwargs)


class XeroAppForm(forms.ModelForm):
    new_client_secret = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only: stored encrypted, never shown. Leave it blank to keep the secret.",
    )

    class Meta:
        model = XeroApp
        formfield_callback = _https
        fields = [
            "name",
            "client_id",
            "new_client_secret",
            "api_url",
            "identity_url",
            "token_url",
            "calls_per_minute",
            "active",
        ]

    def clean(self) -> dict:
        cleaned = super().clean()
        if not self.instance.pk and not cleaned.get("new_client_secret"):
            self.add_error("new_client_secret", "A new app needs its client secret.")
        return cleaned


@admin.register(XeroApp)
class XeroAppAdmin(admin.ModelAdmin):
    form = XeroAppForm
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ["name", "client_id", "calls_per_minute", "active"]
    search_fields = ["name", "client_id"]

    def save_model(self, request, obj: XeroApp, form, change) -> None:
        if form.cleaned_data.get("new_client_secret"):
            obj.client_secret = form.cleaned_data["new_client_secret"]
        super().save_model(request, obj, form, change)


class XeroGrantForm(forms.ModelForm):
    new_refresh_token = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only: the refresh token of a new authorisation. Leave it blank to keep the tokens.",
    )

    class Meta:
        model = XeroGrant
        fields = ["app", "name", "new_refresh_token"]

    def clean(self) -> dict:
        cleaned = super().clean()
        if not self.instance.pk and not cleaned.get("new_refresh_token"):
            self.add_error("new_refresh_token", "A new grant needs its refresh token.")
        return cleaned


@admin.register(XeroGrant)
class XeroGrantAdmin(admin.ModelAdmin):
    form = XeroGrantForm
    list_display = ["__str__", "app", "expires_at", "refreshed_at"]
    list_filter = ["app"]
    readonly_fields = ["expires_at", "scopes", "refreshed_at", "created_at"]

    def save_model(self, request, obj: XeroGrant, form, change) -> None:
        if form.cleaned_data.get("new_refresh_token"):
            # A new authorisation: the access token of the old one is spent, refreshed on first use.
            obj.refresh_token = form.cleaned_data["new_refresh_token"]
            obj.access_token = ""
            obj.expires_at = None
        super().save_model(request, obj, form, change)


@admin.register(XeroConnection)
class XeroConnectionAdmin(CompanyScoped, admin.ModelAdmin):
    platform_readable = True
    list_display = [
        "__str__",
        "app",
        "company",
        "business_unit",
        "active",
        "last_synced_at",
        "failed_at",
        "data_version",
    ]
    list_filter = ["app", "company", "active"]
    search_fields = ["tenant_name", "tenant_id", "business_unit"]
    fields = [
        "app",
        "grant",
        "tenant_id",
        "tenant_name",
        "business_unit",
        "company",
        "base_currency",
        "active",
        "last_sync_started_at",
        "last_synced_at",
        "failed_at",
        "last_error",
        "data_version",
        "watermarks",
    ]
    readonly_fields = [
        "last_sync_started_at",
        "last_synced_at",
        "failed_at",
        "last_error",
        "data_version",
        "watermarks",
    ]

    def get_readonly_fields(self, request, obj=None):
        fixed = ["app", "tenant_id"] if obj is not None else []
        return [*fixed, *self.readonly_fields]
