"""What a company sets for its recipients: channels switched on or off per kind, and quiet
hours (the company's, or one recipient's) in which email and webhooks wait."""

from __future__ import annotations

import zoneinfo

from django.core.validators import RegexValidator
from rest_framework import permissions, serializers, viewsets
from timezone_field.rest_framework import TimeZoneSerializerField

from notifications.api.common import (
    BooleanFilter,
    CompanyField,
    CompanyFilterSet,
    MembersWrite,
    RowSerializer,
    preference_kind_field,
)
from notifications.models import Preference, QuietHours

RECIPIENT_HELP = 'Who it is for: "user:7", "billing.customer:42".'
recipient_key_validator = RegexValidator(
    r"^[a-z][a-z0-9_.]*:[A-Za-z0-9_-]+$", 'A recipient is "<label>:<id>", such as "user:7" or "billing.customer:42".'
)


ZONES = frozenset(zoneinfo.available_timezones()) - {"Factory", "localtime"}


class TimeZoneField(TimeZoneSerializerField):
    """Only the IANA zone names: the library's own field would open any path under the zone
    database (or outside it) and answer 500 on what it finds there."""

    def __init__(self, **kwargs):
        super().__init__(use_pytz=False, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str) or data not in ZONES:
            raise serializers.ValidationError(f"{str(data)[:60]!r} is not a timezone name such as Europe/London.")
        return zoneinfo.ZoneInfo(data)


class PreferenceSerializer(RowSerializer):
    """A recipient's channel switched on or off, for one kind or (kind empty) for all."""

    company = CompanyField()
    recipient_key = serializers.CharField(
        max_length=120, validators=[recipient_key_validator], help_text=RECIPIENT_HELP
    )
    kind = preference_kind_field()

    unique = ("recipient_key", "kind", "channel")
    unique_message = "The recipient already has a preference for this kind and channel."

    class Meta:
        model = Preference
        fields = ["id", "company", "recipient_key", "kind", "channel", "enabled", "updated_at"]
        read_only_fields = ["updated_at"]
        validators = []  # the natural key is RowSerializer's check


class PreferenceFilter(CompanyFilterSet):
    enabled = BooleanFilter()

    class Meta:
        model = Preference
        fields = ["company", "recipient_key", "kind", "channel", "enabled"]


class PreferenceViewSet(viewsets.ModelViewSet):
    """Recipients' channel switches in the caller's companies (a user sets their own, and
    those that hold everywhere, under ``inbox/preferences``)."""

    serializer_class = PreferenceSerializer
    permission_classes = [permissions.IsAuthenticated, MembersWrite]
    filterset_class = PreferenceFilter
    cursor_ordering = ("recipient_key", "pk")
    lookup_value_converter = "int"

    def get_queryset(self):
        return Preference.objects.for_user(self.request.user)


class QuietHoursSerializer(RowSerializer):
    """A window in which email and webhooks to the recipient (or the company) wait."""

    company = CompanyField()
    recipient_key = serializers.CharField(
        max_length=120,
        allow_blank=True,
        default="",
        validators=[recipient_key_validator],
        help_text=f"{RECIPIENT_HELP} Empty: the company's window.",
    )
    timezone = TimeZoneField(required=False, help_text="An IANA timezone name, such as Europe/London. Default UTC.")

    unique = ("recipient_key",)
    unique_message = "There are quiet hours for this recipient already."

    class Meta:
        model = QuietHours
        fields = ["id", "company", "recipient_key", "start", "end", "timezone"]
        validators = []  # the natural key is RowSerializer's check, an empty window the model's clean()


class QuietHoursFilter(CompanyFilterSet):
    class Meta:
        model = QuietHours
        fields = ["company", "recipient_key"]


class QuietHoursViewSet(viewsets.ModelViewSet):
    """Windows (start to end, wrapping midnight when end is earlier) in which email and
    webhook deliveries wait; urgent ones go at once and in-app ones never wait."""

    serializer_class = QuietHoursSerializer
    permission_classes = [permissions.IsAuthenticated, MembersWrite]
    filterset_class = QuietHoursFilter
    cursor_ordering = ("recipient_key", "pk")
    lookup_value_converter = "int"

    def get_queryset(self):
        return QuietHours.objects.for_user(self.request.user)
