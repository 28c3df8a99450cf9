from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from billing.jobs.invoicing import JOBS
from billing.management.runs import companies, period_line
from billing.models import Cadence, InvoiceRun
from billing.services import invoicing, periods
from config.commands import database_ready
from scheduling.choices import RunStatus
from scheduling.cli import add_backfill_arguments, describe, finish, run_backfill
from scheduling.models import JobDefinition


class Command(BaseCommand):
    help = (
        "Backfill a cadence's invoice runs from --from to --to (periods, inclusive): the runs of its "
        "BILLING_<CADENCE>_INVOICES job for every period that has none, oldest first, as `manage.py backfill` "
        "makes them. Periods already billed are not billed again; a backfill notifies no customer. "
        "--inline bills them here; --wait follows workers doing it."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--from", dest="first", required=True, help="the first period, e.g. 2025-09")
        parser.add_argument("--to", dest="last", required=True, help="the last period, e.g. 2026-01")
        parser.add_argument("--cadence", default=Cadence.MONTHLY, choices=Cadence.values, help="default: monthly")
        parser.add_argument("--company", help="company slug or id (default: every company)")
        parser.add_argument("--no-consolidate", action="store_true", help="one invoice per enrolment")
        parser.add_argument("--draft", action="store_true", help="leave the invoices as drafts")
        parser.add_argument("--chunk-size", type=int, default=invoicing.CHUNK_CUSTOMERS, help="customers per chunk")
        add_backfill_arguments(parser, dates=False)

    def handle(self, *args, **options) -> None:
        cadence = options["cadence"]
        try:
            first = periods.parse_period(cadence, options["first"])
            last = periods.parse_period(cadence, options["last"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if last < first:
            raise CommandError(f"--to {options['last']} is before --from {options['first']}")
        with database_ready():
            targets = companies(options["company"])
            definition = JobDefinition.objects.get(code=JOBS[cadence])
            params = {
                "consolidate": not options["no_consolidate"],
                "finalise": not options["draft"],
                "chunk_size": options["chunk_size"],
            }
            company = targets[0] if options["company"] else None
            made = run_backfill(self, definition, options, company=company, params=params, first=first, last=last)
            records = {record.job_run_id: record for record in InvoiceRun.objects.filter(job_run__in=made)}
            for run in made:
                record = records.get(run.pk)
                finished = run.status == RunStatus.SUCCEEDED and record is not None
                self.stdout.write(period_line(record, "created") if finished else describe(run))
            finish(made, options)
