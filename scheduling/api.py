from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from scheduling.health import check_health


class HealthView(APIView):
    """Database, broker, cache, workers and beat: each ok or failing, with its latency.

    Answers 503 when a critical check (HEALTH_CRITICAL_CHECKS) fails. No authentication,
    so load balancers and uptime monitors can call it.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        responses={200: OpenApiResponse(description="ok or degraded"), 503: OpenApiResponse(description="failing")}
    )
    def get(self, request: Request) -> Response:
        report = check_health()
        response = Response(report.as_dict(), status=report.http_status)
        response["Cache-Control"] = "no-store"
        return response


urlpatterns = [path("health", HealthView.as_view(), name="health")]
