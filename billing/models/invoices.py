"""Invoices, their lines and the per-company number sequences.

An invoice is a draft until it is finalised: then it takes the next number of its
company's sequence (no gaps: the number is taken in the transaction that finalises it),
posts to the ledger and is open until paid or void. Amounts are stored, and ``paid``,
``credited`` and ``due`` are kept by the allocation services, so lists and the overdue
check read one row per invoice.
"""

from __future__ import annotations

import datetime
from decimal import Decimal

from django.db import models
from django.db.models.functions import Round

from billing.models.customers import RATE, Cadence, Customer, Enrolment, FeeStructure
from ledger import currencies
from ledger.models import CompanyScopedQuerySet
from ledger.models.journals import MONEY

ZERO = Decimal(0)


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"


# What receivables hold: an invoice counts from finalising until voided.
POSTED_STATUSES = (InvoiceStatus.OPEN, InvoiceStatus.PAID)


class InvoiceSource(models.TextChoices):
    RUN = "run", "invoice run"
    ENROLMENT = "enrolment", "on enrolment"
    RECURRING = "recurring", "recurring template"
    DUNNING = "dunning", "dunning fee and interest"
    MANUAL = "manual"


class Series(models.TextChoices):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note", "credit note"


DEFAULT_PREFIX = {Series.INVOICE: "INV-", Series.CREDIT_NOTE: "CN-"}


class DocumentSequence(models.Model):
    """One counter per company and series; locked and advanced in the transaction that
    numbers documents, so a rollback gives its numbers back and none is skipped."""

    company = models.ForeignKey("ledger.Company", on_delete=models.CASCADE, related_name="document_sequences")
    series = models.CharField(max_length=20, choices=Series.choices)
    prefix = models.CharField(max_length=12, blank=True)
    padding = models.PositiveSmallIntegerField(default=6)
    next_number = models.PositiveBigIntegerField(default=1)

    objects = CompanyScopedQuerySet.as_manager()

    class Meta:
        ordering = ["company", "series"]
        constraints = [models.UniqueConstraint(fields=["company", "series"], name="sequence_unique_series")]

    def __str__(self) -> str:
        return f"{self.company} {self.series} from {self.format(self.next_number)}"

    def format(self, number: int) -> str:
        return f"{self.prefix}{number:0{self.padding}d}"


class InvoiceQuerySet(CompanyScopedQuerySet):
    def posted(self) -> InvoiceQuerySet:
        return self.filter(status__in=POSTED_STATUSES)

    def open(self) -> InvoiceQuerySet:
        return self.filter(status=InvoiceStatus.OPEN)

    def overdue(self, on: datetime.date) -> InvoiceQuerySet:
        """Open invoices with something due whose due date is before ``on``."""
        return self.open().filter(due_date__lt=on, due__gt=0)


