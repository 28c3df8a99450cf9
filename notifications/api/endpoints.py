"""Client apps' webhook endpoints. The signing secret is write-only and stored encrypted: a
secret the platform generates (on create without one, or on ``rotate-secret``) is shown in
that one answer and never again."""

from __future__ import annotations

from django.core.validators import URLValidator
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from notifications.api.common import CompanyField, CompanyFilterSet, MembersWrite, RowSerializer
from notifications.models import WebhookEndpoint, kind_validator
from notifications.services import webhooks

SECRET_MIN_LENGTH = 24


class WebhookEndpointSerializer(RowSerializer):
    """A client app's URL that receives the company's notifications, signed with its secret."""

    company = CompanyField()
    url = serializers.URLField(
        max_length=500,
        validators=[
            URLValidator(schemes=["http", "https"], message="Enter an http or https URL."),
            webhooks.validate_destination,
        ],
    )
    kinds = serializers.ListField(
        child=serializers.CharField(max_length=64, validators=[kind_validator]),
        required=False,
        help_text="The kinds it receives; empty receives every kind.",
    )
    secret = serializers.CharField(
        write_only=True,
        required=False,
        min_length=SECRET_MIN_LENGTH,
        max_length=200,
        trim_whitespace=False,
        help_text="The signing secret, write-only. Leave it out on create to have one generated "
        "and returned once in the answer; send one on update to replace it.",
    )

    unique = ("url",)
    unique_message = "The company already has an endpoint at this URL."

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "company",
            "name",
            "url",
            "kinds",
            "secret",
            "active",
            "consecutive_failures",
            "disabled_at",
            "disabled_reason",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["active", "consecutive_failures", "disabled_at", "disabled_reason"]
        validators = []  # the URL's uniqueness in its company is RowSerializer's check

    def validate_kinds(self, kinds: list[str]) -> list[str]:
        return list(dict.fromkeys(kinds))

    def create(self, validated_data: dict) -> WebhookEndpoint:
        endpoint = WebhookEndpoint(**validated_data)
        if "secret" not in validated_data:
            endpoint.secret = endpoint.generated_secret = webhooks.new_secret()
        endpoint.save()
        return endpoint

    def update(self, endpoint: WebhookEndpoint, validated_data: dict) -> WebhookEndpoint:
        for name, value in validated_data.items():
            setattr(endpoint, name, value)  # ``secret`` is the model's encrypting setter
        endpoint.save()
        return endpoint


class CreatedEndpointSerializer(WebhookEndpointSerializer):
    """The endpoint, with a secret the platform generated: shown in this answer only."""

    secret = serializers.CharField(
        source="generated_secret",
        read_only=True,
        allow_null=True,
        default=None,
        help_text="The secret the platform generated, shown this once (null when you sent your own). "
        "Keep it: no other answer carries it.",
    )


class EndpointFilter(CompanyFilterSet):
    class Meta:
        model = WebhookEndpoint
        fields = ["company", "active"]


class WebhookEndpointViewSet(viewsets.ModelViewSet):
    """The caller's companies' webhook endpoints. ``enable`` switches one back on after it
    was disabled for failing; ``rotate-secret`` replaces the secret and shows the new one once."""

    serializer_class = WebhookEndpointSerializer
    permission_classes = [permissions.IsAuthenticated, MembersWrite]
    filterset_class = EndpointFilter
    cursor_ordering = ("name", "pk")
    lookup_value_converter = "int"

    def get_queryset(self):
        return WebhookEndpoint.objects.for_user(self.request.user)

    @extend_schema(responses={201: CreatedEndpointSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        given = self.get_serializer(data=request.data)
        given.is_valid(raise_exception=True)
        endpoint = given.save()
        return Response(CreatedEndpointSerializer(endpoint).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=CreatedEndpointSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk=None) -> Response:
        endpoint = self.get_object()
        endpoint.secret = endpoint.generated_secret = webhooks.new_secret()
        endpoint.save(update_fields=["secret_encrypted", "updated_at"])
        return Response(CreatedEndpointSerializer(endpoint).data)

    @extend_schema(request=None, responses=WebhookEndpointSerializer)
    @action(detail=True, methods=["post"])
    def enable(self, request: Request, pk=None) -> Response:
        endpoint = self.get_object()
        webhooks.enable(endpoint)
        return Response(self.get_serializer(self.get_queryset().get(pk=endpoint.pk)).data)
