"""What was sent, for the members of a company: its notifications with their deliveries,
the deliveries on their own, and resending one that failed or was suppressed."""

from __future__ import annotations

import django_filters
from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import Conflict
from notifications.api.common import BooleanFilter, CompanyFilterSet, MembersWrite, UtcDateTimeFilter, scoped
from notifications.models import (
    Channel,
    Delivery,
    DeliveryStatus,
    Notification,
    Priority,
    WebhookEndpoint,
)
from notifications.services import delivery as delivery_service


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = Delivery
        fields = [
            "id",
            "notification",
            "company",
            "channel",
            "endpoint",
            "status",
            "attempts",
            "last_error",
            "sent_at",
            "next_attempt_at",
            "provider_message_id",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class NotificationSerializer(serializers.ModelSerializer):
    deliveries = DeliverySerializer(many=True, read_only=True)

    class Meta:
        model = Notification
        fields = [
            "id",
            "company",
            "kind",
            "priority",
            "dedupe_key",
            "recipient_key",
            "recipient_name",
            "recipient_email",
            "user",
            "channels",
            "data",
            "subject",
            "body",
            "rendered_at",
            "in_app_at",
            "read_at",
            "created_at",
            "deliveries",
        ]
        read_only_fields = fields


class NotificationFilter(CompanyFilterSet):
    priority = django_filters.ChoiceFilter(choices=Priority.choices)
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")
    read = BooleanFilter(field_name="read_at", lookup_expr="isnull", exclude=True, help_text="true: read only.")

    class Meta:
        model = Notification
        fields = ["company", "kind", "priority", "recipient_key", "created_after", "created_before", "read"]


class NotificationViewSet(viewsets.ReadOnlyModelViewSet):
    """The notifications of the caller's companies, newest first, each with its deliveries."""

    serializer_class = NotificationSerializer
    filterset_class = NotificationFilter
    cursor_ordering = ("-created_at", "-pk")
    lookup_value_converter = "int"

    def get_queryset(self):
        deliveries = Prefetch("deliveries", queryset=Delivery.objects.order_by("pk"))
        return Notification.objects.for_user(self.request.user).prefetch_related(deliveries)


# --- Deliveries ------------------------------------------------------------------------


class DeliveryFilter(CompanyFilterSet):
    status = django_filters.ChoiceFilter(choices=DeliveryStatus.choices)
    channel = django_filters.ChoiceFilter(choices=Channel.choices)
    endpoint = django_filters.ModelChoiceFilter(queryset=scoped(WebhookEndpoint))
    notification = django_filters.ModelChoiceFilter(queryset=scoped(Notification))

    class Meta:
        model = Delivery
        fields = ["company", "status", "channel", "endpoint", "notification"]


class DeliveryViewSet(viewsets.ReadOnlyModelViewSet):
    """Deliveries of the caller's companies, newest first. ``resend`` queues a failed or
    suppressed one again with fresh attempts; any other state answers 409."""

    serializer_class = DeliverySerializer
    permission_classes = [permissions.IsAuthenticated, MembersWrite]
    filterset_class = DeliveryFilter
    lookup_value_converter = "int"

    def get_queryset(self):
        return Delivery.objects.for_user(self.request.user)

    @extend_schema(request=None, responses=DeliverySerializer)
    @action(detail=True, methods=["post"])
    def resend(self, request: Request, pk=None) -> Response:
        try:
            delivery = delivery_service.resend(self.get_object())
        except delivery_service.NotResendable as exc:
            raise Conflict(str(exc)) from exc
        return Response(self.get_serializer(delivery).data)
