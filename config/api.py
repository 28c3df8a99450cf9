"""What every API endpoint shares: one error shape and cursor pagination.

Every error a client sees has the same body::

    {"error": {"status": 400, "code": "invalid", "message": "...", "fields": {"name": ["..."]}}}

``fields`` is present for validation errors only.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, pagination
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger("config.api")


def error_body(status: int, code: str, message: str, fields: dict | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"status": status, "code": code, "message": message}
    if fields is not None:
        error["fields"] = fields
    return {"error": error}


def _translate(exc: Exception) -> Exception:
    """Django's own exceptions become their DRF equivalents so they get the same shape."""
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        return exceptions.ValidationError(detail)
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    return exc


def exception_handler(exc: Exception, context: dict) -> Response | None:
    exc = _translate(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: Django logs it and handler500 answers
    assert isinstance(exc, exceptions.APIException)
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        if isinstance(detail, dict):
            body = error_body(response.status_code, "invalid", "Some fields are invalid.", detail)
        else:
            messages = [str(m) for m in detail] if isinstance(detail, list) else [str(detail)]
            body = error_body(response.status_code, "invalid", " ".join(messages), {"non_field_errors": messages})
    else:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        body = error_body(response.status_code, code, str(exc.detail))
    response.data = body
    return response


def not_found(request: HttpRequest, exception: Exception | None = None):
    """404 for URLs no view answers: JSON under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(404, "not_found", "Not found."), status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def server_error(request: HttpRequest):
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(500, "server_error", "The server failed; the error is logged."), status=500)
    from django.views.defaults import server_error as page_server_error

    return page_server_error(request)


class Conflict(exceptions.APIException):
    """The request is understood but the object's state does not allow it."""

    status_code = 409
    default_detail = "The object's state does not allow this."
    default_code = "conflict"


class CursorPagination(pagination.CursorPagination):
    """Keyset pagination: stable under inserts and as fast on page 1,000 as on page 1.

    Views choose the order with ``cursor_ordering`` (it must end in a unique field).
    """

    ordering = "-pk"
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_ordering(self, request, queryset, view):
        ordering = getattr(view, "cursor_ordering", None)
        if ordering:
            return (ordering,) if isinstance(ordering, str) else tuple(ordering)
        return super().get_ordering(request, queryset, view)


class FileFormatNegotiation(DefaultContentNegotiation):
    """DRF reads ``?format=`` as a renderer's name and answers 404 for csv, txt or xlsx;
    where it names the file to export, the renderer goes by the Accept header alone."""

    settings = SimpleNamespace(URL_FORMAT_OVERRIDE=None)  # the one api_settings entry negotiation reads
