from __future__ import annotations

import datetime
from calendar import monthrange

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from timezone_field import TimeZoneField

from ledger import currencies


class CompanyScopedQuerySet(models.QuerySet):
    """Scoping for every row that belongs to a company; the API scopes through here."""

    company_field = "company"

    def for_company(self, company: Company | int) -> CompanyScopedQuerySet:
        return self.filter(**{self.company_field: company})

    def for_user(self, user) -> CompanyScopedQuerySet:
        if not user.is_authenticated:
            return self.none()
        if user.is_staff:
            return self.all()
        return self.filter(**{f"{self.company_field}__memberships__user": user})


class CompanyQuerySet(models.QuerySet):
    def for_company(self, company: Company | int) -> CompanyQuerySet:
        return self.filter(pk=getattr(company, "pk", company))

    def for_user(self, user) -> CompanyQuerySet:
        """The companies ``user`` may read: their own, or all of them for staff."""
        if not user.is_authenticated:
            return self.none()
        if user.is_staff:
            return self.all()
        return self.of_member(user)

    def of_member(self, user) -> CompanyQuerySet:
        """The companies ``user`` belongs to, staff or not: what they may change."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(memberships__user=user)


class Company(models.Model):
    """A business whose books the platform keeps. Every domain row belongs to one."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=60, unique=True)
    base_currency = models.CharField(max_length=3, choices=currencies.CHOICES, default="GBP")
    timezone = TimeZoneField(default="Europe/London", help_text="Business dates are dates in this timezone.")
    fiscal_year_start_month = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(12)]
    )
    fiscal_year_start_day = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(31)]
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CompanyQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "companies"
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(fiscal_year_start_month__gte=1, fiscal_year_start_month__lte=12),
                name="company_fiscal_month_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(fiscal_year_start_day__gte=1, fiscal_year_start_day__lte=31),
                name="company_fiscal_day_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # A fiscal year must start on a day every year has: 29 February does not qualify.
        month, day = self.fiscal_year_start_month, self.fiscal_year_start_day
        if month and day and 1 <= month <= 12 and day > monthrange(2023, month)[1]:
            raise ValidationError({"fiscal_year_start_day": f"Month {month} has no day {day} in every year."})
        self._check_books_unchanged()

    # Fixed once the company has books: amounts are in the base currency and its minor
    # units, and fiscal years already opened would overlap years on a new start day.
    FIXED_WITH_BOOKS = ("base_currency", "fiscal_year_start_month", "fiscal_year_start_day")

    def _check_books_unchanged(self) -> None:
        if self.pk is None:
            return
        stored = Company.objects.filter(pk=self.pk).values(*self.FIXED_WITH_BOOKS).first()
        changed = [name for name in self.FIXED_WITH_BOOKS if stored and stored[name] != getattr(self, name)]
        if changed and self.fiscal_years.exists():
            raise ValidationError(
                {name: "The company has books (fiscal years opened); this can no longer change." for name in changed}
            )

    @property
    def minor_units(self) -> int:
        return currencies.MINOR_UNITS[self.base_currency]

    def today(self) -> datetime.date:
        """The business date now, in the company's timezone."""
        return datetime.datetime.now(tz=self.timezone).date()

    def fiscal_year_containing(self, day: datetime.date) -> tuple[datetime.date, datetime.date]:
        """First and last date of the fiscal year that contains ``day``."""
        start = datetime.date(day.year, self.fiscal_year_start_month, self.fiscal_year_start_day)
        if start > day:
            start = start.replace(year=day.year - 1)
        next_start = start.replace(year=start.year + 1)
        return start, next_start - datetime.timedelta(days=1)


class Membership(models.Model):
    """A user's access to a company. Staff users see every company without one."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "company"], name="membership_unique_user_company")]

    def __str__(self) -> str:
        return f"{self.user} in {self.company}"
