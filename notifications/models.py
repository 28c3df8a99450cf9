"""Notifications, their deliveries per channel, and what shapes them: templates,
preferences, quiet hours and the webhook endpoints of client apps.

The app knows nothing of the domain. A notification's company is
``settings.SCHEDULING_COMPANY_MODEL`` (the same model a job run belongs to), and a
recipient that is not a user (a customer, say) is a generic reference with the name, email
and channels it had when notified.
"""

from __future__ import annotations

import datetime
import zoneinfo

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone
from timezone_field import TimeZoneField

from config import secrets

COMPANY_MODEL = settings.SCHEDULING_COMPANY_MODEL
KIND_RE = r"^[a-z][a-z0-9_]{0,63}$"
kind_validator = RegexValidator(
    KIND_RE, "A kind is lower-case letters, digits and underscores, starting with a letter."
)


class Channel(models.TextChoices):
    IN_APP = "in_app", "In-app"
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook"


class Priority(models.TextChoices):
    LOW = "low", "Low"
    NORMAL = "normal", "Normal"
    HIGH = "high", "High"
    URGENT = "urgent", "Urgent"  # goes out at once, through quiet hours


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    WAITING = "waiting", "Waiting for quiet hours to end"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SUPPRESSED = "suppressed", "Suppressed"


class ScopedQuerySet(models.QuerySet):
    """Company scoping, the same two methods as every domain row's queryset."""

    def for_company(self, company) -> ScopedQuerySet:
        return self.filter(company=company)

    def for_user(self, user) -> ScopedQuerySet:
        """Rows of the companies ``user`` may read (the company model's ``for_user``). Staff
        also read the platform's own rows, which belong to no company (job alerts)."""
        if not user.is_authenticated:
            return self.none()
        if user.is_staff:
            return self.all()
        company_model = self.model._meta.get_field("company").related_model
        return self.filter(company__in=company_model.objects.for_user(user))


class NotificationQuerySet(ScopedQuerySet):
    def inbox(self, user) -> NotificationQuerySet:
        """What ``user`` sees in the app: their own notifications whose in-app delivery went out."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(user=user, in_app_at__isnull=False)

    def unread(self) -> NotificationQuerySet:
        return self.filter(read_at=None)


class Notification(models.Model):
    """One message to one recipient. Its dedupe key is unique per company (and among
    notifications with no company), so notifying twice with one key creates one."""

    company = models.ForeignKey(COMPANY_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=64, validators=[kind_validator], db_index=True)
    priority = models.CharField(max_length=8, choices=Priority.choices, default=Priority.NORMAL)
    dedupe_key = models.CharField(
        max_length=200, help_text="Unique per company; notifying again with the same key creates nothing."
    )
    # The recipient: a user, or a party (a customer …) of a domain app, or both (a party's portal user).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications"
    )
    party_type = models.ForeignKey(ContentType, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    party_id = models.CharField(max_length=64, blank=True)
    party = GenericForeignKey("party_type", "party_id")
    recipient_key = models.CharField(
        max_length=120,
        db_index=True,
        help_text='Who it is for, as preferences name them: "user:7", "billing.customer:42".',
    )
    recipient_name = models.CharField(max_length=200, blank=True)
    recipient_email = models.EmailField(blank=True)
    channels = models.JSONField(default=list, help_text="The channels asked for.")
    data = models.JSONField(default=dict, blank=True, help_text="The template's context.")
    subject = models.CharField(max_length=300, blank=True)
    body = models.TextField(blank=True)
    rendered_at = models.DateTimeField(null=True, blank=True)
    in_app_at = models.DateTimeField(null=True, blank=True, help_text="When it appeared in the recipient's inbox.")
    read_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["company", "dedupe_key"], name="notification_unique_dedupe_key"),
            models.UniqueConstraint(
                fields=["dedupe_key"],
                condition=models.Q(company__isnull=True),
                name="notification_unique_dedupe_key_platform",
            ),
        ]
        indexes = [models.Index(fields=["user", "-in_app_at"], name="notification_inbox")]

    def __str__(self) -> str:
        return f"{self.kind} to {self.recipient_name or self.recipient_key}"


class DeliveryQuerySet(ScopedQuerySet):
    def due(self, now: datetime.datetime | None = None) -> DeliveryQuerySet:
        return self.filter(status=DeliveryStatus.QUEUED, next_attempt_at__lte=now or timezone.now())


class Delivery(models.Model):
    """A notification on one channel (and, for webhooks, to one endpoint)."""

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="deliveries")
    company = models.ForeignKey(COMPANY_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    endpoint = models.ForeignKey(
        "WebhookEndpoint", null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(
        default=timezone.now, help_text="Not sent before this (quiet hours, backoff)."
    )
    claim = models.CharField(max_length=32, blank=True, help_text="The task sending it now.")
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["notification", "channel"],
                condition=models.Q(endpoint__isnull=True),
                name="delivery_unique_channel",
            ),
            models.UniqueConstraint(
                fields=["notification", "endpoint"],
                condition=models.Q(endpoint__isnull=False),
                name="delivery_unique_endpoint",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due"),
            models.Index(fields=["company", "status"], name="delivery_company_status"),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} #{self.pk} ({self.status})"


class Template(models.Model):
    """Subject and bodies of one kind, in the Django template language. A company's own
    template wins over the platform's (no company), which wins over the code's default."""

    company = models.ForeignKey(
        COMPANY_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Empty: the platform's template for every company without its own.",
    )
    kind = models.CharField(max_length=64, validators=[kind_validator])
    subject = models.CharField(max_length=300)
    body = models.TextField(help_text="Plain text; the in-app body and the email's text part.")
    html = models.TextField(blank=True, help_text="The email's HTML part; empty sends text only.")
    sample_data = models.JSONField(default=dict, blank=True, help_text="Context the admin's preview renders with.")
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["kind", "company_id"]
        constraints = [
            models.UniqueConstraint(fields=["company", "kind"], name="template_unique_company_kind"),
            models.UniqueConstraint(
                fields=["kind"], condition=models.Q(company__isnull=True), name="template_unique_platform_kind"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} ({self.company or 'platform'})"


class Preference(models.Model):
    """A recipient's channel switched on or off, for one kind or (kind empty) for all."""

    company = models.ForeignKey(COMPANY_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    recipient_key = models.CharField(max_length=120, help_text='"user:7", "billing.customer:42".')
    kind = models.CharField(max_length=64, blank=True, help_text="Empty: every kind without its own preference.")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["recipient_key", "kind", "channel"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "recipient_key", "kind", "channel"], name="preference_unique_recipient_kind_channel"
            ),
            models.UniqueConstraint(
                fields=["recipient_key", "kind", "channel"],
                condition=models.Q(company__isnull=True),
                name="preference_unique_platform",
            ),
        ]

    def __str__(self) -> str:
        state = "on" if self.enabled else "off"
        return f"{self.recipient_key} {self.kind or 'all kinds'} {self.channel} {state}"


