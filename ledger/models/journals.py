from __future__ import annotations

from django.conf import settings
from django.db import models

from ledger import currencies
from ledger.models.company import CompanyScopedQuerySet

# Room for 3-decimal currencies and for amounts into the hundreds of trillions.
MONEY = {"max_digits": 20, "decimal_places": 3}


class Source(models.TextChoices):
    MANUAL = "manual", "Manual"
    BILLING = "billing", "Billing"
    RECEIVABLES = "receivables", "Receivables"
    SYSTEM = "system", "System"


class EntryStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    POSTED = "posted", "Posted"
    REVERSED = "reversed", "Reversed"  # posted, then mirrored by a reversal entry


# Entries that are in the books: a reversed entry stays, its reversal cancels it.
IN_BOOKS = (EntryStatus.POSTED, EntryStatus.REVERSED)


class JournalEntryQuerySet(CompanyScopedQuerySet):
    def drafts(self) -> JournalEntryQuerySet:
        return self.filter(status=EntryStatus.DRAFT)

    def in_books(self) -> JournalEntryQuerySet:
        return self.filter(status__in=IN_BOOKS)


class JournalEntry(models.Model):
    company = models.ForeignKey("ledger.Company", on_delete=models.CASCADE, related_name="journal_entries")
    date = models.DateField()
    period = models.ForeignKey("ledger.Period", on_delete=models.PROTECT, related_name="entries")
    reference = models.CharField(max_length=100, blank=True)
    memo = models.TextField(blank=True)
    source = models.CharField(max_length=12, choices=Source.choices, default=Source.MANUAL)
    source_id = models.CharField(
        max_length=100, blank=True, help_text="The posting's key in its source: posting it again creates nothing."
    )
    status = models.CharField(max_length=8, choices=EntryStatus.choices, default=EntryStatus.DRAFT)
    is_closing = models.BooleanField(default=False, help_text="A year-end closing entry.")
    reverses = models.OneToOneField("self", on_delete=models.PROTECT, null=True, blank=True, related_name="reversed_by")
    flagged_at = models.DateTimeField(null=True, blank=True, help_text="Flagged by the daily close as a stale draft.")
    flag_reason = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()
    posted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    posted_at = models.DateTimeField(null=True, blank=True)

    objects = JournalEntryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "journal entries"
        ordering = ["company_id", "date", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "source", "source_id"], condition=~models.Q(source_id=""), name="entry_unique_source"
            ),
        ]
        indexes = [
            models.Index(fields=["company", "status", "date"], name="entry_company_status_date"),
            models.Index(fields=["period", "status"], name="entry_period_status"),
        ]

    def __str__(self) -> str:
        return f"JE{self.pk} {self.date} {self.reference}".strip()

    @property
    def is_draft(self) -> bool:
        return self.status == EntryStatus.DRAFT


class JournalLine(models.Model):
    """One side of an entry. ``debit`` / ``credit`` are in the line's currency; ``amount`` is
    the same value in the company's currency, debit-positive, and is what must balance.

    Company, date and whether the entry is in the books are copied onto the line (an
    entry's lines never change once posted) so balances read one table through one index.
    """

    entry = models.ForeignKey(JournalEntry, on_delete=models.CASCADE, related_name="lines")
    company = models.ForeignKey("ledger.Company", on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey("ledger.Account", on_delete=models.PROTECT, related_name="lines")
    date = models.DateField()
    posted = models.BooleanField(default=False)
    description = models.CharField(max_length=200, blank=True)
    debit = models.DecimalField(**MONEY, default=0)
    credit = models.DecimalField(**MONEY, default=0)
    currency = models.CharField(max_length=3, choices=currencies.CHOICES)
    amount = models.DecimalField(**MONEY, help_text="In the company's currency; debits positive, credits negative.")
    party = models.CharField(
        max_length=64, blank=True, help_text='The sub-ledger party, such as "customer:42", for control accounts.'
    )

    class Meta:
        # By column, not by relation: ordering by "entry" would follow the entry's and the
        # company's own orderings, and Django keeps those joins in every aggregate over lines.
        ordering = ["entry_id", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(debit__gt=0, credit=0) | models.Q(debit=0, credit__gt=0),
                name="line_one_side",
            ),
            models.CheckConstraint(
                condition=models.Q(debit__gt=0, amount__gte=0) | models.Q(credit__gt=0, amount__lte=0),
                name="line_amount_sign",
            ),
        ]
        indexes = [
            # Balances and trial balances: a company's posted lines by date.
            models.Index(
                fields=["company", "date", "account"], condition=models.Q(posted=True), name="line_posted_by_date"
            ),
            models.Index(fields=["account", "date"], condition=models.Q(posted=True), name="line_posted_by_account"),
            models.Index(
                fields=["account", "party"],
                condition=models.Q(posted=True) & ~models.Q(party=""),
                name="line_posted_by_party",
            ),
        ]

    def __str__(self) -> str:
        side = f"Dr {self.debit}" if self.debit else f"Cr {self.credit}"
        return f"{self.account_id} {side} {self.currency}"
