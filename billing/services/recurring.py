"""Recurring templates (seed 001): an amount that repeats at a frequency and becomes, each
time it falls due, an invoice to a customer or a journal entry.

The schedule. Occurrence k (0 is the first) is computed from the start date and k, never
from the previous occurrence, so a monthly template from 31 January gives 31 January,
28 February (29 in a leap year), 31 March; an annual one from 29 February gives 28
February in common years and 29 February in leap years. Biweekly is every 14 days. No
occurrence falls after ``end_date``, and at most ``max_occurrences`` are generated.

The state. ``next_generation_date`` is the date of the next occurrence not yet generated,
``total_generated`` counts generations. A template completes (status completed, no next
date) when its next occurrence would pass its end date or its maximum.

Generating. An occurrence is generated ``days_ahead`` days before its date, or later
(catch-up after downtime, at most ``PER_TEMPLATE`` a template per call). It is claimed by
inserting its history row (template, occurrence date) with insert-or-ignore: only the
claimer creates the document, so a second run, a redelivered message or two workers at
once generate nothing twice. Templates are read in keyset batches locked in id order;
each company's claimed occurrences become its invoices (one insert, one finalise: numbered,
posted, notified) and journal entries (one ``post_many``) together, whatever the number of
templates. A company whose batch the books refuse (a closed period, an inactive account)
is retried template by template, so one broken template holds up no other; the refused
ones are reported.

Pausing and resuming. A paused template generates nothing; resumed, it goes on from the
first occurrence on or after the resume day: the occurrences missed while paused are
skipped, not caught up. ``max_occurrences`` counts generations, so a paused plan still
gets all of them (unless its end date comes first).
"""

from __future__ import annotations

import calendar
import datetime
import heapq
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import DateField, F, Func, Max, QuerySet
from django.utils import timezone

from billing.errors import BillingError, BillingStateError
from billing.models import (
    Customer,
    Frequency,
    Generates,
    Invoice,
    InvoiceLine,
    InvoiceSource,
    InvoiceStatus,
    RecurringGeneration,
    RecurringTemplate,
    TemplateStatus,
)
from billing.services import books as books_service
from billing.services.finalising import finalise
from config import bulk
from ledger import currencies
from ledger.models import Account, Company, JournalEntry, Source
from ledger.models.accounts import SUBLEDGER_ROLES
from ledger.services import posting
from ledger.services.periods import EARLIEST, LATEST

ZERO = Decimal(0)
BATCH = 500  # templates read, locked and generated per transaction
PER_TEMPLATE = 100  # occurrences one template catches up per call; the rest on the next run
MAX_DAYS_AHEAD = 366
UPCOMING_LIMIT = 1000
# Companies' business dates run at most this far ahead of UTC (Kiribati, UTC+14).
WIDEST_OFFSET = datetime.timedelta(hours=14)
DAY = datetime.timedelta(days=1)

ACTIVE, PAUSED = TemplateStatus.ACTIVE, TemplateStatus.PAUSED
COMPLETED, CANCELLED = TemplateStatus.COMPLETED, TemplateStatus.CANCELLED
SCHEDULE_FIELDS = ("frequency", "start_date", "end_date", "max_occurrences")
STATE_FIELDS = ("status", "next_generation_date", "total_generated", "last_generated_at")

# --- The schedule ---------------------------------------------------------------------------

EVERY_DAYS = {Frequency.DAILY: 1, Frequency.WEEKLY: 7, Frequency.BIWEEKLY: 14}
EVERY_MONTHS = {Frequency.MONTHLY: 1, Frequency.QUARTERLY: 3, Frequency.ANNUAL: 12}


