"""Who is billed for what: customers, the fee structures (courses, products) they enrol
in, and their enrolments."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from ledger import currencies
from ledger.models import CompanyScopedQuerySet
from ledger.models.journals import MONEY

RATE = {"max_digits": 7, "decimal_places": 4}  # a percentage: 16.0000 is 16 %


class Cadence(models.TextChoices):
    MONTHLY = "monthly"
    WEEKLY = "weekly"
    QUARTERLY = "quarterly"
    ANNUAL = "annual"


class Customer(models.Model):
    """Someone the company bills: a student's account, a client. Its sub-ledger party on
    journal lines is ``customer:<id>``."""

    company = models.ForeignKey("ledger.Company", on_delete=models.PROTECT, related_name="customers")
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    external_ref = models.CharField(
        max_length=100, blank=True, help_text="The customer's id in another system (a student number)."
    )
    credit_limit = models.DecimalField(**MONEY, null=True, blank=True, validators=[MinValueValidator(0)])
    payment_terms_days = models.PositiveSmallIntegerField(
        default=14, validators=[MaxValueValidator(365)], help_text="Days from an invoice's issue to its due date."
    )
    portal_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="billing_customers",
        help_text="A client-app user who sees this customer's invoices and notifications.",
    )
    active = models.BooleanField(default=True, help_text="Inactive customers are left out of invoice runs.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CompanyScopedQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "external_ref"],
                condition=~models.Q(external_ref=""),
                name="customer_unique_external_ref",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def party(self) -> str:
        return party_of(self.pk)

    @property
    def notification_user(self):
        return self.portal_user_id


def party_of(customer_id: int) -> str:
    """The party key a customer's receivables lines carry."""
    return f"customer:{customer_id}"


class FeeStructure(models.Model):
    """A course or product billed at a cadence: its amount, what it is made of, its tax."""

    company = models.ForeignKey("ledger.Company", on_delete=models.PROTECT, related_name="fee_structures")
    code = models.CharField(max_length=40)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    amount = models.DecimalField(
        **MONEY, validators=[MinValueValidator(0)], help_text="Per period, before tax; the sum of its components."
    )
    currency = models.CharField(max_length=3, choices=currencies.CHOICES)
    cadence = models.CharField(max_length=10, choices=Cadence.choices, default=Cadence.MONTHLY)
    tax_rate = models.DecimalField(
        **RATE, default=Decimal(0), validators=[MinValueValidator(0), MaxValueValidator(100)], help_text="Percent."
    )
    income_account = models.ForeignKey(
        "ledger.Account",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Where its income posts; the company's sales account when empty.",
    )
    active = models.BooleanField(default=True, help_text="Inactive fee structures are not billed.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CompanyScopedQuerySet.as_manager()

    class Meta:
        ordering = ["code"]
        constraints = [models.UniqueConstraint(fields=["company", "code"], name="fee_structure_unique_code")]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class FeeComponent(models.Model):
    """A part of a fee (tuition, materials); each is a line on the invoice."""

    fee_structure = models.ForeignKey(FeeStructure, on_delete=models.CASCADE, related_name="components")
    position = models.PositiveSmallIntegerField(default=0)
    name = models.CharField(max_length=200)
    amount = models.DecimalField(**MONEY, validators=[MinValueValidator(0)])

    class Meta:
        ordering = ["fee_structure", "position", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["fee_structure", "position"], name="fee_component_unique_position")
        ]

    def __str__(self) -> str:
        return self.name


class Enrolment(models.Model):
    """A customer on a fee structure from ``start_date`` to ``end_date`` (open when empty).
    Billed for every period of the fee's cadence it overlaps, the whole period's fee."""

    company = models.ForeignKey("ledger.Company", on_delete=models.PROTECT, related_name="enrolments")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="enrolments")
    fee_structure = models.ForeignKey(FeeStructure, on_delete=models.PROTECT, related_name="enrolments")
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True)
    consolidate = models.BooleanField(
        default=True, help_text="Billed on the customer's one invoice per period; off: an invoice of its own."
    )
    invoice_on_enrolment = models.BooleanField(
        default=False, help_text="Invoice the period the enrolment starts in as soon as it is created."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CompanyScopedQuerySet.as_manager()

    class Meta:
        ordering = ["customer", "start_date", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end_date__isnull=True) | models.Q(end_date__gte=models.F("start_date")),
                name="enrolment_ends_after_start",
            ),
        ]
        indexes = [models.Index(fields=["company", "customer"], name="enrolment_company_customer")]

    def __str__(self) -> str:
        return f"{self.customer} on {self.fee_structure}"
