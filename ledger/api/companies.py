"""Companies over the API: members read their companies, staff manage all of them."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from timezone_field.rest_framework import TimeZoneSerializerField

from ledger.models import Company


class CompanySerializer(serializers.ModelSerializer):
    timezone = TimeZoneSerializerField(use_pytz=False, required=False)

    class Meta:
        model = Company
        fields = [
            "id",
            "name",
            "slug",
            "base_currency",
            "timezone",
            "fiscal_year_start_month",
            "fiscal_year_start_day",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def validate(self, attrs: dict) -> dict:
        candidate = Company(**{**self._current_values(), **attrs})
        try:
            candidate.clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        return attrs

    def _current_values(self) -> dict:
        if self.instance is None:
            return {}
        return {
            "pk": self.instance.pk,
            "base_currency": self.instance.base_currency,
            "fiscal_year_start_month": self.instance.fiscal_year_start_month,
            "fiscal_year_start_day": self.instance.fiscal_year_start_day,
        }


class IsStaffOrReadOnly(permissions.BasePermission):
    def has_permission(self, request: Request, view) -> bool:
        return request.method in permissions.SAFE_METHODS or bool(request.user and request.user.is_staff)


class CompanyViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """The caller's companies. Creating and changing a company is for staff."""

    serializer_class = CompanySerializer
    permission_classes = [permissions.IsAuthenticated, IsStaffOrReadOnly]
    cursor_ordering = ("slug",)
    filterset_fields = ["slug", "base_currency"]

    def get_queryset(self):
        return Company.objects.for_user(self.request.user)


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    email = serializers.EmailField()
    is_staff = serializers.BooleanField()
    companies = CompanySerializer(many=True)


class MeView(APIView):
    """Who the caller is and which companies they may see."""

    @extend_schema(responses=MeSerializer)
    def get(self, request: Request) -> Response:
        user = request.user
        companies = Company.objects.for_user(user).order_by("slug")
        data = {"username": user.username, "email": user.email, "is_staff": user.is_staff, "companies": companies}
        return Response(MeSerializer(data).data)
