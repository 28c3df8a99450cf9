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
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models
from django.db.models import Q, QuerySet
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


# --- The admin ------------------------------------------------------------------------


def member_companies(user) -> QuerySet:
    return company_model().objects.of_member(user)


def _company_lookup(model: type[models.Model]) -> str | None:
    if model is company_model():
        return "pk__in"
    try:
        field = model._meta.get_field("company")
    except FieldDoesNotExist:
        return None
    return "company__in" if field.is_relation and field.related_model is company_model() else None


def in_companies(queryset: QuerySet, user, *, platform: bool = False) -> QuerySet:
    """``queryset`` as ``user`` may see it in the admin. Superusers run the platform and see
    every company; other staff see only the companies they are members of (and, with
    ``platform``, the rows of no company). The API's ``for_user`` lets every staff user read
    everything; the admin also writes, so it does not. Rows that belong to no company by
    their nature, such as users, are left as they are."""
    lookup = _company_lookup(queryset.model)
    if user.is_superuser or lookup is None:
        return queryset
    visible = Q(**{lookup: member_companies(user)})
    if platform and lookup == "company__in":
        visible |= Q(company=None)
    return queryset.filter(visible)


class CompanyScoped:
    """Mixed into a ModelAdmin or inline (ahead of the admin class) so an operator works only
    on the rows of their companies (see ``in_companies``).

    The admin reads every row through ``get_queryset``: changelists and their counts, change,
    delete and history pages (another company's object "doesn't exist", as a missing one),
    an action's selection, and the autocomplete answers for a field pointing at this model.
    Foreign-key choices in forms are narrowed the same way, so a posted choice from another
    company is not a valid one. A row of no company is the platform's: only superusers make
    or change one, and ``platform_readable`` shows them to other staff, read-only.
    """

    platform_readable = False

    def get_queryset(self, request):
        return in_companies(super().get_queryset(request), request.user, platform=self.platform_readable)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if field is not None and getattr(field, "queryset", None) is not None:
            field.queryset = in_companies(field.queryset, request.user)  # the widget follows its field's queryset
            if db_field.name == "company" and not request.user.is_superuser:
                field.required = True
        return field

    def get_list_filter(self, request):
        return [(name, AdminCompanyFilter) if name == "company" else name for name in super().get_list_filter(request)]

    def _platform_row(self, request, obj) -> bool:
        return obj is not None and _company_lookup(type(obj)) == "company__in" and obj.company_id is None

    def has_change_permission(self, request, obj=None) -> bool:
        if self._platform_row(request, obj) and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if self._platform_row(request, obj) and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)
