from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from billing.management.runs import add_run_arguments, companies, run_period
from billing.services import periods
from config.commands import database_ready

MAX_PERIODS = 600  # fifty years of months; a typo in a year should not start a century of runs


class Command(BaseCommand):
    help = (
        "Bill every period from --from to --to (inclusive), oldest first, as generate_invoices does for "
        "one: periods already billed are skipped, so an interrupted backfill is finished by running it again."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--from", dest="first", required=True, help="the first period, e.g. 2025-09")
        parser.add_argument("--to", dest="last", required=True, help="the last period, e.g. 2026-01")
        add_run_arguments(parser)

    def handle(self, *args, **options) -> None:
        cadence = options["cadence"]
        try:
            first = periods.parse_period(cadence, options["first"])
            last = periods.parse_period(cadence, options["last"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if last < first:
            raise CommandError(f"--to {options['last']} is before --from {options['first']}")
        starts = periods.periods_between(cadence, first, last)
        if len(starts) > MAX_PERIODS:
            raise CommandError(f"{len(starts)} periods is more than {MAX_PERIODS}; backfill in parts")
        with database_ready():
            targets = companies(options["company"])
            for start in starts:
                for company in targets:
                    run_period(self, company, start, options)
