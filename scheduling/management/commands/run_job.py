import datetime
import json
import time

from django.core.management.base import BaseCommand, CommandError
from rest_framework.utils.encoders import JSONEncoder

from config.commands import database_ready
from scheduling.api.jobs import RunDetailSerializer
from scheduling.choices import RunStatus, Trigger
from scheduling.cli import find_company, parse_param, wait_for_run, why_stopped
from scheduling.models import JobDefinition, JobRun
from scheduling.registry import ParamError
from scheduling.services import execution, runs


class Command(BaseCommand):
    help = (
        "Ask for a run of a job (today's slot unless --date) and print its summary. With --wait, wait for it "
        "to finish and exit non-zero unless it succeeded; --inline executes it in this process instead of a worker."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("code", help="job code, e.g. SYS_HEALTH_CHECK")
        parser.add_argument("--date", help="the slot's business date, YYYY-MM-DD")
        parser.add_argument("--company", help="company slug (or id), for jobs that run per company")
        parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="a job parameter")
        parser.add_argument("--wait", action="store_true", help="wait until the run finishes")
        parser.add_argument("--timeout", type=float, default=3600, help="seconds --wait waits (default 3600)")
        parser.add_argument("--inline", action="store_true", help="execute here, not on a worker (implies --wait)")
        parser.add_argument("--rerun", action="store_true", help="run the slot again if its run already finished")
        parser.add_argument("--json", action="store_true", help="print the run as JSON")

    def handle(self, *args, code: str, **options) -> None:
        with database_ready():
            self._handle(code, options)

    def _handle(self, code: str, options: dict) -> None:
        definition = JobDefinition.objects.filter(code=code.upper()).first()
        if definition is None:
            known = ", ".join(JobDefinition.objects.registered().values_list("code", flat=True))
            raise CommandError(f"no job {code}; known jobs: {known}")
        params = dict(parse_param(text) for text in options["param"])
        try:
            run, created = runs.request_run(
                definition,
                business_date=self._date(options["date"]),
                company=find_company(options["company"]),
                params=params,
                trigger=Trigger.MANUAL,
            )
            if not created and options["rerun"] and run.status in runs.RERUNNABLE:
                run = runs.rerun(run)
        except ParamError as exc:
            raise CommandError(f"invalid parameters: {exc}") from exc
        except runs.RunError as exc:
            raise CommandError(str(exc)) from exc
        if not created and not options["rerun"]:
            self.stderr.write(f"run {run.pk} for {run.run_key} already exists ({run.status}); --rerun runs it again")
        if options["inline"]:
            run = execution.run_here(run)
        elif options["wait"]:
            run = wait_for_run(self, run, time.monotonic() + options["timeout"], options["timeout"])
        self._print(run, options["json"])
        if (options["wait"] or options["inline"]) and run.status != RunStatus.SUCCEEDED:
            why = why_stopped(run)
            raise CommandError(f"run {run.pk} {run.status}" + (f": {why}" if why else ""))

    def _date(self, text: str | None) -> datetime.date | None:
        if not text:
            return None
        try:
            return datetime.date.fromisoformat(text)
        except ValueError:
            raise CommandError(f"--date {text!r} must be YYYY-MM-DD") from None

    def _print(self, run: JobRun, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(RunDetailSerializer(run).data, cls=JSONEncoder, indent=2))
            return
        took = f" in {run.duration:.2f}s" if run.duration is not None else ""
        counts = ", ".join(f"{name} {getattr(run, name)}" for name in execution.COUNTERS)
        self.stdout.write(f"run {run.pk} {run.job.code} {run.run_key}: {run.status}{took} ({counts})")
        if run.error:
            self.stdout.write(f"error: {run.error}")