class QuietHours(models.Model):
    """A window in which email and webhook deliveries wait (urgent ones do not). A
    recipient's own window replaces the company's. The window may wrap midnight."""

    company = models.ForeignKey(COMPANY_MODEL, on_delete=models.CASCADE, related_name="+")
    recipient_key = models.CharField(max_length=120, blank=True, help_text="Empty: the company's window.")
    start = models.TimeField()
    end = models.TimeField()
    timezone = TimeZoneField(default="UTC")

    objects = ScopedQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "quiet hours"
        ordering = ["company_id", "recipient_key"]
        constraints = [
            models.UniqueConstraint(fields=["company", "recipient_key"], name="quiet_hours_unique_recipient"),
            models.CheckConstraint(condition=~models.Q(start=models.F("end")), name="quiet_hours_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.recipient_key or 'company'} {self.start:%H:%M} to {self.end:%H:%M} {self.timezone}"

    def clean(self) -> None:
        if self.start is not None and self.start == self.end:
            raise ValidationError({"end": "The window must not start and end at the same time."})

    def release_at(self, now: datetime.datetime) -> datetime.datetime | None:
        """When a delivery held at ``now`` may go: the window's end, or None outside it."""
        tz = self.timezone if isinstance(self.timezone, zoneinfo.ZoneInfo) else zoneinfo.ZoneInfo(str(self.timezone))
        local = now.astimezone(tz)
        clock = local.time().replace(tzinfo=None)
        wraps = self.start > self.end
        inside = (clock >= self.start or clock < self.end) if wraps else (self.start <= clock < self.end)
        if not inside:
            return None
        end_day = local.date() + datetime.timedelta(days=1) if wraps and clock >= self.start else local.date()
        # A wall-clock end that a DST jump skips resolves forward, as zoneinfo does for fold=0.
        end = datetime.datetime.combine(end_day, self.end, tzinfo=tz)
        if end_day == local.date() and local.fold:
            end = end.replace(fold=1)  # in the second pass of a repeated hour, the end that day is the second one
        return end.astimezone(datetime.UTC)


class WebhookEndpoint(models.Model):
    """A client app's URL that receives a company's notifications, signed with its secret."""

    company = models.ForeignKey(COMPANY_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=120)
    url = models.URLField(max_length=500)
    secret_encrypted = models.TextField(editable=False)
    kinds = models.JSONField(default=list, blank=True, help_text="Kinds it receives; empty receives every kind.")
    active = models.BooleanField(default=True)
    consecutive_failures = models.PositiveIntegerField(
        default=0, help_text="Deliveries in a row that failed all their attempts."
    )
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["company_id", "name"]
        constraints = [models.UniqueConstraint(fields=["company", "url"], name="webhook_endpoint_unique_url")]

    def __str__(self) -> str:
        return f"{self.name} ({self.url})"

    @property
    def secret(self) -> str:
        return secrets.decrypt(self.secret_encrypted)

    @secret.setter
    def secret(self, value: str) -> None:
        self.secret_encrypted = secrets.encrypt(value)

    def receives(self, kind: str) -> bool:
        return self.active and (not self.kinds or kind in self.kinds)
