"""Invoice runs (seed 002): every enrolment of a cadence billed once per period.

A run is cut into keyset ranges of customer ids; each range is billed by ``bill_range``
in set-based statements whatever its size: one query for the range's billable
enrolments (flagged when already billed for the period), one for their customers, one
insert for the invoices and one for their lines, then the finalising (number, post,
notify) of what was created.

Consolidated (the default) a customer gets one invoice per period with a line per
component of each enrolment; an enrolment with ``consolidate`` off, or every enrolment
in a run with consolidation off, gets one of its own. What makes a second run, a
redelivered chunk or two runs at once create nothing:

- each invoice has a ``billing_key`` (``monthly:2026-01-01:customer:42``, or
  ``…:enrolment:7`` unconsolidated), unique per company, inserted with
  ``ON CONFLICT DO NOTHING``: the run that loses the race creates nothing for it;
- each enrolment component is billed once per period whichever invoice carries it (a
  unique constraint on the lines), so a consolidated and an unconsolidated run of the
  same period cannot both bill it: the loser's chunk fails on the constraint, rolls back,
  retries and finds it billed.

A customer who enrols in something after their period's invoice was made gets a
supplementary invoice for the new enrolments on the next run (``…:customer:42:+7``).
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from billing.errors import BillingError
from billing.models import (
    Customer,
    Enrolment,
    FeeStructure,
    Invoice,
    InvoiceLine,
    InvoiceRun,
    InvoiceSource,
    InvoiceStatus,
)
from billing.services import books as books_service
from billing.services import periods
from billing.services.finalising import finalise
from config import bulk
from ledger.models import Company

ZERO = Decimal(0)
CHUNK_CUSTOMERS = 1000  # customers one chunk bills: about 3,000 enrolments and 9 statements


@dataclass(frozen=True)
class RunSpec:
    """What a run bills: a company's enrolments of ``cadence`` for the period starting
    ``period_start``."""

    company: Company
    cadence: str
    period_start: datetime.date
    period_end: datetime.date
    issue_date: datetime.date
    consolidate: bool = True
    finalise: bool = True
    source: str = InvoiceSource.RUN
    enrolments: tuple[int, ...] = ()  # only these, when given

    @classmethod
    def for_period(
        cls,
        company: Company,
        cadence: str,
        day: datetime.date,
        *,
        consolidate: bool = True,
        finalise: bool = True,
        issue_date: datetime.date | None = None,
    ) -> RunSpec:
        start, end = periods.period_for(cadence, day)
        return cls(company, cadence, start, end, issue_date or start, consolidate, finalise)

    @property
    def label(self) -> str:
        return periods.label(self.cadence, self.period_start)


@dataclass
class Outcome:
    enrolments: int = 0  # enrolments billed (or that would be)
    created: int = 0  # invoices created (or that would be)
    skipped: int = 0  # invoices already there
    notified: int = 0  # notifications created
    total: Decimal = ZERO  # invoiced, tax included
    invoices: list[int] = field(default_factory=list)

    def add(self, other: Outcome) -> None:
        self.enrolments += other.enrolments
        self.created += other.created
        self.skipped += other.skipped
        self.notified += other.notified
        self.total += other.total
        self.invoices += other.invoices


# --- Chunks ------------------------------------------------------------------------------


def customer_ranges(company: Company, size: int = CHUNK_CUSTOMERS) -> Iterator[tuple[int, int]]:
    """Keyset ranges of the company's active customer ids, ``size`` customers each:
    each boundary is found from the last (``id > last ORDER BY id``), never by OFFSET
    from the start."""
    customers = Customer.objects.filter(company=company, active=True).order_by("pk").values_list("pk", flat=True)
    last = 0
    while True:
        ids = list(customers.filter(pk__gt=last)[:size])
        if not ids:
            return
        yield ids[0], ids[-1]
        last = ids[-1]


def generate(
    spec: RunSpec,
    *,
    dry_run: bool = False,
    size: int = CHUNK_CUSTOMERS,
    progress: Callable[[int, int], None] | None = None,
) -> Outcome:
    """The whole run in this process, range by range, each in its own transaction (the
    command line's way; the jobs fan the ranges out to workers instead)."""
    ranges = list(customer_ranges(spec.company, size))
    outcome = Outcome()
    for done, (first, last) in enumerate(ranges, start=1):
        outcome.add(bill_range(spec, first, last, dry_run=dry_run))
        if progress is not None:
            progress(done, len(ranges))
    return outcome


# --- One range ----------------------------------------------------------------------------


@dataclass
class _Group:
    key: str
    customer_id: int
    enrolments: list[tuple[int, int]]  # (enrolment id, fee structure id)
    consolidated: bool


def invoice_enrolment(enrolment: Enrolment, *, on: datetime.date | None = None) -> Outcome:
    """Invoice a new enrolment's current period at once (``invoice_on_enrolment``): the
    period containing its start or ``on`` (the company's today), whichever is later. The
    invoice is the enrolment's own, so the period's run leaves the enrolment out of the
    customer's consolidated invoice rather than billing it twice."""
    day = max(enrolment.start_date, on or enrolment.company.today())
    base = RunSpec.for_period(enrolment.company, enrolment.fee_structure.cadence, day, consolidate=False)
    spec = RunSpec(
        base.company,
        base.cadence,
        base.period_start,
        base.period_end,
        day,
        consolidate=False,
        source=InvoiceSource.ENROLMENT,
        enrolments=(enrolment.pk,),
    )
    return bill_range(spec, enrolment.customer_id, enrolment.customer_id)


def bill_range(spec: RunSpec, first: int, last: int, *, dry_run: bool = False) -> Outcome:
    """Bill the customers with ids in [first, last]; see the module docstring."""
    with transaction.atomic():
        groups, skipped = _groups(spec, first, last)
        outcome = Outcome(skipped=skipped)
        if not groups:
            return outcome
        fees = _fees(spec, {fee for group in groups for _e, fee in group.enrolments})
        if dry_run:
            taken = set(
                Invoice.objects.filter(company=spec.company, billing_key__in=[g.key for g in groups])
                .exclude(status=InvoiceStatus.VOID)
                .values_list("billing_key", flat=True)
            )
            for group in groups:
                if group.key in taken:
                    outcome.skipped += 1
                else:
                    outcome.created += 1
                    outcome.enrolments += len(group.enrolments)
                    outcome.total += sum(fees[fee].total for _e, fee in group.enrolments)
            return outcome
        created = _insert(spec, groups, fees)
        outcome.skipped += len(groups) - len(created)
        for group in groups:
            if group.key in created:
                outcome.enrolments += len(group.enrolments)
                outcome.total += sum(fees[fee].total for _e, fee in group.enrolments)
        outcome.created = len(created)
        outcome.invoices = sorted(created.values())
        if spec.finalise and outcome.invoices:
            outcome.notified = finalise(spec.company, outcome.invoices).notified
    return outcome


def _groups(spec: RunSpec, first: int, last: int) -> tuple[list[_Group], int]:
    """The range's billable enrolments grouped into the invoices they go on, and how many
    invoices are already there (groups all of whose enrolments are billed)."""
    billed = InvoiceLine.objects.filter(enrolment=OuterRef("pk"), period_start=spec.period_start, billed=True)
    rows = (
        Enrolment.objects.filter(
            company=spec.company,
            customer_id__gte=first,
            customer_id__lte=last,
            customer__active=True,
            fee_structure__cadence=spec.cadence,
            fee_structure__active=True,
            start_date__lte=spec.period_end,
        )
        .filter(Q(end_date__isnull=True) | Q(end_date__gte=spec.period_start))
        .filter(Q(pk__in=spec.enrolments) if spec.enrolments else Q())
        .annotate(is_billed=Exists(billed))
        .order_by("customer_id", "pk")
        .values_list("pk", "customer_id", "fee_structure_id", "consolidate", "is_billed")
    )
    prefix = f"{spec.cadence}:{spec.period_start.isoformat()}"
    by_customer: dict[int, list[tuple[int, int, bool]]] = defaultdict(list)
    own: list[_Group] = []
    skipped = 0
    for enrolment_id, customer_id, fee_id, consolidate, is_billed in rows:
        if spec.consolidate and consolidate:
            by_customer[customer_id].append((enrolment_id, fee_id, is_billed))
        elif is_billed:
            skipped += 1
        else:
            own.append(_Group(f"{prefix}:enrolment:{enrolment_id}", customer_id, [(enrolment_id, fee_id)], False))
    pending: dict[int, list[tuple[int, int]]] = {}
    for customer_id, enrolments in by_customer.items():
        unbilled = [(e, fee) for e, fee, is_billed in enrolments if not is_billed]
        if unbilled:
            pending[customer_id] = unbilled
        else:
            skipped += 1
    # A customer invoiced already this period gets a supplementary invoice, keyed by its
    # first new enrolment (no live invoice can hold that key: it would have billed it).
    # "Already" is judged by the keys taken, not by the enrolments in this run: one billed
    # earlier may have left the run since (its fee deactivated, its end date moved).
    plain = {customer_id: f"{prefix}:customer:{customer_id}" for customer_id in pending}
    taken = set(
        Invoice.objects.filter(company=spec.company, billing_key__in=plain.values())
        .exclude(status=InvoiceStatus.VOID)
        .values_list("billing_key", flat=True)
    )
    groups = []
    for customer_id, unbilled in pending.items():
        key = plain[customer_id]
        if key in taken or len(unbilled) < len(by_customer[customer_id]):
            key += f":+{unbilled[0][0]}"
        groups.append(_Group(key, customer_id, unbilled, True))
    groups.extend(own)
    return groups, skipped


@dataclass
class _Fee:
    name: str
    income_account: int
    tax_rate: Decimal
    currency: str
    components: list[tuple[int, str, Decimal, Decimal]]  # (component, description, amount, tax)

    @property
    def subtotal(self) -> Decimal:
        return sum((amount for _c, _d, amount, _t in self.components), ZERO)

    @property
    def tax(self) -> Decimal:
        return sum((tax for _c, _d, _a, tax in self.components), ZERO)

    @property
    def total(self) -> Decimal:
        return self.subtotal + self.tax


def _fees(spec: RunSpec, fee_ids: set[int]) -> dict[int, _Fee]:
    """The fee structures billed, with their components and each component's tax."""
    sales = None
    fees: dict[int, _Fee] = {}
    structures = FeeStructure.objects.filter(pk__in=fee_ids).prefetch_related("components")
    for fee in structures:
        account = fee.income_account_id
        if account is None:
            sales = sales or books_service.books(spec.company).need("sales")
            account = sales
        parts = [(c.position, f"{fee.name}: {c.name}", c.amount) for c in fee.components.all()] or [
            (0, fee.name, fee.amount)
        ]
        fees[fee.pk] = _Fee(
            name=fee.name,
            income_account=account,
            tax_rate=fee.tax_rate,
            currency=fee.currency,
            components=[
                (position, text, amount, books_service.tax_on(amount, fee.tax_rate, fee.currency))
                for position, text, amount in parts
            ],
        )
    currencies = {fee.currency for fee in fees.values()}
    if currencies - {spec.company.base_currency}:
        wrong = ", ".join(sorted(currencies - {spec.company.base_currency}))
        raise BillingError(
            {"currency": [f"Fee structures in {wrong}; the company's books are in {spec.company.base_currency}."]}
        )
    return fees


def _insert(spec: RunSpec, groups: list[_Group], fees: dict[int, _Fee]) -> dict[str, int]:
    """Insert the groups' invoices (skipping keys already taken) and the created ones'
    lines; ``{billing key: invoice id}`` of those created."""
    company = spec.company
    terms = dict(
        Customer.objects.filter(pk__in={g.customer_id for g in groups}).values_list("pk", "payment_terms_days")
    )
    now = timezone.now()
    n = len(groups)
    totals = [
        (
            sum((fees[fee].subtotal for _e, fee in g.enrolments), ZERO),
            sum((fees[fee].tax for _e, fee in g.enrolments), ZERO),
        )
        for g in groups
    ]
    returned = bulk.insert_columns(
        Invoice,
        {
            "company": [company.pk] * n,
            "customer": [g.customer_id for g in groups],
            "number": [""] * n,
            "status": [InvoiceStatus.DRAFT.value] * n,
            "source": [str(spec.source)] * n,
            "billing_key": [g.key for g in groups],
            "issue_date": [spec.issue_date] * n,
            "due_date": [spec.issue_date + datetime.timedelta(days=terms[g.customer_id]) for g in groups],
            "period_start": [spec.period_start] * n,
            "period_end": [spec.period_end] * n,
            "cadence": [spec.cadence] * n,
            "consolidated": [g.consolidated for g in groups],
            "enrolment": [None if g.consolidated else g.enrolments[0][0] for g in groups],
            "currency": [company.base_currency] * n,
            "subtotal": [net for net, _tax in totals],
            "tax": [tax for _net, tax in totals],
            "total": [net + tax for net, tax in totals],
            "paid": [ZERO] * n,
            "credited": [ZERO] * n,
            "due": [net + tax for net, tax in totals],
            "memo": [""] * n,
            "void_reason": [""] * n,
            "created_at": [now] * n,
        },
        returning=("billing_key", "id"),
        ignore_conflicts=True,
    )
    created = dict(returned)
    lines: dict[str, list] = defaultdict(list)
    for group in groups:
        invoice_id = created.get(group.key)
        if invoice_id is None:
            continue
        position = 0
        for enrolment_id, fee_id in group.enrolments:
            fee = fees[fee_id]
            for component, text, amount, tax in fee.components:
                lines["invoice"].append(invoice_id)
                lines["position"].append(position)
                lines["description"].append(text)
                lines["enrolment"].append(enrolment_id)
                lines["fee_structure"].append(fee_id)
                lines["component"].append(component)
                lines["period_start"].append(spec.period_start)
                lines["amount"].append(amount)
                lines["tax_rate"].append(fee.tax_rate)
                lines["tax"].append(tax)
                lines["total"].append(amount + tax)
                lines["income_account"].append(fee.income_account)
                lines["billed"].append(True)
                position += 1
    # A plain insert: a line already billed by a concurrent run of the other mode breaks
    # the unique constraint, and this chunk rolls back and retries (see the docstring).
    bulk.insert_columns(InvoiceLine, dict(lines), returning=())
    return created


# --- The run's record ------------------------------------------------------------------------


def record(run: InvoiceRun, outcome: Outcome) -> None:
    """Add a range's counts to its run's record (in the range's transaction)."""
    InvoiceRun.objects.filter(pk=run.pk).update(
        enrolments=F("enrolments") + outcome.enrolments,
        created=F("created") + outcome.created,
        skipped=F("skipped") + outcome.skipped,
        notified=F("notified") + outcome.notified,
        total=F("total") + outcome.total,
        updated_at=timezone.now(),
    )
