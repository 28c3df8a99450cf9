"""Documents to age that do not live in billing: synced from a Xero connection or imported
from a file in the interchange format (a document set). Both land in the same two tables,
so one loader and one SQL aggregate serve every source that is not billing's own books.

A document belongs to exactly one origin: a connection or a document set. Its id is the
origin's own (Xero's GUID, the file's ``id``), unique within the origin.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from ledger.models.journals import MONEY

RATE = {"max_digits": 24, "decimal_places": 10}


class DocumentKind(models.TextChoices):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note", "credit note"
    PAYMENT = "payment"
    OVERPAYMENT = "overpayment"
    PREPAYMENT = "prepayment"


class DocumentSet(models.Model):
    """One imported file: documents and allocations that are aged together. Immutable once
    imported (a corrected file is a new set), so a report over it can be cached for good."""

    name = models.CharField(max_length=200)
    company = models.ForeignKey(
        "ledger.Company",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who may read it; empty: staff only. The file's own company labels are only labels.",
    )
    documents = models.PositiveIntegerField(default=0)
    allocations = models.PositiveIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.documents} documents)"


def _one_origin(prefix: str) -> models.CheckConstraint:
    return models.CheckConstraint(
        condition=models.Q(connection__isnull=True, document_set__isnull=False)
        | models.Q(connection__isnull=False, document_set__isnull=True),
        name=f"{prefix}_one_origin",
    )


class Document(models.Model):
    """An invoice, credit note, payment, overpayment or prepayment as the aging engine sees
    it. ``rate`` is Xero's CurrencyRate: units of ``currency`` per unit of the company's
    base currency (base amount = total ÷ rate)."""

    connection = models.ForeignKey(
        "receivables.XeroConnection", on_delete=models.CASCADE, null=True, blank=True, related_name="documents"
    )
    document_set = models.ForeignKey(
        DocumentSet, on_delete=models.CASCADE, null=True, blank=True, related_name="document_rows"
    )
    kind = models.CharField(max_length=12, choices=DocumentKind.choices)
    external_id = models.CharField(max_length=100)
    company_label = models.CharField(max_length=200)
    contact_id = models.CharField(max_length=100)
    contact_name = models.CharField(max_length=500)
    number = models.CharField(max_length=255, blank=True)
    date = models.DateField()
    due_date = models.DateField(null=True, blank=True)
    total = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    rate = models.DecimalField(**RATE, default=1)
    status = models.CharField(max_length=20, blank=True, help_text="The origin's status, e.g. Xero's AUTHORISED.")
    updated_at = models.DateTimeField(null=True, blank=True, help_text="When the origin last changed it.")

    class Meta:
        constraints = [
            _one_origin("document"),
            models.UniqueConstraint(
                fields=["connection", "external_id"],
                condition=models.Q(connection__isnull=False),
                name="document_unique_per_connection",
            ),
            models.UniqueConstraint(
                fields=["document_set", "external_id"],
                condition=models.Q(document_set__isnull=False),
                name="document_unique_per_set",
            ),
            models.CheckConstraint(condition=models.Q(rate__gt=0), name="document_rate_positive"),
        ]
        indexes = [
            models.Index(fields=["connection", "date"], name="document_connection_date"),
            models.Index(fields=["document_set", "date"], name="document_set_date"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.number or self.external_id}"


class Allocation(models.Model):
    """Part of a credit note, payment, overpayment or prepayment (``source_id``) applied to
    an invoice (``invoice_id``) on ``date``; ids are the documents' ``external_id``s."""

    connection = models.ForeignKey(
        "receivables.XeroConnection", on_delete=models.CASCADE, null=True, blank=True, related_name="allocations"
    )
    document_set = models.ForeignKey(
        DocumentSet, on_delete=models.CASCADE, null=True, blank=True, related_name="allocation_rows"
    )
    external_id = models.CharField(max_length=200)
    source_id = models.CharField(max_length=100)
    invoice_id = models.CharField(max_length=100)
    amount = models.DecimalField(**MONEY)
    date = models.DateField()

    class Meta:
        constraints = [
            _one_origin("allocation"),
            models.UniqueConstraint(
                fields=["connection", "external_id"],
                condition=models.Q(connection__isnull=False),
                name="allocation_unique_per_connection",
            ),
            models.UniqueConstraint(
                fields=["document_set", "external_id"],
                condition=models.Q(document_set__isnull=False),
                name="allocation_unique_per_set",
            ),
        ]
        indexes = [
            models.Index(fields=["connection", "date"], name="allocation_connection_date"),
            models.Index(fields=["document_set", "date"], name="allocation_set_date"),
        ]

    def __str__(self) -> str:
        return f"{self.amount} from {self.source_id} to {self.invoice_id}"
