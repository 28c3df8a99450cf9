from __future__ import annotations

from django.db import DatabaseError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from scheduling.health import check_health


class HealthView(APIView):
    """Database, broker, cache, workers and beat: each ok or failing, with its latency.

    Answers 503 when a critical check (HEALTH_CRITICAL_CHECKS) fails. No authentication
    needed, so load balancers and uptime monitors can call it; staff callers also see
    each check's detail (hosts, workers, errors).
    """

    permission_classes = [AllowAny]

    def perform_authentication(self, request: Request) -> None:
        """Credentials are optional here: a bad token must not turn a health check into a 401."""

    def _is_staff(self, request: Request) -> bool:
        try:
            return bool(request.user and request.user.is_staff)
        except (AuthenticationFailed, DatabaseError):
            # A database that is down cannot look the token up; the report says it is down,
            # and without the details a staff caller would have seen.
            return False

    @extend_schema(
        responses={200: OpenApiResponse(description="ok or degraded"), 503: OpenApiResponse(description="failing")}
    )
    def get(self, request: Request) -> Response:
        report = check_health()
        response = Response(report.as_dict(details=self._is_staff(request)), status=report.http_status)
        response["Cache-Control"] = "no-store"
        return response
