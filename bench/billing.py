"""A monthly invoice run under volume, on PostgreSQL and Redis: invoices per second, naive loop and SQL floor.

100,000 customers of one company, each enrolled on three monthly fee structures (tuition in two
components with 16 % tax, meals to another income account, transport), billed for January 2026
consolidated: one invoice per customer with four lines, numbered without gaps, posted to the ledger
(four journal lines each) and notified (in-app and email, so two deliveries each). Measured in one run:

- platform: BILLING_MONTHLY_INVOICES asked for through ``runs.request_run`` and executed by two worker
            processes (``celery worker -Q billing -c 1`` each); from the request to the run's success,
            both read from the run's row. The invoices' deliveries are queued for the notifications
            workers, which the bench does not start: the issue measures invoicing, not email.
- naive:    the same work one customer at a time through the ORM, on a second company of ``--sample``
            customers enrolled the same way: read the customer's enrolments and whether each is billed,
            create the invoice and each line, take its number from the counter row locked with
            ``select_for_update``, ``posting.post`` its entry, ``notify`` the customer; a transaction per
            customer. Its rate is extrapolated, not measured on all the customers.
- floor:    every row the run writes (invoices, their lines, journal entries and lines, notifications
            and deliveries, and the counter) by hand-written ``INSERT ... SELECT`` from the enrolments,
            one transaction on one connection, into the same tables with their indexes and constraints,
            then rolled back. It runs first, so its rows carry the run's own keys and numbers; a vacuum
            and a checkpoint follow, so the run does not pay for them.
- re-run:   ``runs.rerun`` of the succeeded run on the same workers, which must create nothing; a
            second ``request_run`` for the month must return the same run.

Goals: the platform at least 30 times the naive loop's rate, and within 5 times the floor's time. The
bench checks itself -- one invoice per customer, each enrolment's components billed once, numbers
INV-000001 to INV-N with no gap, each invoice posted with balanced lines, each customer notified once,
the floor's rows table for table the run's, nothing created by the re-run -- and exits 1 if a check
fails. A missed goal is reported, not failed.

    .venv/bin/python bench/billing.py [--customers 100000] [--sample 1000] [--chunk 1000]
    .venv/bin/python bench/billing.py --smoke   # every phase and check in seconds

A few minutes on two cores; ``--customers 5000 --sample 200`` for a quick check. ``--smoke`` (200
customers in chunks of 50 over the same two workers, a naive sample of 20) runs every phase and
check in seconds and prints the figures but judges no goal: the integration suite runs it to catch
a bench that no longer runs. It creates the database countinghouse_bench_billing (``--smoke``:
countinghouse_bench_billing_smoke), dropped at the end, and uses Redis database 11 as its broker
(``--smoke``: 4), emptied at the start and the end; the other benches use 3-8, 12 and 13, the
integration tests 9, 14 and 15. PostgreSQL at 127.0.0.1:5432 with trust auth.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SMOKE_HELP, Checks, Worker, environment, own_database, sql
from bench.common import finished as common_finished
from bench.common import start_workers as common_start_workers

DATABASE = "countinghouse_bench_billing"
REDIS = "redis://127.0.0.1:6379/11"
SMOKE_REDIS = "redis://127.0.0.1:6379/4"
SMOKE = {"customers": 200, "sample": 20, "chunk": 50}  # four chunks, not one: the fan-out as at full size
JOB = "BILLING_MONTHLY_INVOICES"
PERIOD = datetime.date(2026, 1, 1)
ENROLLED = datetime.date(2025, 9, 1)
# code, name, amount, tax %, components, income account's role (None: the sales account)
FEES = (
    ("TUITION", "Tuition", "2000.00", "16", (("Teaching", "1800.00"), ("Materials", "200.00")), None),
    ("MEALS", "Meals", "150.00", "0", (), "other_income"),
    ("BUS", "Transport", "300.00", "0", (), None),
)
LINES_PER_INVOICE = 4  # two components of tuition, meals, transport
USERS = 100  # portal users; customer i's is user i % USERS, so the in-app delivery is queued too
WORKERS = 2
POLL = 0.1  # seconds between looks at the run; its times themselves are read from its row
STALL = 180.0  # seconds without a chunk finishing before the bench gives up
NAIVE_GOAL = 30.0  # the platform's rate at least this many times the naive loop's
FLOOR_GOAL = 5.0  # the platform's time at most this many times the floor's

check = Checks()


# --- The books ------------------------------------------------------------------------------


def tables() -> dict[str, str]:
    """The tables a run writes, by what the report calls them."""
    from billing.models import Invoice, InvoiceLine
    from ledger.models import JournalEntry, JournalLine
    from notifications.models import Delivery, Notification

    models = {
        "invoices": Invoice,
        "invoice lines": InvoiceLine,
        "journal entries": JournalEntry,
        "journal lines": JournalLine,
        "notifications": Notification,
        "deliveries": Delivery,
    }
    return {name: model._meta.db_table for name, model in models.items()}


def portal_users() -> list[int]:
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    users = user_model.objects.bulk_create(
        [user_model(username=f"parent{i}", email=f"parent{i}@example.com", password="!") for i in range(USERS)]
    )
    return [user.pk for user in users]


def school(slug: str, customers: int, users: list[int]):
    """A company with the default chart, January's fiscal year open, the three fee structures,
    and ``customers`` customers enrolled on all three since September -- the rows written
    set-based, by INSERT ... SELECT over generate_series."""
    from billing.models import Customer, Enrolment, FeeComponent, FeeStructure
    from billing.services import books as books_service
    from ledger.models import Company
    from ledger.services import periods
    from ledger.services.chart import load_default_chart

    company = Company.objects.create(name=f"{slug.title()} Academy", slug=slug, base_currency="GBP")
    load_default_chart(company)
    periods.periods_for(company, [PERIOD])
    books = books_service.books(company)
    for code, name, amount, rate, components, role in FEES:
        fee = FeeStructure.objects.create(
            company=company,
            code=code,
            name=name,
            amount=Decimal(amount),
            currency="GBP",
            tax_rate=Decimal(rate),
            income_account_id=getattr(books, role) if role else None,
        )
        FeeComponent.objects.bulk_create(
            FeeComponent(fee_structure=fee, position=n, name=part, amount=Decimal(value))
            for n, (part, value) in enumerate(components)
        )
    customer, enrolment = Customer._meta.db_table, Enrolment._meta.db_table
    sql(
        f"INSERT INTO {customer} (company_id, name, email, external_ref, payment_terms_days, portal_user_id, active, "
        "created_at, updated_at) "
        "SELECT %s, 'Customer ' || i, 'customer' || i || '@example.com', 'S' || lpad(i::text, 7, '0'), 14, "
        "(%s::bigint[])[1 + i %% %s], true, now(), now() FROM generate_series(1, %s) AS i",
        [company.pk, users, len(users), customers],
    )
    sql(
        f"INSERT INTO {enrolment} (company_id, customer_id, fee_structure_id, start_date, end_date, consolidate, "
        "invoice_on_enrolment, created_at, updated_at) "
        f"SELECT c.company_id, c.id, f.id, %s, NULL, true, false, now(), now() "
        f"FROM {customer} c CROSS JOIN {FeeStructure._meta.db_table} f "
        "WHERE c.company_id = %s AND f.company_id = c.company_id ORDER BY c.id, f.id",
        [ENROLLED, company.pk],
    )
    return company


def settle() -> None:
    """Statistics current and dead rows gone, as autovacuum would leave them, and a checkpoint,
    so no phase pays for the writes of the one before."""
    from billing.models import Customer, DocumentSequence, Enrolment

    for table in (*tables().values(), Customer._meta.db_table, Enrolment._meta.db_table):
        sql(f"VACUUM (ANALYZE) {table}")
    sql(f"VACUUM (ANALYZE) {DocumentSequence._meta.db_table}")
    sql("CHECKPOINT")


def written(company) -> dict[str, int]:
    """The company's rows of the run's kind in each table."""
    t = tables()
    counts = sql(
        f"""
        SELECT
          (SELECT count(*) FROM {t["invoices"]} WHERE company_id = %(c)s),
          (SELECT count(*) FROM {t["invoice lines"]} l JOIN {t["invoices"]} i ON i.id = l.invoice_id
            WHERE i.company_id = %(c)s),
          (SELECT count(*) FROM {t["journal entries"]} WHERE company_id = %(c)s AND source = 'billing'),
          (SELECT count(*) FROM {t["journal lines"]} l JOIN {t["journal entries"]} e ON e.id = l.entry_id
            WHERE e.company_id = %(c)s AND e.source = 'billing'),
          (SELECT count(*) FROM {t["notifications"]} WHERE company_id = %(c)s AND kind = 'invoice_issued'),
          (SELECT count(*) FROM {t["deliveries"]} d JOIN {t["notifications"]} n ON n.id = d.notification_id
            WHERE n.company_id = %(c)s AND n.kind = 'invoice_issued')
        """,
        {"c": company.pk},
    )[0]
    return dict(zip(t, counts, strict=True))


# --- Checks -----------------------------------------------------------------------------------


def check_billed(label: str, company, customers: int) -> None:
    """One invoice per customer, each enrolment component once, numbers 1..N with no gap, each
    posted with balanced lines for its total, each customer notified once."""
    from billing.models import DocumentSequence, Invoice, InvoiceLine, Series

    t = tables()
    invoices = Invoice.objects.filter(company=company)
    count, distinct_customers, lowest, highest, distinct_numbers, unposted, drafts = sql(
        f"SELECT count(*), count(DISTINCT customer_id), min(number), max(number), count(DISTINCT number), "
        f"count(*) FILTER (WHERE journal_entry_id IS NULL), count(*) FILTER (WHERE status <> 'open') "
        f"FROM {t['invoices']} WHERE company_id = %s",
        [company.pk],
    )[0]
    check(count == customers, f"{label}: {count:,} invoices for {customers:,} customers")
    check(distinct_customers == customers, f"{label}: {distinct_customers:,} customers invoiced of {customers:,}")
    check(
        (lowest, highest, distinct_numbers) == ("INV-000001", f"INV-{customers:06d}", customers),
        f"{label}: numbers {lowest}..{highest}, {distinct_numbers:,} distinct, for {customers:,} invoices",
    )
    sequence = DocumentSequence.objects.get(company=company, series=Series.INVOICE)
    check(sequence.next_number == customers + 1, f"{label}: the counter stands at {sequence.next_number}")
    check(unposted == 0 and drafts == 0, f"{label}: {unposted} invoices unposted, {drafts} not open")
    lines = InvoiceLine.objects.filter(invoice__company=company)
    billed = lines.values("enrolment", "period_start", "component").distinct().count()
    check(
        lines.count() == billed == LINES_PER_INVOICE * customers,
        f"{label}: {lines.count():,} invoice lines, {billed:,} distinct enrolment components",
    )
    total, entries, debits, balance, short = sql(
        f"""
        SELECT (SELECT sum(total) FROM {t["invoices"]} WHERE company_id = %(c)s),
               count(DISTINCT e.id), sum(l.debit), sum(l.amount),
               (SELECT count(*) FROM {t["invoices"]} i JOIN {t["journal entries"]} je ON je.id = i.journal_entry_id
                 WHERE i.company_id = %(c)s AND (je.source_id <> 'invoice:' || i.id OR je.status <> 'posted'))
        FROM {t["journal entries"]} e JOIN {t["journal lines"]} l ON l.entry_id = e.id
        WHERE e.company_id = %(c)s AND e.source = 'billing'
        """,
        {"c": company.pk},
    )[0]
    check(entries == customers, f"{label}: {entries:,} journal entries for {customers:,} invoices")
    check(short == 0, f"{label}: {short} invoices point at an entry not theirs or not posted")
    check(balance == 0 and debits == total, f"{label}: journal lines sum to {balance}; debits {debits}, total {total}")
    notified, recipients, per_invoice = sql(
        f"SELECT count(*), count(DISTINCT recipient_key), count(DISTINCT dedupe_key) FROM {t['notifications']} "
        "WHERE company_id = %s AND kind = 'invoice_issued'",
        [company.pk],
    )[0]
    check(
        notified == recipients == per_invoice == customers,
        f"{label}: {notified:,} notifications to {recipients:,} customers for {per_invoice:,} invoices",
    )
    check(invoices.exclude(due_date=PERIOD + datetime.timedelta(days=14)).count() == 0, f"{label}: due dates")


# --- The floor --------------------------------------------------------------------------------


def floor(company) -> tuple[float, dict[str, int]]:
    """Every row of the run by INSERT ... SELECT in one transaction, rolled back; the seconds
    until the last statement returned, and the rows each table took."""
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection, transaction

    from billing.kinds import INVOICE_ISSUED
    from billing.models import Customer, DocumentSequence, Enrolment, FeeComponent, FeeStructure
    from billing.services import books as books_service
    from billing.services import periods as billing_periods
    from ledger.models import Period
    from notifications import kinds

    t = tables()
    books = books_service.books(company)
    start, end = billing_periods.period_for("monthly", PERIOD)
    params = {
        "company": company.pk,
        "company_name": company.name,
        "start": start,
        "end": end,
        "issue": start,
        "label": billing_periods.label("monthly", start),
        "key": f"monthly:{start.isoformat()}:customer:",
        "currency": company.base_currency,
        "sales": books.sales,
        "receivables": books.receivables,
        "tax_account": books.tax,
        "period": Period.objects.get(company=company, start_date__lte=start, end_date__gte=start).pk,
        "party_type": ContentType.objects.get_for_model(Customer).pk,
        "channels": list(kinds.get(INVOICE_ISSUED).channels),
        "channels_json": json.dumps(list(kinds.get(INVOICE_ISSUED).channels)),
    }
    customer, enrolment = Customer._meta.db_table, Enrolment._meta.db_table
    fee, component = FeeStructure._meta.db_table, FeeComponent._meta.db_table
    statements = {
        None: f"""
            CREATE TEMP TABLE floor_line ON COMMIT DROP AS
            SELECT e.customer_id, e.id AS enrolment_id, f.id AS fee_id, coalesce(c.position, 0) AS component,
                   CASE WHEN c.id IS NULL THEN f.name ELSE f.name || ': ' || c.name END AS description,
                   coalesce(c.amount, f.amount) AS amount, f.tax_rate,
                   round(coalesce(c.amount, f.amount) * f.tax_rate / 100, 2) AS tax,
                   coalesce(f.income_account_id, %(sales)s) AS account,
                   row_number() OVER (PARTITION BY e.customer_id ORDER BY e.id, c.position) - 1 AS position
            FROM {enrolment} e
            JOIN {customer} cu ON cu.id = e.customer_id AND cu.active
            JOIN {fee} f ON f.id = e.fee_structure_id AND f.active AND f.cadence = 'monthly'
            LEFT JOIN {component} c ON c.fee_structure_id = f.id
            WHERE e.company_id = %(company)s AND e.start_date <= %(end)s
              AND (e.end_date IS NULL OR e.end_date >= %(start)s)
              AND NOT EXISTS (SELECT 1 FROM {t["invoice lines"]} l
                              WHERE l.enrolment_id = e.id AND l.period_start = %(start)s AND l.billed);
            CREATE TEMP TABLE floor_invoice ON COMMIT DROP AS
            SELECT nextval(pg_get_serial_sequence('{t["invoices"]}', 'id')) AS id,
                   nextval(pg_get_serial_sequence('{t["journal entries"]}', 'id')) AS entry_id,
                   nextval(pg_get_serial_sequence('{t["notifications"]}', 'id')) AS notification_id,
                   'INV-' || lpad((row_number() OVER (ORDER BY s.customer_id))::text, 6, '0') AS number,
                   s.customer_id, cu.name, cu.email, cu.portal_user_id,
                   %(issue)s::date + cu.payment_terms_days AS due_date, s.subtotal, s.tax
            FROM (SELECT customer_id, sum(amount) AS subtotal, sum(tax) AS tax FROM floor_line GROUP BY customer_id) s
            JOIN {customer} cu ON cu.id = s.customer_id;
            INSERT INTO {DocumentSequence._meta.db_table} (company_id, series, prefix, padding, next_number)
            SELECT %(company)s, 'invoice', 'INV-', 6, count(*) + 1 FROM floor_invoice
            ON CONFLICT (company_id, series) DO UPDATE SET next_number = EXCLUDED.next_number;
            """,
        "journal entries": f"""
            INSERT INTO {t["journal entries"]} (id, company_id, date, period_id, reference, memo, source, source_id,
                status, is_closing, flag_reason, created_at, posted_at)
            SELECT entry_id, %(company)s, %(issue)s, %(period)s, number, 'Invoice ' || number || ' for ' || %(label)s,
                   'billing', 'invoice:' || id, 'posted', false, '', now(), now()
            FROM floor_invoice ORDER BY entry_id
            """,
        "journal lines": f"""
            INSERT INTO {t["journal lines"]} (entry_id, company_id, account_id, date, posted, description, debit,
                credit, currency, amount, party)
            SELECT entry_id, %(company)s, account, %(issue)s, true, description, debit, credit, %(currency)s,
                   debit - credit, party
            FROM (
              SELECT entry_id, 0 AS side, %(receivables)s AS account, number AS description,
                     subtotal + tax AS debit, 0 AS credit, 'customer:' || customer_id AS party
              FROM floor_invoice
              UNION ALL
              SELECT i.entry_id, 1, l.account, i.number, 0, sum(l.amount), ''
              FROM floor_line l JOIN floor_invoice i USING (customer_id) GROUP BY i.entry_id, i.number, l.account
              UNION ALL
              SELECT entry_id, 2, %(tax_account)s, 'Tax on ' || number, 0, tax, '' FROM floor_invoice WHERE tax > 0
            ) lines
            ORDER BY entry_id, side
            """,
        "invoices": f"""
            INSERT INTO {t["invoices"]} (id, company_id, customer_id, number, status, source, billing_key, issue_date,
                due_date, period_start, period_end, cadence, consolidated, currency, subtotal, tax, total, paid,
                credited, due, memo, journal_entry_id, finalised_at, void_reason, created_at)
            SELECT id, %(company)s, customer_id, number, 'open', 'run', %(key)s || customer_id, %(issue)s,
                   due_date, %(start)s, %(end)s, 'monthly', true, %(currency)s, subtotal, tax, subtotal + tax, 0, 0,
                   subtotal + tax, '', entry_id, now(), '', now()
            FROM floor_invoice ORDER BY id
            """,
        "invoice lines": f"""
            INSERT INTO {t["invoice lines"]} (invoice_id, position, description, enrolment_id, fee_structure_id,
                component, period_start, amount, tax_rate, tax, total, income_account_id, billed)
            SELECT i.id, l.position, l.description, l.enrolment_id, l.fee_id, l.component, %(start)s, l.amount,
                   l.tax_rate, l.tax, l.amount + l.tax, l.account, true
            FROM floor_line l JOIN floor_invoice i USING (customer_id) ORDER BY i.id, l.position
            """,
        "notifications": f"""
            INSERT INTO {t["notifications"]} (id, company_id, kind, priority, dedupe_key, user_id, party_type_id,
                party_id, recipient_key, recipient_name, recipient_email, channels, data, subject, body, created_at)
            SELECT notification_id, %(company)s, 'invoice_issued', 'normal', 'invoice_issued:' || id, portal_user_id,
                   %(party_type)s, customer_id::text, 'billing.customer:' || customer_id, name, email,
                   %(channels_json)s::jsonb,
                   jsonb_build_object('company_name', %(company_name)s, 'customer_name', name, 'invoice_id', id,
                     'invoice_number', number, 'period', %(label)s, 'issue_date', %(issue)s::date::text,
                     'due_date', due_date::text, 'currency', %(currency)s, 'total', (subtotal + tax)::text),
                   '', '', now()
            FROM floor_invoice ORDER BY notification_id
            """,
        "deliveries": f"""
            INSERT INTO {t["deliveries"]} (notification_id, company_id, channel, endpoint_id, status, attempts,
                next_attempt_at, claim, last_error, provider_message_id, created_at, updated_at)
            SELECT notification_id, %(company)s, channel, NULL, CASE WHEN reason = '' THEN 'queued' ELSE 'suppressed'
                   END, 0, now(), '', reason, '', now(), now()
            FROM (
              SELECT notification_id, channel,
                     CASE WHEN channel = 'email' AND email = '' THEN 'no email address'
                          WHEN channel = 'in_app' AND portal_user_id IS NULL THEN 'no user to show it to'
                          ELSE '' END AS reason
              FROM floor_invoice CROSS JOIN unnest(%(channels)s::text[]) WITH ORDINALITY AS ch(channel, n)
              ORDER BY notification_id, n
            ) wanted
            """,
    }
    rows: dict[str, int] = {}
    began = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        for name, statement in statements.items():
            cursor.execute(statement, params)
            if name is not None:
                rows[name] = cursor.rowcount
        seconds = time.perf_counter() - began
        transaction.set_rollback(True)
    return seconds, rows


# --- The platform -----------------------------------------------------------------------------


def start_workers(variables: dict[str, str]) -> list[Worker]:
    return common_start_workers("bench-billing", "billing", WORKERS, variables)


def finished(run_id: int, workers: list[Worker], what: str):
    return common_finished(run_id, workers, what, poll=POLL, stall=STALL)


class Timed(NamedTuple):
    seconds: float  # from the request (the run's created_at) to its finished_at
    wall: float  # as this process saw it: request_run called to success seen
    chunks: int


def run_once(company, chunk: int, workers: list[Worker]) -> tuple[Timed, object]:
    from scheduling.models import JobDefinition
    from scheduling.services import runs

    definition = JobDefinition.objects.get(code=JOB)
    began = time.perf_counter()
    run, created = runs.request_run(definition, company=company, business_date=PERIOD, params={"chunk_size": chunk})
    check(created, "the month's run existed before the bench asked for it")
    run = finished(run.pk, workers, "the run")
    wall = time.perf_counter() - began
    return Timed((run.finished_at - run.created_at).total_seconds(), wall, run.chunks_total or 0), run


def rerun(run, workers: list[Worker]) -> Timed:
    from django.utils import timezone

    from scheduling.services import runs

    began, asked = time.perf_counter(), timezone.now()
    again = runs.rerun(run)
    done = finished(again.pk, workers, "the re-run")
    wall = time.perf_counter() - began
    return Timed((done.finished_at - asked).total_seconds(), wall, done.chunks_total or 0)


# --- The naive loop ---------------------------------------------------------------------------


def naive(company) -> float:
    """Bill each of the company's customers on its own, the ORM's way; the seconds it took."""
    from django.db import transaction
    from django.db.models import Q
    from django.utils import timezone

    from billing.kinds import INVOICE_ISSUED
    from billing.models import (
        Customer,
        DocumentSequence,
        Enrolment,
        Invoice,
        InvoiceLine,
        InvoiceSource,
        InvoiceStatus,
        Series,
    )
    from billing.services import books as books_service
    from billing.services import periods as billing_periods
    from ledger.services import posting
    from notifications.services.sending import notify

    start, end = billing_periods.period_for("monthly", PERIOD)
    label = billing_periods.label("monthly", start)
    books = books_service.books(company)
    DocumentSequence.objects.create(company=company, series=Series.INVOICE, prefix="INV-")
    began = time.perf_counter()
    for customer in Customer.objects.filter(company=company, active=True).order_by("pk"):
        with transaction.atomic():
            enrolments = (
                Enrolment.objects.filter(
                    customer=customer,
                    fee_structure__cadence="monthly",
                    fee_structure__active=True,
                    start_date__lte=end,
                )
                .filter(Q(end_date__isnull=True) | Q(end_date__gte=start))
                .select_related("fee_structure")
                .order_by("pk")
            )
            unbilled = [
                e
                for e in enrolments
                if not InvoiceLine.objects.filter(enrolment=e, period_start=start, billed=True).exists()
            ]
            key = f"monthly:{start.isoformat()}:customer:{customer.pk}"
            if not unbilled or Invoice.objects.filter(company=company, billing_key=key).exists():
                continue
            invoice = Invoice.objects.create(
                company=company,
                customer=customer,
                source=InvoiceSource.RUN,
                billing_key=key,
                issue_date=start,
                due_date=start + datetime.timedelta(days=customer.payment_terms_days),
                period_start=start,
                period_end=end,
                cadence="monthly",
                consolidated=True,
                currency=company.base_currency,
            )
            income, position = [], 0
            for enrolment in unbilled:
                fee = enrolment.fee_structure
                parts = [(c.position, f"{fee.name}: {c.name}", c.amount) for c in fee.components.all()]
                for component, description, amount in parts or [(0, fee.name, fee.amount)]:
                    tax = books_service.tax_on(amount, fee.tax_rate, fee.currency)
                    line = InvoiceLine.objects.create(
                        invoice=invoice,
                        position=position,
                        description=description,
                        enrolment=enrolment,
                        fee_structure=fee,
                        component=component,
                        period_start=start,
                        amount=amount,
                        tax_rate=fee.tax_rate,
                        tax=tax,
                        total=amount + tax,
                        income_account_id=fee.income_account_id or books.sales,
                    )
                    income.append((line.income_account_id, amount, tax))
                    position += 1
            sequence = DocumentSequence.objects.select_for_update().get(company=company, series=Series.INVOICE)
            invoice.number = sequence.format(sequence.next_number)
            sequence.next_number += 1
            sequence.save(update_fields=["next_number"])
            invoice.subtotal = sum(amount for _a, amount, _t in income)
            invoice.tax = sum(tax for _a, _n, tax in income)
            invoice.total = invoice.due = invoice.subtotal + invoice.tax
            posted = posting.post(
                company,
                books_service.invoice_entry(
                    books,
                    invoice_id=invoice.pk,
                    customer_id=customer.pk,
                    date=start,
                    reference=invoice.number,
                    memo=f"Invoice {invoice.number} for {label}",
                    total=invoice.total,
                    income=income,
                ),
            )
            invoice.status = InvoiceStatus.OPEN
            invoice.journal_entry = posted.entry
            invoice.finalised_at = timezone.now()
            invoice.save()
            notify(
                customer,
                INVOICE_ISSUED,
                {
                    "company_name": company.name,
                    "customer_name": customer.name,
                    "invoice_id": invoice.pk,
                    "invoice_number": invoice.number,
                    "period": label,
                    "issue_date": start.isoformat(),
                    "due_date": invoice.due_date.isoformat(),
                    "currency": invoice.currency,
                    "total": str(invoice.total),
                },
                company=company,
                dedupe_key=f"invoice_issued:{invoice.pk}",
            )
    return time.perf_counter() - began


# --- Report -----------------------------------------------------------------------------------


def report(
    n: int, platform: Timed, again: Timed, naive_seconds: float, sample: int, floor_seconds: float, rows, judged: bool
) -> None:
    total_rows = sum(rows.values())
    platform_rate = n / platform.seconds
    naive_rate = sample / naive_seconds
    floor_rate = n / floor_seconds
    print(
        f"\nBilling {n:,} customers x 3 enrolments for January 2026, consolidated: {n:,} invoices and "
        f"{total_rows:,} rows\n({', '.join(f'{count:,} {name}' for name, count in rows.items())})\n"
    )
    print(f"{'':58} {'invoices':>9} {'seconds':>9} {'invoices/s':>11} {'rows/s':>10}")
    lines = (
        (f"platform: {JOB}, {WORKERS} workers", n, platform.seconds),
        ("naive: one customer at a time through the ORM *", n, n / naive_rate),
        ("floor: INSERT ... SELECT, one transaction", n, floor_seconds),
    )
    for label, count, seconds in lines:
        print(f"{label:58} {count:>9,} {seconds:>9.2f} {count / seconds:>11,.0f} {total_rows / seconds:>10,.0f}")
    print(f"* measured on {sample:,} customers ({naive_seconds:.2f} s, {naive_rate:,.1f} /s) and extrapolated")
    print(
        f"platform: request to success read from the run's row ({platform.chunks} chunks); "
        f"{platform.wall:.2f} s as this process saw it"
    )
    print(f"re-run of the succeeded run: {again.seconds:.2f} s ({again.wall:.2f} s seen), nothing created")
    print("the invoices' deliveries stay queued: no notifications worker runs")
    print()
    versus_naive = platform_rate / naive_rate
    versus_floor = platform.seconds / floor_seconds
    # At smoke size the ratios are start-up costs, not rates: a verdict on them would mean nothing.
    met = {True: "met", False: "MISSED"} if judged else dict.fromkeys((True, False), "not judged (--smoke)")
    print(f"platform / naive   invoices/s: {versus_naive:8.1f}x   goal at least {NAIVE_GOAL:.0f}x: "
          f"{met[versus_naive >= NAIVE_GOAL]}")  # fmt: skip
    print(f"platform / floor   seconds:    {versus_floor:8.1f}x   goal within {FLOOR_GOAL:.0f}x:   "
          f"{met[versus_floor <= FLOOR_GOAL]}")  # fmt: skip
    print(f"(floor {floor_rate:,.0f} invoices/s)")


# --- Main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000, help="customers billed by the run")
    parser.add_argument("--sample", type=int, default=1000, help="customers billed by the naive loop")
    parser.add_argument("--chunk", type=int, default=None, help="customers per chunk (default: the job's)")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    if args.customers < 1 or not 1 <= args.sample <= args.customers:
        parser.error("--customers must be positive and --sample between 1 and --customers")

    # A terminated bench still stops its workers (run's finally) and drops its database.
    # A smoke run (the integration suite's) must not drop or flush a full run's database under it.
    database, redis = (f"{DATABASE}_smoke", SMOKE_REDIS) if args.smoke else (DATABASE, REDIS)
    variables = environment(database, redis)
    with own_database("bench/billing.py", database, variables, flush_redis=True):
        run(args, variables)
    check.exit_if_failed()


def run(args, variables: dict[str, str]) -> None:
    from billing.models import InvoiceRun
    from billing.services import invoicing
    from scheduling.models import JobDefinition
    from scheduling.services import runs

    n = args.customers
    chunk = args.chunk or invoicing.CHUNK_CUSTOMERS
    began = time.perf_counter()
    users = portal_users()
    company = school("hillside", n, users)
    sampled = school("naive", args.sample, users)
    settle()
    print(f"\nSeeded {n:,} + {args.sample:,} customers x 3 enrolments in {time.perf_counter() - began:.1f} s")

    floor_seconds, floor_rows = floor(company)
    check(written(company) == dict.fromkeys(tables(), 0), "the floor's rows outlived its rollback")
    settle()
    print(f"  floor    {n:>9,} invoices in {floor_seconds:7.2f} s ({sum(floor_rows.values()):,} rows), rolled back")

    workers: list[Worker] = []
    try:
        workers = start_workers(variables)
        platform, job_run = run_once(company, chunk, workers)
        print(f"  platform {n:>9,} invoices in {platform.seconds:7.2f} s ({platform.chunks} chunks)")
        check_billed("platform", company, n)
        rows = written(company)
        check(rows == floor_rows, f"the floor wrote {floor_rows}, the run {rows}")
        record = InvoiceRun.objects.get(job_run=job_run)
        check((record.created, record.enrolments, record.notified) == (n, 3 * n, n), f"the run's record: {record}")

        again, created = runs.request_run(JobDefinition.objects.get(code=JOB), company=company, business_date=PERIOD)
        check(not created and again.pk == job_run.pk, "a second request for the month made a second run")
        repeated = rerun(job_run, workers)
        check(written(company) == rows, f"the re-run wrote rows: {written(company)} after {rows}")
        check_billed("after the re-run", company, n)
        record.refresh_from_db()
        check((record.created, record.skipped) == (0, n), f"the re-run's record: {record.created} created")
        print(f"  re-run   {n:>9,} invoices in {repeated.seconds:7.2f} s, nothing created")
        for worker in workers:
            errors = [line for line in worker.output().splitlines() if "ERROR" in line or "Traceback" in line]
            check(not errors, f"worker output has errors: {errors[:3]}")
    finally:
        for worker in workers:
            worker.stop()

    naive_seconds = naive(sampled)
    check_billed("naive", sampled, args.sample)
    print(f"  naive    {args.sample:>9,} invoices in {naive_seconds:7.2f} s (a sample)")

    report(n, platform, repeated, naive_seconds, args.sample, floor_seconds, rows, judged=not args.smoke)


if __name__ == "__main__":
    main()
