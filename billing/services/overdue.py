"""The overdue check (seed 000, BILLING_OVERDUE_CHECK): which open invoices are overdue on
a business date, by how many days, and which dunning level each has reached, recorded as
an OverdueNotice: at most one per invoice per level.

The seed paged through the invoices with OFFSET and asked, invoice by invoice, whether a
notification had been sent. Here a batch is a keyset range on the index the overdue query
uses (open invoices by due date), read together with each invoice's highest notice so far,
and the batch's new notices are one insert that skips any (invoice, level) already there:
two statements a batch whatever its size, and a re-run, a second run on the same day or two
runs at once create nothing twice.

An invoice gets a notice for the highest level it has reached only, and only above any
level it already has a notice of: one first found 20 days overdue, with levels at 1, 7, 14
and 30 days, gets the 14-day notice, not three at once. Dunning's own fee invoices are not
dunned, so no fee is charged on a fee.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from billing.errors import BillingError
from billing.models import DunningLevel, Invoice, InvoiceSource, NoticeStatus, OverdueNotice
from billing.models.dunning import DEFAULT_LEVEL_DAYS
from config import bulk
from ledger.models import Company

BATCH_SIZE = 5000  # invoices a batch reads and notices it writes: two statements
MAX_BATCH_SIZE = 50_000


@dataclass(frozen=True)
class Level:
    days: int
    id: int | None  # None: the default level of a company without levels


@dataclass
class Checked:
    processed: int = 0  # overdue invoices looked at
    created: int = 0  # notices made
    skipped: int = 0  # invoices with no new level reached (or its notice already there)
    batches: int = 0


def overdue_invoices(company: Company, on: datetime.date):
    """The company's invoices overdue on ``on``, fee invoices included (what a finance
    operator sees; ``dunned`` is what the check chases)."""
    return Invoice.objects.overdue(on=on).filter(company=company)


def dunned(company: Company, on: datetime.date):
    """The overdue invoices dunning chases: all but its own fee invoices."""
    return overdue_invoices(company, on).exclude(source=InvoiceSource.DUNNING)


def highest_notice(invoice_ref: str = "pk") -> Subquery:
    """The level (days) of the invoice's highest notice, any status, for an annotation."""
    notices = OverdueNotice.objects.filter(invoice=OuterRef(invoice_ref)).order_by("-level_days")
    return Subquery(notices.values("level_days")[:1])


def levels_of(company: Company) -> list[Level]:
    """The company's active levels by days overdue; a company without any has the one
    default level, so every overdue invoice is noticed once."""
    rows = DunningLevel.objects.filter(company=company, active=True).order_by("days_overdue")
    return [Level(days, pk) for days, pk in rows.values_list("days_overdue", "pk")] or [Level(DEFAULT_LEVEL_DAYS, None)]


def reached(levels: Sequence[Level], days_overdue: int) -> Level | None:
    """The highest of ``levels`` (in days order) that ``days_overdue`` has reached."""
    found = None
    for level in levels:
        if level.days > days_overdue:
            break
        found = level
    return found


def check(
    company: Company,
    on: datetime.date,
    *,
    batch_size: int = BATCH_SIZE,
    log: Callable[..., None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Checked:
    """Record the notices due on business date ``on``; see the module docstring. Each
    batch's insert commits on its own (in autocommit), so a run that dies half-way has
    kept its batches and a re-run finds their notices there."""
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise BillingError({"batch_size": [f"Give a batch size from 1 to {MAX_BATCH_SIZE}."]})
    levels = levels_of(company)
    invoices = (
        dunned(company, on)
        .annotate(noticed=highest_notice())
        .order_by("due_date", "pk")
        .values_list("pk", "due_date", "due", "noticed")
    )
    checked = Checked()
    after: tuple[datetime.date, int] | None = None
    while True:
        page = invoices
        if after is not None:
            # Keyset on the order of the index (due date, then id), never OFFSET.
            page = invoices.filter(Q(due_date__gt=after[0]) | Q(due_date=after[0], pk__gt=after[1]))
        rows = list(page[:batch_size])
        if not rows:
            break
        created = _record(company, on, levels, rows)
        checked.batches += 1
        checked.processed += len(rows)
        checked.created += created
        checked.skipped += len(rows) - created
        if log is not None:
            log(f"batch {checked.batches}: {len(rows)} overdue invoices, {created} new notices")
        if progress is not None:
            progress(checked.processed)
        if len(rows) < batch_size:
            break
        last_id, last_due_date, _due, _noticed = rows[-1]
        after = (last_due_date, last_id)
    return checked


def _record(
    company: Company, on: datetime.date, levels: list[Level], rows: list[tuple[int, datetime.date, Decimal, int | None]]
) -> int:
    """Insert the batch's new notices, skipping any already there; how many were made."""
    columns: dict[str, list] = {name: [] for name in ("invoice", "level", "level_days", "days_overdue", "amount_due")}
    for invoice_id, due_date, due, noticed in rows:
        days = (on - due_date).days
        level = reached(levels, days)
        if level is None or (noticed is not None and level.days <= noticed):
            continue
        columns["invoice"].append(invoice_id)
        columns["level"].append(level.id)
        columns["level_days"].append(level.days)
        columns["days_overdue"].append(days)
        columns["amount_due"].append(due)
    n = len(columns["invoice"])
    if not n:
        return 0
    columns |= {
        "company": [company.pk] * n,
        "business_date": [on] * n,
        "status": [NoticeStatus.PENDING.value] * n,
        "fee": [Decimal(0)] * n,
        "interest": [Decimal(0)] * n,
        "created_at": [timezone.now()] * n,
    }
    return len(bulk.insert_columns(OverdueNotice, columns, returning=("id",), ignore_conflicts=True))
