"""The caller's own inbox: the notifications whose in-app delivery reached them, marked read
and unread, counted, and the caller's own channel preferences.

A notification belongs to its recipient wherever it comes from: another company's or the
platform's (no company) is still the caller's own when it was sent to them, and nobody
else's — another user's id answers 404.
"""

from __future__ import annotations

import django_filters
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import Conflict
from notifications.api.common import BooleanFilter, preference_kind_field, readable_companies
from notifications.models import Notification, Preference
from notifications.services.recipients import user_key


class InboxNotificationSerializer(serializers.ModelSerializer):
    read = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = [
            "id",
            "company",
            "kind",
            "priority",
            "subject",
            "body",
            "data",
            "created_at",
            "in_app_at",
            "read_at",
            "read",
        ]
        read_only_fields = fields

    def get_read(self, notification: Notification) -> bool:
        return notification.read_at is not None


class CountSerializer(serializers.Serializer):
    count = serializers.IntegerField()


class InboxFilter(django_filters.FilterSet):
    unread = BooleanFilter(field_name="read_at", lookup_expr="isnull", help_text="true: unread only; false: read.")
    kind = django_filters.CharFilter()

    class Meta:
        model = Notification
        fields = ["unread", "kind"]


# --- Own preferences -------------------------------------------------------------------


class ReadableCompanyField(serializers.PrimaryKeyRelatedField):
    def get_queryset(self):
        return readable_companies(self.context["request"].user)


class OwnPreferenceSerializer(serializers.ModelSerializer):
    company = ReadableCompanyField(allow_null=True, default=None, help_text="Empty: in every company.")
    kind = preference_kind_field()

    class Meta:
        model = Preference
        fields = ["company", "kind", "channel", "enabled"]
        validators = []  # the list's duplicates are checked as a whole


class OwnPreferencesSerializer(serializers.Serializer):
    preferences = OwnPreferenceSerializer(many=True)

    def validate_preferences(self, items: list[dict]) -> list[dict]:
        seen = set()
        for item in items:
            key = (getattr(item["company"], "pk", None), item["kind"], item["channel"])
            if key in seen:
                company = f"company {key[0]}" if key[0] else "every company"
                raise serializers.ValidationError(f"{key[2]} for {key[1] or 'all kinds'} in {company} is given twice.")
            seen.add(key)
        return items


def own_preferences(user):
    """The caller's preferences everywhere (company empty) and in the companies they see."""
    mine = Preference.objects.filter(recipient_key=user_key(user.pk))
    return mine.filter(company=None) | mine.filter(company__in=readable_companies(user))


# --- The inbox -------------------------------------------------------------------------


class InboxViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The caller's notifications, newest first. ``read`` and ``unread`` mark one,
    ``read-all`` marks every unread one and answers how many."""

    serializer_class = InboxNotificationSerializer
    filterset_class = InboxFilter
    cursor_ordering = ("-in_app_at", "-pk")
    lookup_value_converter = "int"

    def get_queryset(self):
        return Notification.objects.inbox(self.request.user)

    @extend_schema(request=None, responses=InboxNotificationSerializer)
    @action(detail=True, methods=["post"])
    def read(self, request: Request, pk=None) -> Response:
        notification = self.get_object()
        if notification.read_at is None:  # the first reading is the one kept
            notification.read_at = timezone.now()
            Notification.objects.filter(pk=notification.pk).update(read_at=notification.read_at)
        return Response(self.get_serializer(notification).data)

    @extend_schema(request=None, responses=InboxNotificationSerializer)
    @action(detail=True, methods=["post"])
    def unread(self, request: Request, pk=None) -> Response:
        notification = self.get_object()
        notification.read_at = None
        Notification.objects.filter(pk=notification.pk).update(read_at=None)
        return Response(self.get_serializer(notification).data)

    @extend_schema(request=None, responses=CountSerializer)
    @action(detail=False, methods=["post"], url_path="read-all")
    def read_all(self, request: Request) -> Response:
        """Marks every unread notification read; ``count`` is how many changed."""
        count = self.get_queryset().unread().update(read_at=timezone.now())
        return Response({"count": count})

    @extend_schema(responses=CountSerializer)
    @action(detail=False, methods=["get"], url_path="unread-count", filterset_class=None, pagination_class=None)
    def unread_count(self, request: Request) -> Response:
        return Response({"count": self.get_queryset().unread().count()})

    @extend_schema(responses=OwnPreferencesSerializer)
    @action(detail=False, methods=["get"], filterset_class=None, pagination_class=None)
    def preferences(self, request: Request) -> Response:
        """The caller's own channel switches (recipient ``user:<id>``)."""
        everywhere_first = F("company_id").asc(nulls_first=True)
        rows = own_preferences(request.user).order_by(everywhere_first, "kind", "channel")
        return Response(OwnPreferencesSerializer({"preferences": rows}, context={"request": request}).data)

    @extend_schema(request=OwnPreferencesSerializer, responses=OwnPreferencesSerializer)
    @preferences.mapping.put
    def replace_preferences(self, request: Request) -> Response:
        """Replaces the caller's preferences with the list given (an empty list clears them)."""
        given = OwnPreferencesSerializer(data=request.data, context={"request": request})
        given.is_valid(raise_exception=True)
        key = user_key(request.user.pk)
        rows = [Preference(recipient_key=key, **item) for item in given.validated_data["preferences"]]
        try:
            with transaction.atomic():
                Preference.objects.filter(pk__in=own_preferences(request.user).values("pk")).delete()
                Preference.objects.bulk_create(rows)
        except IntegrityError as exc:
            raise Conflict("Your preferences changed meanwhile; read them and try again.") from exc
        return self.preferences(request)
