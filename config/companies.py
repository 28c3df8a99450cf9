"""Company scoping that every app's API and admin share, for whatever model a company is
(``settings.SCHEDULING_COMPANY_MODEL``). Here rather than in the ledger, which defines the
model, because the floor-1 apps (notifications) scope by company too and import no domain
app. The model's manager offers ``for_user(user)`` (the companies the user may read) and
``of_member(user)`` (the companies the user belongs to).
"""

from __future__ import annotations

import django_filters
from django import forms
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import models
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

COMPANY_HELP = "The company's id or slug."
MAX_ID_DIGITS = 18  # a longer number is no id a bigint column holds


def company_model() -> type[models.Model]:
    return apps.get_model(settings.SCHEDULING_COMPANY_MODEL)


def company_lookup(key: str | int) -> dict:
    """The filter for a company named by id or slug."""
    key = str(key).strip()
    if key.isascii() and key.isdigit() and len(key) <= MAX_ID_DIGITS:
        return {"pk": int(key)}
    return {"slug": key}


def companies_of_caller(request) -> models.QuerySet:
    """A django-filter queryset callable: the companies the caller may read."""
    objects = company_model().objects
    return objects.for_user(request.user) if request is not None else objects.none()


class CompanyChoiceField(forms.ModelChoiceField):
    default_error_messages = {"invalid_choice": 'No company "%(value)s".'}

    def to_python(self, value):
        if value in self.empty_values:
            return None
        company = self.queryset.filter(**company_lookup(value)).first()
        if company is None:
            raise ValidationError(self.error_messages["invalid_choice"], code="invalid_choice", params={"value": value})
        return company


@extend_schema_field(OpenApiTypes.STR)
class CompanyFilter(django_filters.ModelChoiceFilter):
    """``?company=`` by id or slug, among the caller's companies only."""

    field_class = CompanyChoiceField

    def __init__(self, **kwargs):
        kwargs.setdefault("queryset", companies_of_caller)
        kwargs.setdefault("help_text", COMPANY_HELP)
        super().__init__(**kwargs)


class AdminCompanyFilter(admin.RelatedFieldListFilter):
    """The admin's company filter, offering only the companies the operator sees:
    superusers all, other staff those they are members of."""

    def field_choices(self, field, request, model_admin):
        ordering = self.field_admin_ordering(field, request, model_admin)
        if request.user.is_superuser:
            return field.get_choices(include_blank=False, ordering=ordering)
        limit = {"pk__in": company_model().objects.of_member(request.user)}
        return field.get_choices(include_blank=False, limit_choices_to=limit, ordering=ordering)
