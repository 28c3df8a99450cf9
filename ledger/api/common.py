"""What the ledger's endpoints share: company scoping of everything a caller names, query
parameters that fail with 400s, and money in (strings, never floats) and out (strings with
the currency's decimal places)."""

from __future__ import annotations

from decimal import Decimal

import django_filters
from rest_framework import exceptions, permissions, serializers

from config.companies import COMPANY_HELP, CompanyFilter, company_lookup
from ledger import currencies
from ledger.models import Company, Membership
from ledger.models.journals import MONEY

# --- Scoping ---------------------------------------------------------------------------


def find_company(user, key: str | int) -> Company | None:
    """One of the caller's companies by id or slug. Another company's answer is the same
    None as a company nobody has, so a caller cannot learn which companies exist."""
    return Company.objects.for_user(user).filter(**company_lookup(key)).first()


def scoped(model):
    """A django-filter queryset callable: the rows of the caller's companies."""

    def rows(request):
        return model.objects.for_user(request.user) if request is not None else model.objects.none()

    return rows


class ScopedPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """An object of the caller's companies by id; any other id is refused with the same
    'does not exist' as an id nobody has."""

    def get_queryset(self):
        return super().get_queryset().for_user(self.context["request"].user)


def is_member(user, company_id: int) -> bool:
    return Membership.objects.filter(user=user, company_id=company_id).exists()


class MembersWrite(permissions.BasePermission):
    """Reading follows ``for_user``, so staff read every company; changing a company's
    books takes membership of it, staff included."""

    message = "Only members of the company change its books."

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in permissions.SAFE_METHODS or not request.user.is_staff:
            return True  # a caller who is not staff reached the object through for_user: a member
        return is_member(request.user, obj.company_id)


class CompanyField(ScopedPrimaryKeyRelatedField):
    """The company a new row goes into: one the caller is a member of."""

    def __init__(self, **kwargs):
        super().__init__(queryset=Company.objects.all(), **kwargs)

    def to_internal_value(self, data) -> Company:
        company = super().to_internal_value(data)
        user = self.context["request"].user
        if user.is_staff and not is_member(user, company.pk):
            raise exceptions.PermissionDenied(MembersWrite.message)
        return company


class CompanyFilterSet(django_filters.FilterSet):
    company = CompanyFilter()


class CompanyQuery(serializers.Serializer):
    """Query parameters naming one company; it may be left out by a caller who sees one."""

    company = serializers.CharField(required=False, help_text=f"{COMPANY_HELP} Required when you see several.")

    def validate_company(self, key: str) -> Company:
        company = find_company(self.context["request"].user, key)
        if company is None:
            raise serializers.ValidationError(f'No company "{key}".')
        return company

    def validate(self, attrs: dict) -> dict:
        if "company" not in attrs:
            seen = list(Company.objects.for_user(self.context["request"].user).order_by("pk")[:2])
            if len(seen) != 1:
                reason = "you see several companies" if seen else "you belong to no company"
                raise serializers.ValidationError({"company": [f"Required: {reason}."]})
            attrs["company"] = seen[0]
        return attrs


# --- Money -----------------------------------------------------------------------------


class MoneyField(serializers.DecimalField):
    """An amount sent as a string ("12.30") or a whole number. A JSON number with a fraction
    has become a binary float by the time it is parsed, and may already be a cent out."""

    default_error_messages = {"float": 'Send amounts as strings ("12.30"): a number with a fraction loses cents.'}

    def __init__(self, **kwargs):
        super().__init__(**{**MONEY, **kwargs})

    def to_internal_value(self, data):
        if isinstance(data, float):
            self.fail("float")
        return super().to_internal_value(data)


def money(value: Decimal | None, currency: str) -> str | None:
    """``value`` as a string with ``currency``'s decimal places: "12.30" GBP, "1200" JPY."""
    if value is None:
        return None
    return str(value.quantize(currencies.quantum(currencies.MINOR_UNITS.get(currency, 3))))


class CompanyMoney:
    """A serializer mixin: ``money_fields`` go out in the company's currency's places."""

    money_fields: tuple[str, ...] = ()

    def to_representation(self, instance) -> dict:
        data = super().to_representation(instance)
        currency = instance.company.base_currency
        for name in self.money_fields:
            data[name] = money(getattr(instance, name), currency)
        return data


def read_only_money() -> serializers.DecimalField:
    return serializers.DecimalField(**MONEY, read_only=True)


class CompanyImmutable:
    """A serializer mixin: an existing row stays in its company."""

    def validate_company(self, company: Company) -> Company:
        if self.instance is not None and company.pk != self.instance.company_id:
            raise serializers.ValidationError("It cannot move to another company.")
        return company
