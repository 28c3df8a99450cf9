"""Notifications in the admin: what was sent and how each delivery went (read-only, with a
resend action), and what shapes sending: templates with a preview, preferences, quiet hours
and webhook endpoints (secrets write-only, shown once when the platform makes one).

Every page is scoped to the operator's companies. Superusers run the platform and see every
company and the platform's rows (no company); other staff see only the companies they are
members of (the company model's ``of_member``), and the platform's templates read-only.
"""

from __future__ import annotations

import re

from django import forms
from django.contrib import admin, messages
from django.core.validators import URLValidator
from django.utils.html import escape, format_html
from django.utils.text import Truncator

from config.companies import CompanyScoped
from notifications.models import (
    KIND_RE,
    Delivery,
    Notification,
    Preference,
    QuietHours,
    Template,
    WebhookEndpoint,
)
from notifications.services import delivery as delivery_service
from notifications.services import rendering, webhooks
from notifications.services.rendering import RenderError


class ReadOnly:
    """Records: viewed and deleted, never added or edited by hand."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


# --- What was sent ----------------------------------------------------------------------


class DeliveryInline(ReadOnly, admin.TabularInline):
    model = Delivery
    fields = ["channel", "endpoint", "status", "attempts", "next_attempt_at", "sent_at", "last_error"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadFilter(admin.SimpleListFilter):
    title = "read"
    parameter_name = "read"

    def lookups(self, request, model_admin):
        return [("yes", "Read"), ("no", "Unread")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(read_at__isnull=self.value() == "no")
        return queryset


@admin.register(Notification)
class NotificationAdmin(CompanyScoped, ReadOnly, admin.ModelAdmin):
    list_display = ["id", "created_at", "kind", "priority", "company", "recipient", "subject", "read"]
    list_filter = ["kind", "priority", "company", ReadFilter]
    list_select_related = ["company"]
    search_fields = ["recipient_key", "recipient_name", "recipient_email", "dedupe_key"]
    date_hierarchy = "created_at"
    inlines = [DeliveryInline]

    @admin.display(description="recipient", ordering="recipient_key")
    def recipient(self, notification: Notification) -> str:
        name = notification.recipient_name
        return f"{name} ({notification.recipient_key})" if name else notification.recipient_key

    @admin.display(boolean=True, ordering="read_at")
    def read(self, notification: Notification) -> bool:
        return notification.read_at is not None


@admin.register(Delivery)
class DeliveryAdmin(CompanyScoped, ReadOnly, admin.ModelAdmin):
    list_display = ["id", "notification", "company", "channel", "endpoint", "status", "attempts", "sent_at", "error"]
    list_filter = ["status", "channel", "company"]
    list_select_related = ["notification", "company", "endpoint"]
    search_fields = ["notification__recipient_key", "notification__kind", "last_error", "provider_message_id"]
    actions = ["resend"]

    @admin.display(description="last error")
    def error(self, delivery: Delivery) -> str:
        return Truncator(delivery.last_error).chars(80)

    def has_resend_permission(self, request) -> bool:
        return request.user.has_perm("notifications.change_delivery")

    @admin.action(description="Resend the selected failed or suppressed deliveries", permissions=["resend"])
    def resend(self, request, queryset) -> None:
        done, refused = 0, []
        for delivery in queryset.order_by("pk"):
            try:
                delivery_service.resend(delivery)
            except delivery_service.NotResendable as exc:
                refused.append(str(exc))
                continue
            done += 1
        message = f"Resend: {done} queued" + (f", {len(refused)} refused: " + "; ".join(refused) if refused else "")
        level = messages.SUCCESS if not refused else messages.WARNING if done else messages.ERROR
        self.message_user(request, message, level)


# --- Templates --------------------------------------------------------------------------


class TemplateForm(forms.ModelForm):
    class Meta:
        model = Template
        fields = ["company", "kind", "subject", "body", "html", "sample_data"]

    def _compiles(self, name: str) -> str:
        text = self.cleaned_data[name]
        error = rendering.check(text)
        if error:
            raise forms.ValidationError(error)
        return text

    def clean_subject(self) -> str:
        return self._compiles("subject")

    def clean_body(self) -> str:
        return self._compiles("body")

    def clean_html(self) -> str:
        return self._compiles("html")

    def clean_sample_data(self):
        data = self.cleaned_data["sample_data"]
        if not isinstance(data, dict):
            raise forms.ValidationError("An object of names and values.")
        return data


@admin.register(Template)
class TemplateAdmin(CompanyScoped, admin.ModelAdmin):
    form = TemplateForm
    platform_readable = True
    list_display = ["kind", "company", "subject", "updated_at"]
    list_filter = ["company", "kind"]
    list_select_related = ["company"]
    search_fields = ["kind", "subject"]
    readonly_fields = ["preview", "updated_at"]

    @admin.display(description="preview")
    def preview(self, template: Template) -> str:
        """The saved template rendered with its sample data (or its kind's); the HTML part in
        a sandboxed frame, so none of its scripts run and none of its styles leak."""
        if template.pk is None:
            return "Save the template to preview it."
        source = rendering.Source(template.subject, template.body, template.html)
        try:
            shown = rendering.render(source, rendering.sample_context(template))
        except RenderError as error:
            return format_html('<p class="errornote">{}</p>', error)
        # The engine marks what it renders safe; here it is text to show, escaped every time.
        frame = format_html(
            '<iframe sandbox srcdoc="{}" style="width: 100%; height: 16em; border: 1px solid #ccc"></iframe>',
            escape(shown.html),
        )
        return format_html(
            "<p><strong>{}</strong></p><pre>{}</pre>{}",
            escape(shown.subject),
            escape(shown.body),
            frame if shown.html else "",
        )


# --- Preferences and quiet hours ---------------------------------------------------------


@admin.register(Preference)
class PreferenceAdmin(CompanyScoped, admin.ModelAdmin):
    list_display = ["recipient_key", "company", "kind", "channel", "enabled", "updated_at"]
    list_filter = ["channel", "enabled", "company"]
    list_select_related = ["company"]
    search_fields = ["recipient_key", "kind"]


@admin.register(QuietHours)
class QuietHoursAdmin(CompanyScoped, admin.ModelAdmin):
    list_display = ["company", "recipient_key", "start", "end", "timezone"]
    list_filter = ["company"]
    list_select_related = ["company"]
    search_fields = ["recipient_key"]


# --- Webhook endpoints ------------------------------------------------------------------


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")
    new_secret = forms.CharField(
        required=False,
        strip=False,
        min_length=24,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only. Leave it blank to keep the secret (on a new endpoint: to have one "
        "generated and shown once).",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["company", "name", "url", "kinds", "new_secret"]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        URLValidator(schemes=["http", "https"], message="Enter an http or https URL.")(url)
        webhooks.validate_destination(url)
        return url

    def clean_kinds(self) -> list[str]:
        value = self.cleaned_data["kinds"] or []
        if not isinstance(value, list) or not all(isinstance(kind, str) for kind in value):
            raise forms.ValidationError('A list of kinds, such as ["invoice_issued"]; empty receives every kind.')
        bad = [kind for kind in value if not re.fullmatch(KIND_RE, kind)]
        if bad:
            raise forms.ValidationError(f"Not a kind: {', '.join(bad)}.")
        return list(dict.fromkeys(value))


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(CompanyScoped, admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["name", "company", "url", "active", "consecutive_failures", "disabled_at"]
    list_filter = ["active", "company"]
    list_select_related = ["company"]
    search_fields = ["name", "url"]
    readonly_fields = ["active", "consecutive_failures", "disabled_at", "disabled_reason", "created_at", "updated_at"]
    actions = ["enable", "rotate_secret"]

    def save_model(self, request, endpoint: WebhookEndpoint, form, change: bool) -> None:
        given = form.cleaned_data.get("new_secret")
        generated = None if given or change else webhooks.new_secret()
        if given or generated:
            endpoint.secret = given or generated
        super().save_model(request, endpoint, form, change)
        if generated:
            self._show_secret(request, endpoint, generated)

    def _show_secret(self, request, endpoint: WebhookEndpoint, secret: str) -> None:
        self.message_user(
            request, f"The signing secret of {endpoint.name}: {secret} — shown this once; keep it.", messages.SUCCESS
        )

    @admin.action(description="Enable the selected endpoints (clearing their failures)", permissions=["change"])
    def enable(self, request, queryset) -> None:
        disabled = list(queryset.filter(active=False).order_by("pk"))
        for endpoint in disabled:
            webhooks.enable(endpoint)
        self.message_user(request, f"Enabled {len(disabled)}; {queryset.count() - len(disabled)} were active already.")

    @admin.action(description="Rotate the signing secret (the new ones are shown once)", permissions=["change"])
    def rotate_secret(self, request, queryset) -> None:
        for endpoint in queryset.order_by("pk"):
            endpoint.secret = secret = webhooks.new_secret()
            endpoint.save(update_fields=["secret_encrypted", "updated_at"])
            self._show_secret(request, endpoint, secret)
