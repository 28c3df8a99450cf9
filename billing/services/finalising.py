"""Finalising invoices: number, post, notify — for any number of drafts in one go.

The drafts are claimed by locking their rows, so two finalisers of the same drafts take
turns and the second finds them open already. The customers are notified first, then the
company's invoice counter is locked for the numbers and the postings that carry them, and
the numbers are written into the notifications' context (``notifications.amend``) before
their deliveries go out on commit. The counter stays locked to the commit, so the turn
concurrent chunks take is only the numbering and the posting.

Everything happens in the caller's transaction: a failure anywhere (a closed period
refusing the posting) leaves the drafts as they were, their numbers untaken and no one
notified.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from billing.errors import BillingError
from billing.kinds import INVOICE_ISSUED
from billing.models import Invoice, InvoiceLine, InvoiceStatus, Series
from billing.services import books as books_service
from billing.services import numbering, periods
from billing.services.recipients import customer_recipients
from config import bulk
from ledger.models import Company, JournalEntry, Source
from ledger.services import posting
from notifications.services.sending import Message, amend, notify_many

ZERO = Decimal(0)


@dataclass
class Finalised:
    invoices: list[int] = field(default_factory=list)  # finalised by this call, in number order
    notified: int = 0  # notifications created ("invoice issued")


def finalise(company: Company, invoice_ids: Sequence[int], *, notify: bool = True) -> Finalised:
    """Finalise the drafts among ``invoice_ids``; others (already open, void, another
    company's) are left alone."""
    if not invoice_ids:
        return Finalised()
    with transaction.atomic():
        # The drafts are claimed by locking them: a second finaliser of the same drafts
        # waits here, then finds them open. Invoices are locked before the number
        # counter, as everywhere else (allocations, dunning).
        drafts = list(
            Invoice.objects.select_for_update()
            .filter(company=company, pk__in=invoice_ids, status=InvoiceStatus.DRAFT)
            .order_by("pk")
            .values("pk", "customer_id", "issue_date", "due_date", "total", "currency", "cadence", "period_start")
        )
        if not drafts:
            return Finalised()
        wrong = sorted({d["currency"] for d in drafts} - {company.base_currency})
        if wrong:
            raise BillingError(
                {"currency": [f"Invoices in {', '.join(wrong)} cannot post to books kept in {company.base_currency}."]}
            )
        lines = _income_lines(drafts)
        books = books_service.books(company)
        notified = _notify(company, drafts) if notify else 0
        # Only what needs the numbers waits for them: concurrent chunks of one company
        # take turns from here to their commit, so the notifications (written above with
        # the number to follow) are not part of the turn.
        sequence = numbering.lock(company, Series.INVOICE)
        numbered = numbering.advance(sequence, len(drafts))
        entries = _entries(books, drafts, numbered, lines)
        posting.post_many(company, entries)
        entry_ids = dict(
            JournalEntry.objects.filter(
                company=company, source=Source.BILLING, source_id__in=[e.source_id for e in entries]
            ).values_list("source_id", "pk")
        )
        now = timezone.now()
        rows = []
        for draft, number in zip(drafts, numbered, strict=True):
            settled = draft["total"] == ZERO
            rows.append(
                Invoice(
                    pk=draft["pk"],
                    number=number,
                    status=InvoiceStatus.PAID if settled else InvoiceStatus.OPEN,
                    finalised_at=now,
                    journal_entry_id=entry_ids.get(f"invoice:{draft['pk']}"),
                )
            )
        bulk.update_columns(Invoice, rows, ["number", "status", "finalised_at", "journal_entry"])
        if notified:
            amend(
                company,
                {
                    _dedupe_key(draft["pk"]): {"invoice_number": number}
                    for draft, number in zip(drafts, numbered, strict=True)
                },
            )
    return Finalised(invoices=[d["pk"] for d in drafts], notified=notified)


def _dedupe_key(invoice_id: int) -> str:
    return f"invoice_issued:{invoice_id}"


def _income_lines(drafts: list[dict]) -> dict[int, list[tuple[int, Decimal, Decimal]]]:
    lines: dict[int, list[tuple[int, Decimal, Decimal]]] = defaultdict(list)
    for invoice_id, account, amount, tax in InvoiceLine.objects.filter(
        invoice_id__in=[d["pk"] for d in drafts]
    ).values_list("invoice_id", "income_account_id", "amount", "tax"):
        lines[invoice_id].append((account, amount, tax))
    return lines


def _entries(
    books: books_service.Books,
    drafts: list[dict],
    numbered: list[str],
    lines: dict[int, list[tuple[int, Decimal, Decimal]]],
) -> list[posting.Entry]:
    entries = []
    for draft, number in zip(drafts, numbered, strict=True):
        if draft["total"] == ZERO:
            continue  # nothing to post; the invoice is settled as it stands
        memo = f"Invoice {number}"
        if draft["period_start"] and draft["cadence"]:
            memo += f" for {periods.label(draft['cadence'], draft['period_start'])}"
        entries.append(
            books_service.invoice_entry(
                books,
                invoice_id=draft["pk"],
                customer_id=draft["customer_id"],
                date=draft["issue_date"],
                reference=number,
                memo=memo,
                total=draft["total"],
                income=lines[draft["pk"]],
            )
        )
    return entries


def _notify(company: Company, drafts: list[dict]) -> int:
    """Notify each draft's customer, its number left empty until it is taken (``amend``)."""
    recipients = customer_recipients({d["customer_id"] for d in drafts})
    messages = []
    for draft in drafts:
        recipient = recipients[draft["customer_id"]]
        period = periods.label(draft["cadence"], draft["period_start"]) if draft["cadence"] else ""
        messages.append(
            Message(
                recipient=recipient,
                kind=INVOICE_ISSUED,
                context={
                    "company_name": company.name,
                    "customer_name": recipient.name,
                    "invoice_id": draft["pk"],
                    "invoice_number": "",
                    "period": period,
                    "issue_date": draft["issue_date"].isoformat(),
                    "due_date": draft["due_date"].isoformat(),
                    "currency": draft["currency"],
                    "total": str(books_service.quantize(draft["total"], draft["currency"])),
                },
                company=company.pk,
                dedupe_key=_dedupe_key(draft["pk"]),
            )
        )
    return notify_many(messages).notified
