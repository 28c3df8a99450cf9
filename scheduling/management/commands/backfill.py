from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from config.commands import database_ready
from scheduling.cli import add_backfill_arguments, describe, find_company, finish, parse_param, run_backfill
from scheduling.models import JobDefinition


class Command(BaseCommand):
    help = (
        "Make the runs of every slot of a job's schedule from --from to --to (inclusive dates) that has none, "
        "oldest first, each after the one before; succeeded slots are never touched, failed ones re-run only with "
        "--rerun-failed. --wait follows them to the end; --inline executes them here instead of on workers."
    )

    def add_arguments(self, parser) -> None:
        add_backfill_arguments(parser)
        parser.add_argument("code", help="job code, e.g. GL_DAILY_CLOSE")
        parser.add_argument("--company", help="company slug or id (default: every company, for a per-company job)")
        parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="a job parameter")

    def handle(self, *args, code: str, **options) -> None:
        with database_ready():
            definition = JobDefinition.objects.filter(code=code.upper()).first()
            if definition is None:
                known = ", ".join(JobDefinition.objects.registered().values_list("code", flat=True))
                raise CommandError(f"no job {code}; known jobs: {known}")
            params = dict(parse_param(text) for text in options["param"])
            made = run_backfill(self, definition, options, company=find_company(options["company"]), params=params)
            for run in made:
                self.stdout.write(describe(run))
            finish(made, options)
