"""Dunning (SL_OVERDUE_REMINDERS): send the pending overdue notices, charging each level's
fee and interest.

Pending notices go in keyset batches, each in one transaction:

1. the batch's invoices are locked (in id order, as a payment settling them locks them)
   and re-read, then the batch's notices are re-read under lock, so a payment that
   committed first is seen and a second sender waits and finds the notices sent;
2. a notice whose invoice is no longer open with something due is cancelled: the payment
   stopped the sequence; so is one whose invoice has a higher level pending too (the
   reminders did not run for a while): the customer gets the highest level's letter, not
   each level's at once;
3. the rest are charged: a level's fee and interest make one dunning invoice per notice
   (keyed ``dunning:<invoice>:<level days>``, so nothing is charged twice), finalised —
   numbered and posted to receivables and other income — and due at once;
4. the customers are notified under the notice's dedupe key, and the notices are marked
   sent with what they charged and the days overdue and amount due the letter gave (as of
   the business date it was sent on, which is later than the check's when the reminders
   did not run that day).

Interest is the amount due times the level's rate a year times the days since the invoice's
previous notice was sent (or since it fell due) / 365: charging all the days overdue at
each level would charge the first weeks again at every level.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, Subquery
from django.utils import timezone

from billing.errors import BillingError
from billing.kinds import PAYMENT_OVERDUE
from billing.models import (
    Invoice,
    InvoiceLine,
    InvoiceSource,
    InvoiceStatus,
    NoticeStatus,
    OverdueNotice,
)
from billing.services import books as books_service
from billing.services.books import quantize
from billing.services.finalising import finalise
from billing.services.recipients import customer_recipients
from config import bulk
from ledger.models import Company
from notifications import kinds
from notifications.models import Channel, Notification, Template, kind_validator
from notifications.services.sending import Message, notify_many

ZERO = Decimal(0)
DAYS_A_YEAR = Decimal(365)
BATCH_SIZE = 500  # notices a batch sends: a fee invoice, a posting and a notification each
MAX_BATCH_SIZE = 5000
DEFAULT_LEVEL_NAME = "Overdue"


@dataclass
class Sent:
    processed: int = 0  # pending notices looked at
    sent: int = 0  # notices sent
    cancelled: int = 0  # the invoice was settled first
    superseded: int = 0  # a higher level of the same invoice was pending too
    charged: int = 0  # dunning invoices made
    fees: Decimal = ZERO
    interest: Decimal = ZERO
    notified: int = 0  # notifications created (a re-sent notice's already exists)
    fee_invoices: list[int] = field(default_factory=list)
    batches: int = 0


def level_errors(company: Company, *, kind: str, channels, fee: Decimal | None) -> dict[str, list[str]]:
    """What is wrong with a level's kind, channels and fee for ``company`` (the API and the
    admin both ask): a kind needs a letter (registered in code, or a template of the
    company's or the platform's), or every notice of the level would fail to render."""
    errors: dict[str, list[str]] = {}
    try:
        kind_validator(kind)
    except DjangoValidationError as exc:
        errors["kind"] = exc.messages
    else:
        if kinds.get(kind) is None and not (
            Template.objects.filter(kind=kind).filter(Q(company=company) | Q(company__isnull=True)).exists()
        ):
            errors["kind"] = [f"No template for the kind {kind!r}: add the company's template first."]
    if not isinstance(channels, list) or not channels:
        errors["channels"] = [f"Give a list of channels from {', '.join(Channel.values)}."]
    else:
        unknown = [str(c) for c in channels if c not in Channel.values]
        if unknown:
            errors["channels"] = [f"Unknown channels {', '.join(unknown)}; choose from {', '.join(Channel.values)}."]
    if fee is not None and fee != quantize(fee, company.base_currency):
        places = company.minor_units
        errors["fee"] = [f"{company.base_currency} amounts have {places} decimal places at most."]
    return errors


def interest_on(amount: Decimal, rate: Decimal, days: int, currency: str) -> Decimal:
    """Simple interest at ``rate`` percent a year for ``days`` days, to the minor unit."""
    if days <= 0 or rate <= 0 or amount <= 0:
        return quantize(ZERO, currency)
    return quantize(amount * rate / 100 * days / DAYS_A_YEAR, currency)


def percent(rate: Decimal) -> str:
    """8.0000 as "8", 12.5000 as "12.5"."""
    return f"{rate.normalize():f}"


def send_reminders(
    company: Company,
    on: datetime.date,
    *,
    batch_size: int = BATCH_SIZE,
    log: Callable[..., None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Sent:
    """Send the company's notices pending on business date ``on`` (made on or before it);
    see the module docstring."""
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise BillingError({"batch_size": [f"Give a batch size from 1 to {MAX_BATCH_SIZE}."]})
    outcome = Sent()
    pending = OverdueNotice.objects.filter(company=company, status=NoticeStatus.PENDING, business_date__lte=on)
    last = 0
    while True:
        with transaction.atomic():
            batch = list(pending.filter(pk__gt=last).order_by("pk").values_list("pk", "invoice_id")[:batch_size])
            if not batch:
                break
            before = (outcome.sent, outcome.cancelled + outcome.superseded)
            _send_batch(company, on, [pk for pk, _i in batch], {i for _pk, i in batch}, outcome)
        outcome.batches += 1
        outcome.processed += len(batch)
        if log is not None:
            log(
                f"batch {outcome.batches}: {outcome.sent - before[0]} sent, "
                f"{outcome.cancelled + outcome.superseded - before[1]} cancelled"
            )
        if progress is not None:
            progress(outcome.processed)
        if len(batch) < batch_size:
            break
        last = batch[-1][0]
    return outcome


@dataclass
class _Charge:
    notice_id: int
    invoice_id: int
    customer_id: int
    level_days: int
    level: str
    currency: str
    days: int
    interest_days: int
    rate: Decimal
    due: Decimal
    fee: Decimal
    interest: Decimal

    @property
    def total(self) -> Decimal:
        return self.fee + self.interest

    @property
    def key(self) -> str:
        return f"dunning:{self.invoice_id}:{self.level_days}"


def _send_batch(company: Company, on: datetime.date, notice_ids: list[int], invoice_ids: set[int], outcome: Sent):
    invoices = {
        row["pk"]: row
        for row in Invoice.objects.filter(pk__in=invoice_ids)
        .select_for_update()
        .order_by("pk")
        .values("pk", "status", "due", "due_date", "number", "currency", "customer_id")
    }
    higher = OverdueNotice.objects.filter(
        invoice=OuterRef("invoice"),
        status=NoticeStatus.PENDING,
        business_date__lte=on,
        level_days__gt=OuterRef("level_days"),
    )
    previous = (
        OverdueNotice.objects.filter(invoice=OuterRef("invoice"), status=NoticeStatus.SENT)
        .order_by("-days_overdue")
        .values("days_overdue")[:1]
    )
    notices = list(
        OverdueNotice.objects.filter(pk__in=notice_ids, status=NoticeStatus.PENDING)
        .annotate(superseded=Exists(higher), charged_through=Subquery(previous))
        .select_for_update(of=("self",))
        .order_by("pk")
        .values(
            "pk",
            "invoice_id",
            "level_id",
            "level_days",
            "level__name",
            "level__kind",
            "level__channels",
            "level__fee",
            "level__interest_rate",
            "superseded",
            "charged_through",
        )
    )
    settled, superseded, charges = [], [], []
    for notice in notices:
        invoice = invoices[notice["invoice_id"]]
        if invoice["status"] != InvoiceStatus.OPEN or invoice["due"] <= 0:
            settled.append(notice["pk"])
            continue
        if notice["superseded"]:
            superseded.append(notice["pk"])
            continue
        currency = invoice["currency"]
        days = max((on - invoice["due_date"]).days, 0)
        interest_days = days - (notice["charged_through"] or 0)
        rate = notice["level__interest_rate"] or ZERO
        charges.append(
            _Charge(
                notice_id=notice["pk"],
                invoice_id=notice["invoice_id"],
                customer_id=invoice["customer_id"],
                level_days=notice["level_days"],
                level=notice["level__name"] or DEFAULT_LEVEL_NAME,
                currency=currency,
                days=days,
                interest_days=interest_days,
                rate=rate,
                due=invoice["due"],
                fee=quantize(notice["level__fee"] or ZERO, currency),
                interest=interest_on(invoice["due"], rate, interest_days, currency),
            )
        )
    if settled:
        OverdueNotice.objects.filter(pk__in=settled).update(status=NoticeStatus.CANCELLED)
    if superseded:
        OverdueNotice.objects.filter(pk__in=superseded).update(status=NoticeStatus.SUPERSEDED)
    outcome.cancelled += len(settled)
    outcome.superseded += len(superseded)
    if not charges:
        return
    fee_invoices = _charge(company, on, [c for c in charges if c.total > 0], invoices)
    numbers = dict(Invoice.objects.filter(pk__in=fee_invoices.values()).values_list("pk", "number"))
    by_notice = {notice["pk"]: notice for notice in notices}
    created, notified = _notify(company, charges, invoices, by_notice, fee_invoices, numbers)
    now = timezone.now()
    bulk.update_columns(
        OverdueNotice,
        [
            OverdueNotice(
                pk=c.notice_id,
                status=NoticeStatus.SENT,
                notification_id=notified.get(c.notice_id),
                fee=c.fee,
                interest=c.interest,
                fee_invoice_id=fee_invoices.get(c.key),
                sent_at=now,
                days_overdue=c.days,
                amount_due=c.due,
            )
            for c in charges
        ],
        ["status", "notification_id", "fee", "interest", "fee_invoice", "sent_at", "days_overdue", "amount_due"],
    )
    outcome.sent += len(charges)
    outcome.notified += created
    outcome.charged += len(fee_invoices)
    outcome.fee_invoices += sorted(fee_invoices.values())
    outcome.fees += sum((c.fee for c in charges), ZERO)
    outcome.interest += sum((c.interest for c in charges), ZERO)


def _charge(company: Company, on: datetime.date, charges: list[_Charge], invoices: dict[int, dict]) -> dict[str, int]:
    """One finalised dunning invoice per charge; ``{billing key: invoice id}``, the ones a
    crashed or concurrent sender made before included."""
    if not charges:
        return {}
    books = books_service.books(company)
    income = books.other_income or books.need("sales")
    n, now = len(charges), timezone.now()
    returned = bulk.insert_columns(
        Invoice,
        {
            "company": [company.pk] * n,
            "customer": [c.customer_id for c in charges],
            "number": [""] * n,
            "status": [InvoiceStatus.DRAFT.value] * n,
            "source": [InvoiceSource.DUNNING.value] * n,
            "billing_key": [c.key for c in charges],
            "issue_date": [on] * n,
            "due_date": [on] * n,  # due at once: the customer is already late
            "cadence": [""] * n,
            "consolidated": [False] * n,
            "charged_for": [c.invoice_id for c in charges],
            "currency": [c.currency for c in charges],  # finalising refuses any but the books' own
            "subtotal": [c.total for c in charges],
            "tax": [ZERO] * n,
            "total": [c.total for c in charges],
            "paid": [ZERO] * n,
            "credited": [ZERO] * n,
            "due": [c.total for c in charges],
            "memo": [f"{c.level} on {invoices[c.invoice_id]['number']}"[:500] for c in charges],
            "void_reason": [""] * n,
            "created_at": [now] * n,
        },
        returning=("billing_key", "id"),
        ignore_conflicts=True,
    )
    made = dict(returned)
    lines: dict[str, list] = {
        name: [] for name in ("invoice", "position", "description", "amount", "tax_rate", "tax", "total")
    }
    for charge in charges:
        invoice_id = made.get(charge.key)
        if invoice_id is None:
            continue
        parts = []
        if charge.fee > 0:
            parts.append((f"Late fee ({charge.level})", charge.fee))
        if charge.interest > 0:
            parts.append((f"Interest {charge.interest_days} days at {percent(charge.rate)}%", charge.interest))
        for position, (text, amount) in enumerate(parts):
            lines["invoice"].append(invoice_id)
            lines["position"].append(position)
            lines["description"].append(text[:300])
            lines["amount"].append(amount)
            lines["tax_rate"].append(ZERO)
            lines["tax"].append(ZERO)
            lines["total"].append(amount)
    count = len(lines["invoice"])
    lines |= {"component": [0] * count, "income_account": [income] * count, "billed": [True] * count}
    bulk.insert_columns(InvoiceLine, lines, returning=())
    missing = [c.key for c in charges if c.key not in made]
    if missing:
        made |= dict(
            Invoice.objects.filter(company=company, billing_key__in=missing)
            .exclude(status=InvoiceStatus.VOID)
            .values_list("billing_key", "pk")
        )
    finalise(company, sorted(made.values()), notify=False)  # numbers and posts the drafts; others stay as they are
    return made


def _notify(
    company: Company,
    charges: list[_Charge],
    invoices: dict[int, dict],
    notices: dict[int, dict],
    fee_invoices: dict[str, int],
    numbers: dict[int, str],
) -> tuple[int, dict[int, int]]:
    """Notify each charge's customer: how many notifications were created, and
    ``{notice id: notification id}`` (a notice notified before keeps its notification)."""
    recipients = customer_recipients({c.customer_id for c in charges})
    messages = []
    for charge in charges:
        invoice, notice = invoices[charge.invoice_id], notices[charge.notice_id]
        recipient = recipients[charge.customer_id]
        currency = invoice["currency"]
        messages.append(
            Message(
                recipient=recipient,
                kind=notice["level__kind"] or PAYMENT_OVERDUE,
                channels=notice["level__channels"] if notice["level_id"] else None,
                context={
                    "company_name": company.name,
                    "customer_name": recipient.name,
                    "invoice_id": charge.invoice_id,
                    "invoice_number": invoice["number"],
                    "due_date": invoice["due_date"].isoformat(),
                    "days_overdue": charge.days,
                    "level": charge.level,
                    "currency": currency,
                    "amount_due": str(quantize(charge.due, currency)),
                    "fee": str(charge.fee),
                    "interest": str(charge.interest),
                    "fee_charged": charge.fee > 0,
                    "interest_charged": charge.interest > 0,
                    "fee_invoice_number": numbers.get(fee_invoices.get(charge.key), ""),
                },
                company=company.pk,
                dedupe_key=f"overdue_notice:{charge.notice_id}",
            )
        )
    created = notify_many(messages).notified
    keys = {f"overdue_notice:{c.notice_id}": c.notice_id for c in charges}
    found = Notification.objects.filter(company=company, dedupe_key__in=keys).values_list("dedupe_key", "pk")
    return created, {keys[key]: pk for key, pk in found}
