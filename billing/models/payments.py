"""Money received and credit given, and how each is allocated to invoices.

A payment or credit note posts its whole amount to the customer's receivables when it is
recorded; allocations only say which invoices it settles. What is not allocated stays a
credit on the customer's account (an open item of its own), so the receivables control
account always equals invoices due less unallocated payments and credits.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models.functions import Round

from billing.models.customers import Customer
from billing.models.invoices import Invoice
from ledger import currencies
from ledger.models import CompanyScopedQuerySet
from ledger.models.journals import MONEY

ZERO = Decimal(0)


class PaymentMethod(models.TextChoices):
    BANK_TRANSFER = "bank_transfer", "bank transfer"
    CARD = "card"
    CASH = "cash"
    CHEQUE = "cheque"
    DIRECT_DEBIT = "direct_debit", "direct debit"
    MOBILE_MONEY = "mobile_money", "mobile money"
    OTHER = "other"


class Payment(models.Model):
    company = models.ForeignKey("ledger.Company", on_delete=models.PROTECT, related_name="payments")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="payments")
    date = models.DateField()
    amount = models.DecimalField(**MONEY, validators=[MinValueValidator(Decimal("0.001"))])
    currency = models.CharField(max_length=3, choices=currencies.CHOICES)
    method = models.CharField(max_length=20, choices=PaymentMethod.choices, default=PaymentMethod.BANK_TRANSFER)
    reference = models.CharField(max_length=100, blank=True, help_text="The bank's or processor's reference.")
    external_id = models.CharField(
        max_length=100, blank=True, help_text="The client's id for this payment; a second record with it is refused."
    )
    allocated = models.DecimalField(**MONEY, default=ZERO)
    unallocated = models.DecimalField(**MONEY, default=ZERO)
    journal_entry = models.ForeignKey(
        "ledger.JournalEntry", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CompanyScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-date", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "external_id"],
                condition=~models.Q(external_id=""),
                name="payment_unique_external_id",
            ),
            models.CheckConstraint(
                condition=models.Q(unallocated=Round(models.F("amount") - models.F("allocated"), 3)),
                name="payment_unallocated_is_rest",
            ),
            models.CheckConstraint(condition=models.Q(unallocated__gte=0), name="payment_not_over_allocated"),
        ]
        indexes = [models.Index(fields=["company", "customer", "date"], name="payment_customer_date")]

    def __str__(self) -> str:
        return f"Payment {self.pk} of {self.amount} {self.currency}"


class CreditNote(models.Model):
    company = models.ForeignKey("ledger.Company", on_delete=models.PROTECT, related_name="credit_notes")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="credit_notes")
    number = models.CharField(max_length=32, blank=True)
    date = models.DateField()
    invoice = models.ForeignKey(
        Invoice,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="credit_notes",
        help_text="The invoice it credits, when it credits one.",
    )
    reason = models.CharField(max_length=500, blank=True)
    currency = models.CharField(max_length=3, choices=currencies.CHOICES)
    subtotal = models.DecimalField(**MONEY, validators=[MinValueValidator(0)])
    tax = models.DecimalField(**MONEY, default=ZERO, validators=[MinValueValidator(0)])
    total = models.DecimalField(**MONEY)
    allocated = models.DecimalField(**MONEY, default=ZERO)
    unallocated = models.DecimalField(**MONEY, default=ZERO)
    income_account = models.ForeignKey(
        "ledger.Account",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The income it reduces; the company's sales account when empty.",
    )
    journal_entry = models.ForeignKey(
        "ledger.JournalEntry", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CompanyScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-date", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "number"], condition=~models.Q(number=""), name="credit_note_unique_number"
            ),
            models.CheckConstraint(
                condition=models.Q(total=Round(models.F("subtotal") + models.F("tax"), 3)),
                name="credit_note_total_is_sum",
            ),
            models.CheckConstraint(
                condition=models.Q(unallocated=Round(models.F("total") - models.F("allocated"), 3)),
                name="credit_note_unallocated_is_rest",
            ),
            models.CheckConstraint(condition=models.Q(unallocated__gte=0), name="credit_note_not_over_allocated"),
        ]

    def __str__(self) -> str:
        return self.number or f"credit note {self.pk}"


class PaymentAllocation(models.Model):
    """Part of a payment settling an invoice, as of ``date`` (never before either document)."""

    company = models.ForeignKey("ledger.Company", on_delete=models.PROTECT, related_name="+")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="allocations")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payment_allocations")
    amount = models.DecimalField(**MONEY, validators=[MinValueValidator(Decimal("0.001"))])
    date = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CompanyScopedQuerySet.as_manager()

    class Meta:
        ordering = ["date", "pk"]
        constraints = [models.CheckConstraint(condition=models.Q(amount__gt=0), name="payment_allocation_positive")]

    def __str__(self) -> str:
        return f"{self.amount} of payment {self.payment_id} to invoice {self.invoice_id}"


class CreditAllocation(models.Model):
    """Part of a credit note settling an invoice, as of ``date``."""

    company = models.ForeignKey("ledger.Company", on_delete=models.PROTECT, related_name="+")
    credit_note = models.ForeignKey(CreditNote, on_delete=models.PROTECT, related_name="allocations")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_allocations")
    amount = models.DecimalField(**MONEY, validators=[MinValueValidator(Decimal("0.001"))])
    date = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CompanyScopedQuerySet.as_manager()

    class Meta:
        ordering = ["date", "pk"]
        constraints = [models.CheckConstraint(condition=models.Q(amount__gt=0), name="credit_allocation_positive")]

    def __str__(self) -> str:
        return f"{self.amount} of {self.credit_note} to invoice {self.invoice_id}"
