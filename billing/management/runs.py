"""What the invoice-run commands share: their options, the companies they bill and one
period's run with its progress bar and report line."""

from __future__ import annotations

import datetime

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError

from billing.models import Cadence, InvoiceRun
from billing.services import books, invoicing, periods
from config.commands import ProgressBar
from config.companies import company_lookup
from ledger.models import Company


def add_run_arguments(parser) -> None:
    parser.add_argument("--cadence", default=Cadence.MONTHLY, choices=Cadence.values, help="default: monthly")
    parser.add_argument("--company", help="company slug or id (default: every company)")
    parser.add_argument("--no-consolidate", action="store_true", help="one invoice per enrolment")
    parser.add_argument(
        "--draft", action="store_true", help="leave the invoices as drafts (no number, posting or notice)"
    )
    parser.add_argument("--dry-run", action="store_true", help="print what would be created; write nothing")
    parser.add_argument("--chunk-size", type=int, default=invoicing.CHUNK_CUSTOMERS, help="customers per transaction")


def companies(key: str | None) -> list[Company]:
    if key is None:
        found = list(Company.objects.order_by("slug"))
        if not found:
            raise CommandError("there are no companies")
        return found
    company = Company.objects.filter(**company_lookup(key)).first()
    if company is None:
        raise CommandError(f"no company {key!r}")
    return [company]


def run_period(command: BaseCommand, company: Company, start: datetime.date, options: dict) -> invoicing.Outcome:
    """Bill one company's period, print one line about it and return the outcome."""
    if options["chunk_size"] < 1:
        raise CommandError("--chunk-size must be at least 1")
    cadence, dry_run = options["cadence"], options["dry_run"]
    spec = invoicing.RunSpec.for_period(
        company, cadence, start, consolidate=not options["no_consolidate"], finalise=not options["draft"]
    )
    name = f"{company.slug} {periods.key(cadence, start)} {cadence}"
    bar = ProgressBar(command.stderr, name)
    record = None
    if not dry_run:
        record = InvoiceRun.objects.create(
            company=company,
            cadence=cadence,
            period_start=spec.period_start,
            period_end=spec.period_end,
            issue_date=spec.issue_date,
            consolidate=spec.consolidate,
            finalise=spec.finalise,
        )
    done = invoicing.Outcome()
    ranges = list(invoicing.customer_ranges(company, options["chunk_size"]))
    try:
        for finished, (first, last) in enumerate(ranges, start=1):
            outcome = invoicing.bill_range(spec, first, last, dry_run=dry_run)
            if record is not None:
                invoicing.record(record, outcome)
            done.add(outcome)
            bar(finished, len(ranges))
    except ValidationError as exc:
        bar.done()
        raise CommandError(f"{name}: refused after {done.created} invoices: {_reasons(exc)}") from None
    except IntegrityError:
        bar.done()
        raise CommandError(
            f"{name}: another run billed some of the same enrolments at the same moment; run again to finish "
            f"({done.created} invoices created)"
        ) from None
    bar.done()
    command.stdout.write(_line(name, done, company.base_currency, "would create" if dry_run else "created", dry_run))
    return done


def period_line(record: InvoiceRun, verb: str) -> str:
    """One line on a period's run, from its record: what the commands print."""
    name = f"{record.company.slug} {periods.key(record.cadence, record.period_start)} {record.cadence}"
    return _line(name, record, record.company.base_currency, verb, dry_run=False)


def _line(name: str, done, currency: str, verb: str, dry_run: bool) -> str:
    total = books.quantize(done.total, currency)
    return (
        f"{name}: {verb} {done.created} invoices for {done.enrolments} enrolments "
        f"({currency} {total}), skipped {done.skipped} already there"
        + ("" if dry_run else f", notified {done.notified}")
    )


def _reasons(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items())
    return " ".join(exc.messages)
