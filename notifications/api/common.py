"""What the notification endpoints share: the caller's companies, the rule that changing a
company's rows takes membership of it, ``?company=`` by id or slug, and serializers that
answer 400 on the field at fault.

The company model is whatever notifications belong to (``SCHEDULING_COMPANY_MODEL``); its
manager offers ``for_user(user)`` (the companies the user may read: members, staff all) and
``of_member(user)`` (the companies the user belongs to, staff or not: what they may change).
"""

from __future__ import annotations

import copy
import datetime

import django_filters
from django import forms
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, models, transaction
from rest_framework import exceptions, permissions, serializers

from config.companies import CompanyFilter, company_model
from notifications.models import kind_validator

WRITE_REFUSED = "Only members of the company change its notifications."
PLATFORM_REFUSED = "Only superusers change the platform's rows (those of no company)."


def readable_companies(user) -> models.QuerySet:
    return company_model().objects.for_user(user)


def member_companies(user) -> models.QuerySet:
    return company_model().objects.of_member(user)


def is_member(user, company_id: int) -> bool:
    return member_companies(user).filter(pk=company_id).exists()


def is_superuser(user) -> bool:
    return bool(user.is_authenticated and user.is_staff and user.is_superuser)


class MembersWrite(permissions.BasePermission):
    """Reading follows ``for_user``, so staff read every company; changing a company's rows
    takes membership of it, staff included. A platform row (no company) is a superuser's."""

    message = WRITE_REFUSED

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        if obj.company_id is None:
            self.message = PLATFORM_REFUSED
            return is_superuser(request.user)
        # A caller who is not staff reached the object through for_user: a member.
        return not request.user.is_staff or is_member(request.user, obj.company_id)


class CompanyField(serializers.PrimaryKeyRelatedField):
    """The company a row goes into: one the caller is a member of. Another company's id is
    refused with the same 'does not exist' as an id nobody has (staff, who read every
    company, are told they are no member instead)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "The company's id: one you are a member of.")
        super().__init__(queryset=company_model().objects.all(), **kwargs)

    def get_queryset(self):
        return readable_companies(self.context["request"].user)

    def to_internal_value(self, data):
        company = super().to_internal_value(data)
        user = self.context["request"].user
        if user.is_staff and not is_member(user, company.pk):
            raise exceptions.PermissionDenied(WRITE_REFUSED)
        return company


def scoped(model: type[models.Model]):
    """A django-filter queryset callable: the rows of the caller's companies."""

    def rows(request):
        return model.objects.for_user(request.user) if request is not None else model.objects.none()

    return rows


class CompanyFilterSet(django_filters.FilterSet):
    company = CompanyFilter()


class RowSerializer(serializers.ModelSerializer):
    """A company's row written through the API: it stays in its company, the model's
    ``clean()`` answers 400, and its natural key (``unique`` with the company) is checked
    here so a clash is a message on the field at fault rather than an IntegrityError."""

    unique: tuple[str, ...] = ()  # the natural key besides the company; the last field is at fault
    unique_message = "Another row already has these values."

    def validate_company(self, company):
        if self.instance is not None and getattr(company, "pk", None) != self.instance.company_id:
            raise serializers.ValidationError("It cannot move to another company.")
        return company

    def validate(self, attrs: dict) -> dict:
        candidate = self.candidate(attrs)
        try:
            candidate.clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        if self.clashes(candidate):
            raise serializers.ValidationError({self.unique[-1]: [self.unique_message]})
        return attrs

    def candidate(self, attrs: dict) -> models.Model:
        model = self.Meta.model
        fields = {field.name for field in model._meta.concrete_fields}
        candidate = copy.copy(self.instance) if self.instance is not None else model()
        for name, value in attrs.items():
            if name in fields:
                setattr(candidate, name, value)
        return candidate

    def clashes(self, candidate: models.Model) -> bool:
        if not self.unique:
            return False
        key = {name: getattr(candidate, name) for name in self.unique}
        others = self.Meta.model.objects.filter(company_id=candidate.company_id, **key)
        return others.exclude(pk=candidate.pk).exists()

    def save(self, **kwargs):
        try:
            with transaction.atomic():
                return super().save(**kwargs)
        except IntegrityError as exc:
            # Another request took the natural key between validate() and the write.
            field = self.unique[-1] if self.unique else "non_field_errors"
            raise serializers.ValidationError({field: [self.unique_message]}) from exc


class StrictBooleanField(forms.NullBooleanField):
    """``true`` or ``false`` (``1`` or ``0``); anything else is a 400, not a filter ignored."""

    widget = forms.TextInput
    default_error_messages = {"invalid": 'Use "true" or "false".'}

    def to_python(self, value):
        if value in self.empty_values:
            return None
        answer = {"true": True, "1": True, "false": False, "0": False}.get(str(value).strip().lower())
        if answer is None:
            raise DjangoValidationError(self.error_messages["invalid"], code="invalid")
        return answer

    def validate(self, value) -> None:
        pass


class BooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class UtcDateTimeField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 moment, turned to UTC here: an offset no database takes (past ±16:00 on
    PostgreSQL) or a moment past the calendar's end is a 400, not a 500."""

    def to_python(self, value):
        moment = super().to_python(value)
        if moment is None:
            return None
        try:
            return moment.astimezone(datetime.UTC)
        except (OverflowError, ValueError) as error:
            raise DjangoValidationError("Enter a moment between the years 1 and 9999.", code="invalid") from error


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


def preference_kind_field() -> serializers.CharField:
    """A preference's kind: one kind, or empty for every kind without its own preference."""
    return serializers.CharField(
        max_length=64,
        allow_blank=True,
        default="",
        validators=[kind_validator],
        help_text="Empty: every kind without its own preference.",
    )
