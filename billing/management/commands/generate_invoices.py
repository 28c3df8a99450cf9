from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from billing.management.runs import add_run_arguments, companies, run_period
from billing.services import periods
from config.commands import database_ready


class Command(BaseCommand):
    help = (
        "Bill one period's enrolments of a cadence, for one company or all: one invoice per customer "
        "(or per enrolment with --no-consolidate), numbered, posted and notified. Safe to re-run: what "
        "exists is skipped. --dry-run prints what would be created and writes nothing."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--period", required=True, help="2026-01 (monthly), 2026-W03, 2026-Q1 or 2026")
        add_run_arguments(parser)

    def handle(self, *args, **options) -> None:
        try:
            start = periods.parse_period(options["cadence"], options["period"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        with database_ready():
            for company in companies(options["company"]):
                run_period(self, company, start, options)
