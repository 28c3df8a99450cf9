"""GET /metrics for Prometheus: a bearer token (METRICS_TOKEN) or a staff login."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from scheduling.services import metrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _allowed(request: HttpRequest) -> bool:
    header = request.headers.get("Authorization", "")
    if settings.METRICS_TOKEN and header.startswith("Bearer "):
        # Bytes, not str: compare_digest raises TypeError for non-ASCII text, which any
        # client can send in a header; that must be a 401, not a 500.
        given = header.removeprefix("Bearer ").strip().encode()
        return hmac.compare_digest(given, settings.METRICS_TOKEN.encode())
    if request.user.is_authenticated:
        return request.user.is_staff
    if header.startswith("Token "):
        try:
            found = TokenAuthentication().authenticate(request)
        except AuthenticationFailed:
            return False
        return bool(found and found[0].is_staff)
    return False


def metrics_view(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return HttpResponse("GET only\n", status=405, content_type="text/plain")
    if not _allowed(request):
        response = HttpResponse("authentication required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics.render(), content_type=CONTENT_TYPE)