def occurrence_date(start: datetime.date, frequency: str, k: int) -> datetime.date | None:
    """Occurrence ``k`` (0 is ``start``); a month-based one keeps the start's day of the
    month, or the month's last day when it is shorter. None past the years the books keep."""
    if frequency in EVERY_DAYS:
        ordinal = start.toordinal() + k * EVERY_DAYS[frequency]
        return datetime.date.fromordinal(ordinal) if ordinal <= LATEST.toordinal() else None
    months = start.month - 1 + k * EVERY_MONTHS[frequency]
    year, month = start.year + months // 12, months % 12 + 1
    if year > LATEST.year:
        return None
    return datetime.date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def occurrence_on_or_after(start: datetime.date, frequency: str, day: datetime.date) -> int:
    """The number ``k`` of the first occurrence on or after ``day``."""
    if day <= start:
        return 0
    if frequency in EVERY_DAYS:
        return -(-(day - start).days // EVERY_DAYS[frequency])
    k = ((day.year - start.year) * 12 + day.month - start.month) // EVERY_MONTHS[frequency]
    while (found := occurrence_date(start, frequency, k)) is not None and found < day:
        k += 1  # at most once: the floor can land before ``day`` in its month or step
    return k


def _date(template: RecurringTemplate, k: int) -> datetime.date | None:
    return occurrence_date(template.start_date, template.frequency, k)


def _index(template: RecurringTemplate, day: datetime.date) -> int:
    return occurrence_on_or_after(template.start_date, template.frequency, day)


def _ended(template: RecurringTemplate, day: datetime.date | None, generated: int) -> bool:
    """Whether nothing more is generated when the next occurrence is ``day``."""
    return (
        day is None
        or (template.end_date is not None and day > template.end_date)
        or (template.max_occurrences is not None and generated >= template.max_occurrences)
    )


def _move_to(template: RecurringTemplate, k: int) -> None:
    """Make occurrence ``k`` the next, or complete the template if it has ended."""
    day = _date(template, k)
    if _ended(template, day, template.total_generated):
        template.status, template.next_generation_date = COMPLETED, None
    else:
        template.next_generation_date = day


def _pending(
    template: RecurringTemplate, until: datetime.date, limit: int | None = None
) -> Iterator[tuple[int, datetime.date]]:
    """(k, date) of the occurrences not yet generated, dated up to ``until``."""
    if template.next_generation_date is None:
        return
    room = None if template.max_occurrences is None else template.max_occurrences - template.total_generated
    if limit is not None:
        room = limit if room is None else min(room, limit)
    k = _index(template, template.next_generation_date)
    count = 0
    while room is None or count < room:
        day = _date(template, k)
        if day is None or day > until or (template.end_date is not None and day > template.end_date):
            return
        yield k, day
        k, count = k + 1, count + 1


# --- Templates: checked, saved, paused, resumed, cancelled, deleted ---------------------------


def validate(template: RecurringTemplate) -> None:
    """Refuse a template that could not generate, naming every field at fault. An empty
    currency becomes the company's."""
    errors: dict[str, list[str]] = defaultdict(list)
    company = template.company
    base = company.base_currency
    if not (template.name or "").strip():
        errors["name"].append("A template needs a name.")
    if template.frequency not in Frequency.values:
        errors["frequency"].append(f"Choose from {', '.join(Frequency.values)}.")
    if not template.currency:
        template.currency = base
    elif template.currency != base:
        errors["currency"].append(f"The company's books are kept in {base}; a template bills in {base}.")
    template.amount = _check_amount(template.amount, base, errors)
    if template.generates == Generates.INVOICE:
        _check_invoice(template, errors)
    elif template.generates == Generates.JOURNAL:
        _check_journal(template, errors)
    else:
        errors["generates"].append(f"Choose from {', '.join(Generates.values)}.")
    _check_dates(template, errors)
    if not isinstance(template.days_ahead, int) or not 0 <= template.days_ahead <= MAX_DAYS_AHEAD:
        errors["days_ahead"].append(f"From 0 to {MAX_DAYS_AHEAD} days.")
    if template.max_occurrences is not None and (
        not isinstance(template.max_occurrences, int) or template.max_occurrences < 1
    ):
        errors["max_occurrences"].append("At least 1, or empty for no maximum.")
    if errors:
        raise BillingError(dict(errors))


def _check_amount(amount, currency: str, errors: dict):
    """The amount as a Decimal, or as given with the reason it is refused."""
    if isinstance(amount, float | bool) or amount is None:
        errors["amount"].append("A decimal amount is required.")
        return amount
    try:
        value = Decimal(amount)
    except (InvalidOperation, TypeError, ValueError):
        errors["amount"].append("A decimal amount is required.")
        return amount
    if not value.is_finite():
        errors["amount"].append("A decimal amount is required.")
    elif value <= ZERO:
        errors["amount"].append("The amount must be more than zero.")
    elif value >= posting.MAX_AMOUNT:
        errors["amount"].append("The amount is too large.")
    elif value != books_service.quantize(value, currency):
        errors["amount"].append(f"{currency} amounts have {currencies.MINOR_UNITS[currency]} decimal places at most.")
    return value


def _check_invoice(template: RecurringTemplate, errors: dict) -> None:
    if template.customer_id is None:
        errors["customer"].append("An invoice template needs a customer.")
    elif not Customer.objects.filter(pk=template.customer_id, company_id=template.company_id).exists():
        errors["customer"].append("The customer belongs to another company.")
    try:
        rate = Decimal(template.tax_rate)
    except (InvalidOperation, TypeError, ValueError):
        rate = None
    if rate is None or not rate.is_finite() or not ZERO <= rate <= 100:
        errors["tax_rate"].append("A percentage from 0 to 100.")
    if template.income_account_id is not None:
        _check_accounts(template, {"income_account": template.income_account_id}, errors)
    for name in ("debit_account", "credit_account"):
        if getattr(template, f"{name}_id") is not None:
            errors[name].append("Only a journal template has debit and credit accounts.")


def _check_journal(template: RecurringTemplate, errors: dict) -> None:
    given = {}
    for name in ("debit_account", "credit_account"):
        account = getattr(template, f"{name}_id")
        if account is None:
            errors[name].append("A journal template needs a debit and a credit account.")
        else:
            given[name] = account
    if len(given) == 2 and given["debit_account"] == given["credit_account"]:
        errors["credit_account"].append("Debit and credit need two different accounts.")
    _check_accounts(template, given, errors)
    if template.customer_id is not None:
        errors["customer"].append("Only an invoice template has a customer.")
    if template.income_account_id is not None:
        errors["income_account"].append("Only an invoice template has an income account.")
    if template.tax_rate:
        errors["tax_rate"].append("A journal template posts no tax.")


def _check_accounts(template: RecurringTemplate, given: dict[str, int], errors: dict) -> None:
    found = {
        pk: (company_id, active, role)
        for pk, company_id, active, role in Account.objects.filter(pk__in=given.values()).values_list(
            "pk", "company_id", "is_active", "role"
        )
    }
    for name, pk in given.items():
        company_id, active, role = found.get(pk, (None, False, ""))
        if company_id != template.company_id:
            errors[name].append("The account belongs to another company.")
        elif not active:
            errors[name].append("The account is inactive.")
        elif role in SUBLEDGER_ROLES:
            # A line without a party there would leave the sub-ledger short of explaining its balance.
            errors[name].append("A control account is posted through billing's documents, not a template.")


def _check_dates(template: RecurringTemplate, errors: dict) -> None:
    start, end = template.start_date, template.end_date
    if not isinstance(start, datetime.date):
        errors["start_date"].append("A start date (YYYY-MM-DD) is required.")
        return
    if not EARLIEST <= start <= LATEST:
        errors["start_date"].append(f"From {EARLIEST} to {LATEST}.")
    if end is not None and end < start:
        errors["end_date"].append("The end date cannot be before the start date.")
    elif end is not None and end > LATEST:
        errors["end_date"].append(f"No later than {LATEST}.")


def save_template(template: RecurringTemplate) -> RecurringTemplate:
    """Create or change a template after ``validate``. A new one starts active with its
    start date as the next occurrence (one in the past is caught up). A changed schedule
    goes on from the first occurrence after the last one generated; the state (status,
    next date, counts) is the service's and not taken from the caller."""
    with transaction.atomic():
        if template.pk is None:
            validate(template)
            template.status, template.total_generated, template.last_generated_at = ACTIVE, 0, None
            template.next_generation_date = template.start_date
            template.save()
            return template
        stored = _locked(template)
        if stored.status not in (ACTIVE, PAUSED):
            raise BillingStateError(f"Template {stored.pk} is {stored.status}; it no longer changes.")
        if template.company_id != stored.company_id:
            raise BillingError({"company": ["A template stays in its company."]})
        for name in STATE_FIELDS:
            setattr(template, name, getattr(stored, name))
        validate(template)
        if any(getattr(template, name) != getattr(stored, name) for name in SCHEDULE_FIELDS):
            last = template.generations.aggregate(last=Max("occurrence_date"))["last"]
            _move_to(template, 0 if last is None else _index(template, last + DAY))
        template.save()
    return template


def pause(template: RecurringTemplate) -> bool:
    """Stop generating; False when already paused."""
    with transaction.atomic():
        stored = _locked(template)
        changed = stored.status != PAUSED
        if changed:
            if stored.status != ACTIVE:
                raise BillingStateError(f"Template {stored.pk} is {stored.status}; only an active one is paused.")
            stored.status = PAUSED
            stored.save(update_fields=["status", "updated_at"])
    _copy_state(stored, template)
    return changed


def resume(template: RecurringTemplate, *, today: datetime.date | None = None) -> bool:
    """Generate again from the first occurrence on or after ``today`` (the company's):
    those missed while paused are skipped. False when already active."""
    with transaction.atomic():
        stored = _locked(template)
        changed = stored.status != ACTIVE
        if changed:
            if stored.status != PAUSED:
                raise BillingStateError(f"Template {stored.pk} is {stored.status}; only a paused one is resumed.")
            today = today or stored.company.today()
            stored.status = ACTIVE
            _move_to(stored, _index(stored, max(today, stored.next_generation_date or stored.start_date)))
            stored.save(update_fields=["status", "next_generation_date", "updated_at"])
    _copy_state(stored, template)
    return changed


def cancel(template: RecurringTemplate) -> bool:
    """Generate nothing more, for good; False when already cancelled."""
    with transaction.atomic():
        stored = _locked(template)
        changed = stored.status != CANCELLED
        if changed:
            if stored.status not in (ACTIVE, PAUSED):
                raise BillingStateError(f"Template {stored.pk} is {stored.status}; it cannot be cancelled.")
            stored.status, stored.next_generation_date = CANCELLED, None
            stored.save(update_fields=["status", "next_generation_date", "updated_at"])
    _copy_state(stored, template)
    return changed


def delete_template(template: RecurringTemplate) -> None:
    """Only a template that has generated nothing goes: its history and its invoices hold on to it."""
    with transaction.atomic():
        stored = _locked(template)
        if stored.generations.exists():
            raise BillingStateError(
                f"Template {stored.pk} has generated {stored.total_generated}; cancel it instead of deleting it."
            )
        stored.delete()


def _locked(template: RecurringTemplate) -> RecurringTemplate:
    return RecurringTemplate.objects.select_for_update(of=("self",)).select_related("company").get(pk=template.pk)


def _copy_state(source: RecurringTemplate, target: RecurringTemplate) -> None:
    for name in (*STATE_FIELDS, "updated_at"):
        setattr(target, name, getattr(source, name))


# --- Generating ----------------------------------------------------------------------------


@dataclass
class Outcome:
    templates: int = 0  # templates with something due
    created: int = 0  # occurrences generated by this call
    skipped: int = 0  # occurrences found generated already (by another run)
    failed: int = 0  # occurrences the books refused
    completed: int = 0  # templates that reached their end or maximum
    notified: int = 0  # "invoice issued" notifications
    invoices: list[int] = field(default_factory=list)
    entries: list[int] = field(default_factory=list)
    errors: dict[int, list[str]] = field(default_factory=dict)  # template id: why its occurrences were refused

    def add(self, other: Outcome) -> None:
        for name in ("templates", "created", "skipped", "failed", "completed", "notified"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.invoices += other.invoices
        self.entries += other.entries
        self.errors.update(other.errors)


def generate_due(
    company: Company | None = None,
    *,
    today: datetime.date | None = None,
    batch: int = BATCH,
    per_template: int = PER_TEMPLATE,
) -> Outcome:
    """What RECURRING_GENERATE does: every active template with ``auto_generate`` (of one
    company, or of all), each occurrence dated up to ``today`` (each company's own by
    default) plus the template's ``days_ahead``."""
    templates = RecurringTemplate.objects.filter(auto_generate=True)
    if company is not None:
        templates = templates.filter(company=company)
    return _generate(templates, today=today, batch=batch, per_template=per_template, manual=False)


def generate_all(
    company: Company, *, today: datetime.date | None = None, batch: int = BATCH, per_template: int = PER_TEMPLATE
) -> Outcome:
    """The same done by a person (the API's generate-all) for one company, and for the
    templates with ``auto_generate`` off too: turning it off means "by hand only", and
    this is the hand. Its history rows are marked manual."""
    templates = RecurringTemplate.objects.filter(company=company)
    return _generate(templates, today=today, batch=batch, per_template=per_template, manual=True)


def generate_template(template: RecurringTemplate, *, today: datetime.date | None = None) -> Outcome:
    """One template's due occurrences, by hand (the admin's "generate now")."""
    if template.status != ACTIVE:
        raise BillingStateError(f"Template {template.pk} is {template.status}; only an active one generates.")
    templates = RecurringTemplate.objects.filter(pk=template.pk)
    return _generate(templates, today=today, batch=1, per_template=PER_TEMPLATE, manual=True)


class _DaysBefore(Func):
    """``date - days`` as a date. PostgreSQL subtracts an integer from a date itself; SQLite
    takes a modifier. Django's duration arithmetic cannot multiply a column into days on
    SQLite, and reading every active template each hour to filter in Python would not scale."""

    arity = 2
    output_field = DateField()

    def as_sql(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, template="(%(expressions)s)", arg_joiner=" - ", **extra_context)

    def as_sqlite(self, compiler, connection, **extra_context):
        return super().as_sql(
            compiler, connection, template="date(%(expressions)s || ' days')", arg_joiner=", '-' || ", **extra_context
        )


def _due(templates: QuerySet, bound: datetime.date) -> QuerySet:
    """Active templates with an occurrence to generate by ``bound``; the plain bound on the
    next date lets the partial index of active templates narrow the scan first."""
    return (
        templates.filter(status=ACTIVE, next_generation_date__lte=bound + MAX_DAYS_AHEAD * DAY)
        .alias(generate_from=_DaysBefore(F("next_generation_date"), F("days_ahead")))
        .filter(generate_from__lte=bound)
    )


def _generate(
    templates: QuerySet, *, today: datetime.date | None, batch: int, per_template: int, manual: bool
) -> Outcome:
    bound = today or (timezone.now() + WIDEST_OFFSET).date()
    due = _due(templates, bound).select_related("company", "customer").order_by("pk")
    outcome = Outcome()
    last = 0
    while True:
        # Each batch is a transaction: what it generated stays when a later one fails.
        # Locked in id order, so a concurrent run waits and then finds the next dates moved.
        with transaction.atomic():
            rows = list(due.filter(pk__gt=last).select_for_update(of=("self",))[:batch])
            if not rows:
                return outcome
            last = rows[-1].pk
            by_company: dict[int, list[RecurringTemplate]] = defaultdict(list)
            for template in rows:
                by_company[template.company_id].append(template)
            for group in by_company.values():
                company = group[0].company
                outcome.add(_company(company, group, today or company.today(), per_template, manual))


def _company(
    company: Company, templates: list[RecurringTemplate], today: datetime.date, per_template: int, manual: bool
) -> Outcome:
    """One company's templates together; refused, one by one, to find the ones at fault."""
    try:
        with transaction.atomic():
            return _write(company, templates, today, per_template, manual)
    except ValidationError as exc:
        if len(templates) > 1:
            outcome = Outcome()
            for template in templates:
                outcome.add(_company(company, [template], today, per_template, manual))
            return outcome
        template = templates[0]
        due = len(list(_pending(template, today + template.days_ahead * DAY, per_template)))
        return Outcome(templates=1, failed=due, errors={template.pk: exc.messages})


@dataclass(frozen=True)
class _Claim:
    template: RecurringTemplate
    k: int
    day: datetime.date
    generation: int  # the history row claimed

    @property
    def key(self) -> str:
        return f"recurring:{self.template.pk}:{self.day.isoformat()}"


def _write(
    company: Company, templates: list[RecurringTemplate], today: datetime.date, per_template: int, manual: bool
) -> Outcome:
    plans = {}
    for template in templates:
        occurrences = list(_pending(template, today + template.days_ahead * DAY, per_template))
        if occurrences:
            plans[template.pk] = (template, occurrences)
    if not plans:
        return Outcome()
    now = timezone.now()
    wanted = [(template, k, day) for template, occurrences in plans.values() for k, day in occurrences]
    n = len(wanted)
    returned = bulk.insert_columns(
        RecurringGeneration,
        {
            "company": [company.pk] * n,
            "template": [template.pk for template, _k, _day in wanted],
            "occurrence": [k + 1 for _t, k, _day in wanted],
            "occurrence_date": [day for _t, _k, day in wanted],
            "invoice": [None] * n,
            "journal_entry": [None] * n,
            "manual": [manual] * n,
            "created_at": [now] * n,
        },
        returning=("id", "template", "occurrence"),
        ignore_conflicts=True,
    )
    won = {(template_id, occurrence): pk for pk, template_id, occurrence in returned}
    claims = [
        _Claim(template, k, day, won[(template.pk, k + 1)])
        for template, k, day in wanted
        if (template.pk, k + 1) in won
    ]
    outcome = Outcome(templates=len(plans), created=len(claims), skipped=n - len(claims))
    invoice_claims = [c for c in claims if c.template.generates == Generates.INVOICE]
    journal_claims = [c for c in claims if c.template.generates == Generates.JOURNAL]
    invoices, outcome.notified = _invoices(company, invoice_claims, now)
    entries = _entries(company, journal_claims)
    outcome.invoices, outcome.entries = sorted(set(invoices.values())), sorted(set(entries.values()))
    bulk.update_columns(
        RecurringGeneration,
        [
            RecurringGeneration(
                pk=c.generation, invoice_id=invoices.get(c.generation), journal_entry_id=entries.get(c.generation)
            )
            for c in claims
        ],
        ["invoice", "journal_entry"],
    )
    gained = Counter(c.template.pk for c in claims)
    rows = []
    for template, occurrences in plans.values():
        state = RecurringTemplate(
            pk=template.pk,
            start_date=template.start_date,
            frequency=template.frequency,
            end_date=template.end_date,
            max_occurrences=template.max_occurrences,
            status=ACTIVE,
            total_generated=template.total_generated + gained[template.pk],
            last_generated_at=now if gained[template.pk] else template.last_generated_at,
        )
        _move_to(state, occurrences[-1][0] + 1)
        outcome.completed += state.status == COMPLETED
        rows.append(state)
    bulk.update_columns(
        RecurringTemplate,
        rows,
        ["status", "next_generation_date", "total_generated", "last_generated_at", "updated_at"],
    )
    return outcome


def _invoices(company: Company, claims: list[_Claim], now: datetime.datetime) -> tuple[dict[int, int], int]:
    """Draft invoices for the claims, finalised together; ``{generation: invoice}`` and
    how many customers were notified."""
    if not claims:
        return {}, 0
    currency = company.base_currency
    sales = None
    lines = []  # (claim, account, amount, tax)
    for claim in claims:
        template = claim.template
        account = template.income_account_id
        if account is None:
            sales = sales or books_service.books(company).need("sales")
            account = sales
        lines.append(
            (claim, account, template.amount, books_service.tax_on(template.amount, template.tax_rate, currency))
        )
    n = len(claims)
    returned = bulk.insert_columns(
        Invoice,
        {
            "company": [company.pk] * n,
            "customer": [c.template.customer_id for c in claims],
            "number": [""] * n,
            "status": [InvoiceStatus.DRAFT.value] * n,
            "source": [InvoiceSource.RECURRING.value] * n,
            "billing_key": [c.key for c in claims],
            "issue_date": [c.day for c in claims],
            "due_date": [c.day + c.template.customer.payment_terms_days * DAY for c in claims],
            "cadence": [""] * n,
            "consolidated": [False] * n,
            "template": [c.template.pk for c in claims],
            "currency": [currency] * n,
            "subtotal": [amount for _c, _a, amount, _tax in lines],
            "tax": [tax for _c, _a, _amount, tax in lines],
            "total": [amount + tax for _c, _a, amount, tax in lines],
            "paid": [ZERO] * n,
            "credited": [ZERO] * n,
            "due": [amount + tax for _c, _a, amount, tax in lines],
            "memo": [c.template.name[:500] for c in claims],
            "void_reason": [""] * n,
            "created_at": [now] * n,
        },
        returning=("billing_key", "id"),
        ignore_conflicts=True,
    )
    created = dict(returned)
    made = [line for line in lines if line[0].key in created]
    bulk.insert_columns(
        InvoiceLine,
        {
            "invoice": [created[c.key] for c, _a, _amount, _tax in made],
            "position": [0] * len(made),
            "description": [(c.template.description or c.template.name)[:300] for c, _a, _amount, _tax in made],
            "component": [0] * len(made),
            "amount": [amount for _c, _a, amount, _tax in made],
            "tax_rate": [c.template.tax_rate for c, _a, _amount, _tax in made],
            "tax": [tax for _c, _a, _amount, tax in made],
            "total": [amount + tax for _c, _a, amount, tax in made],
            "income_account": [account for _c, account, _amount, _tax in made],
            "billed": [True] * len(made),
        },
        returning=(),
    )
    # An invoice already holding the key (its history row was deleted) is linked, not made again.
    missing = [c.key for c in claims if c.key not in created]
    found = {}
    if missing:
        found = dict(
            Invoice.objects.filter(company=company, billing_key__in=missing)
            .exclude(status=InvoiceStatus.VOID)
            .values_list("billing_key", "pk")
        )
    notified = finalise(company, sorted(created.values())).notified if created else 0
    return {c.generation: created.get(c.key) or found.get(c.key) for c in claims}, notified


def _entries(company: Company, claims: list[_Claim]) -> dict[int, int]:
    """The claims' journal entries, posted together; ``{generation: entry}``. Keyed by
    source id, so one already posted is found, not posted again."""
    if not claims:
        return {}
    entries = []
    for claim in claims:
        template = claim.template
        text = (template.description or template.name)[:200]
        entries.append(
            posting.Entry(
                date=claim.day,
                lines=[
                    posting.Line(template.debit_account_id, debit=template.amount, description=text),
                    posting.Line(template.credit_account_id, credit=template.amount, description=text),
                ],
                reference=template.name[:100],
                memo=f"Recurring template {template.pk}, occurrence {claim.k + 1}",
                source=Source.BILLING,
                source_id=claim.key,
            )
        )
    posting.post_many(company, entries)
    ids = dict(
        JournalEntry.objects.filter(
            company=company, source=Source.BILLING, source_id__in=[c.key for c in claims]
        ).values_list("source_id", "pk")
    )
    return {c.generation: ids.get(c.key) for c in claims}


# --- What is coming -------------------------------------------------------------------------


@dataclass(frozen=True)
class Upcoming:
    template: RecurringTemplate
    occurrence: int  # 1 for the first
    date: datetime.date
    generate_on: datetime.date | None  # when RECURRING_GENERATE makes it; None: by hand only


def upcoming(
    company: Company, days: int, *, today: datetime.date | None = None, limit: int = UPCOMING_LIMIT
) -> tuple[list[Upcoming], bool]:
    """The active templates' occurrences still to generate, dated up to ``days`` days from
    ``today`` (ones already due and not yet generated included), by date; at most
    ``limit`` of them, and whether there were more. Writes nothing."""
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS_AHEAD:
        raise BillingError({"days": [f"From 1 to {MAX_DAYS_AHEAD} days."]})
    until = (today or company.today()) + days * DAY
    templates = (
        RecurringTemplate.objects.filter(company=company, status=ACTIVE, next_generation_date__lte=until)
        .select_related("customer")
        .order_by("pk")
    )

    def stream(template: RecurringTemplate) -> Iterator[Upcoming]:
        for k, day in _pending(template, until):
            generate_on = day - template.days_ahead * DAY if template.auto_generate else None
            yield Upcoming(template, k + 1, day, generate_on)

    merged = heapq.merge(*(stream(t) for t in templates), key=lambda item: (item.date, item.template.pk))
    items = list(itertools.islice(merged, limit + 1))
    return items[:limit], len(items) > limit