class Invoice(models.Model):
    company = models.ForeignKey("ledger.Company", on_delete=models.PROTECT, related_name="invoices")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    number = models.CharField(max_length=32, blank=True, help_text="Given when finalised.")
    status = models.CharField(max_length=10, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT)
    source = models.CharField(max_length=12, choices=InvoiceSource.choices, default=InvoiceSource.MANUAL)
    billing_key = models.CharField(
        max_length=120,
        blank=True,
        help_text="What the invoice bills, unique per company: a customer's or an enrolment's period, a "
        "template's occurrence. A second run finds it taken and creates nothing.",
    )
    issue_date = models.DateField()
    due_date = models.DateField()
    period_start = models.DateField(null=True, blank=True)
    period_end = models.DateField(null=True, blank=True)
    cadence = models.CharField(max_length=10, choices=Cadence.choices, blank=True)
    consolidated = models.BooleanField(default=False, help_text="One invoice for all the customer's enrolments.")
    enrolment = models.ForeignKey(
        Enrolment,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="own_invoices",
        help_text="The one enrolment an unconsolidated invoice bills.",
    )
    enrolments = models.ManyToManyField(
        Enrolment, through="InvoiceLine", through_fields=("invoice", "enrolment"), related_name="invoices", blank=True
    )
    template = models.ForeignKey(
        "billing.RecurringTemplate", on_delete=models.PROTECT, null=True, blank=True, related_name="invoices"
    )
    charged_for = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="charges",
        help_text="The overdue invoice a dunning fee or interest was charged for.",
    )
    currency = models.CharField(max_length=3, choices=currencies.CHOICES)
    subtotal = models.DecimalField(**MONEY, default=ZERO)
    tax = models.DecimalField(**MONEY, default=ZERO)
    total = models.DecimalField(**MONEY, default=ZERO)
    paid = models.DecimalField(**MONEY, default=ZERO)
    credited = models.DecimalField(**MONEY, default=ZERO)
    due = models.DecimalField(**MONEY, default=ZERO, help_text="total - paid - credited")
    memo = models.CharField(max_length=500, blank=True)
    journal_entry = models.ForeignKey(
        "ledger.JournalEntry", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    finalised_at = models.DateTimeField(null=True, blank=True)
    void_date = models.DateField(null=True, blank=True)
    void_reason = models.CharField(max_length=500, blank=True)
    void_entry = models.ForeignKey(
        "ledger.JournalEntry", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = InvoiceQuerySet.as_manager()

    class Meta:
        ordering = ["-issue_date", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "number"], condition=~models.Q(number=""), name="invoice_unique_number"
            ),
            models.UniqueConstraint(
                fields=["company", "billing_key"],
                condition=~models.Q(billing_key="") & ~models.Q(status="void"),
                name="invoice_unique_billing_key",
            ),
            models.CheckConstraint(
                condition=models.Q(due_date__gte=models.F("issue_date")), name="invoice_due_after_issue"
            ),
            models.CheckConstraint(
                condition=models.Q(due=Round(models.F("total") - models.F("paid") - models.F("credited"), 3)),
                name="invoice_due_is_total_less_settled",
            ),
            models.CheckConstraint(condition=models.Q(due__gte=0), name="invoice_not_over_settled"),
        ]
        indexes = [
            models.Index(fields=["company", "customer", "issue_date"], name="invoice_customer_issued"),
            models.Index(
                fields=["company", "due_date"], condition=models.Q(status="open"), name="invoice_open_by_due_date"
            ),
        ]

    def __str__(self) -> str:
        return self.number or f"draft {self.pk}"

    @property
    def label(self) -> str:
        return self.number or f"Draft {self.pk}"

    def days_overdue(self, on: datetime.date) -> int:
        return max((on - self.due_date).days, 0)


class InvoiceLine(models.Model):
    """One line: a component of an enrolment's fee, a template's charge, a fee. An
    enrolment's component is billed once per period, whichever invoice carries it: the
    unique constraint is what stops a consolidated and an unconsolidated run of the same
    period billing it twice. Voiding the invoice releases its lines (``billed`` false), so
    a later run of the period bills them again."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveSmallIntegerField(default=0)
    description = models.CharField(max_length=300)
    enrolment = models.ForeignKey(Enrolment, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    fee_structure = models.ForeignKey(FeeStructure, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    component = models.PositiveSmallIntegerField(default=0, help_text="Which of the fee's components.")
    period_start = models.DateField(null=True, blank=True)
    amount = models.DecimalField(**MONEY, help_text="Before tax.")
    tax_rate = models.DecimalField(**RATE, default=ZERO)
    tax = models.DecimalField(**MONEY, default=ZERO)
    total = models.DecimalField(**MONEY)
    income_account = models.ForeignKey("ledger.Account", on_delete=models.PROTECT, related_name="+")
    billed = models.BooleanField(
        default=True, help_text="False once its invoice is void: the period may be billed again."
    )

    class Meta:
        ordering = ["invoice", "position", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["enrolment", "period_start", "component"],
                condition=models.Q(enrolment__isnull=False, period_start__isnull=False, billed=True),
                name="invoice_line_enrolment_billed_once",
            ),
        ]

    def __str__(self) -> str:
        return self.description


class InvoiceRun(models.Model):
    """An invoice run's record for the company: what it billed and what it counted. The
    job run (with its status, chunks and logs) is the job layer's; this is the billing
    side a finance operator and a client app read."""

    company = models.ForeignKey("ledger.Company", on_delete=models.PROTECT, related_name="invoice_runs")
    job_run = models.OneToOneField(
        "scheduling.JobRun", on_delete=models.SET_NULL, null=True, blank=True, related_name="invoice_run"
    )
    cadence = models.CharField(max_length=10, choices=Cadence.choices)
    period_start = models.DateField()
    period_end = models.DateField()
    issue_date = models.DateField()
    consolidate = models.BooleanField(default=True)
    finalise = models.BooleanField(default=True, help_text="Off: invoices stay drafts for review.")
    enrolments = models.PositiveIntegerField(default=0, help_text="Enrolments billed.")
    created = models.PositiveIntegerField(default=0, help_text="Invoices created.")
    skipped = models.PositiveIntegerField(default=0, help_text="Invoices already there.")
    notified = models.PositiveIntegerField(default=0, help_text="Notifications queued.")
    total = models.DecimalField(**MONEY, default=ZERO, help_text="Invoiced, tax included.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CompanyScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.cadence} run for {self.period_start}"
