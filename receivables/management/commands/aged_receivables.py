from __future__ import annotations

import datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from config.commands import database_ready
from ledger.models import Company
from receivables import engine
from receivables.models import XeroApp, XeroConnection
from receivables.services import reports
from receivables.sources import files

FORMATS = ("json", "csv", "xlsx")


class Command(BaseCommand):
    help = (
        "Write an aged receivables report as of a date: from billing's books (--source db, with the "
        "reconciliation to the receivables control account), the synced Xero organisations (--source xero) "
        "or a file in the interchange format (--source file:PATH), as JSON, CSV or Excel."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--as-of", required=True, help="the report date, YYYY-MM-DD")
        parser.add_argument("--periods", type=int, default=4, help="aging periods before Older (default 4)")
        parser.add_argument("--period-type", choices=engine.PERIOD_TYPES, default="month")
        parser.add_argument("--period-length", type=int, help="days or weeks a period (30 days, 1 week by default)")
        parser.add_argument("--age-by", choices=engine.AGE_BY, default="due", help="due date (default) or invoice date")
        parser.add_argument(
            "--credit-aging",
            choices=engine.CREDIT_AGING,
            default="current",
            help="unallocated credit in Current or by its date",
        )
        parser.add_argument("--source", default="db", help="db, xero or file:PATH")
        parser.add_argument("--company", help="a company's slug (db: its books; xero: its connections)")
        parser.add_argument("--app", help="xero: only this Xero app's connections")
        parser.add_argument("--format", choices=FORMATS, default="json")
        parser.add_argument("--out", required=True, help="where to write the report; - for standard output")
        parser.add_argument("--no-cache", action="store_true", help="age everything again")

    def handle(self, *args, **options) -> None:
        try:
            as_of = datetime.date.fromisoformat(options["as_of"])
        except ValueError:
            raise CommandError(f"--as-of must be a date YYYY-MM-DD, not {options['as_of']!r}") from None
        if options["format"] == "xlsx" and options["out"] == "-":
            raise CommandError("an Excel report needs --out PATH")
        length = options["period_length"]
        if length is None:
            length = engine.default_period_length(options["period_type"])
        if options["period_type"] == "month" and options["period_length"] not in (None, 1):
            raise CommandError("--period-length does not apply to months (calendar months)")
        errors = engine.option_errors(
            options["periods"], options["period_type"], length, options["age_by"], options["credit_aging"]
        )
        if errors:
            name, message = next(iter(errors.items()))
            raise CommandError(f"--{name.replace('_', '-')} {message}")
        chosen = engine.Options(
            as_of, options["periods"], options["period_type"], length, options["age_by"], options["credit_aging"]
        )
        with database_ready():
            parts, failures = self._parts(options)
            built = reports.build(parts, chosen, use_cache=not options["no_cache"])
            built.failures = failures + built.failures
            output = reports.render(built, options["format"])
        self._write(output, options["out"])
        self._summary(built, options["out"])

    def _parts(self, options: dict) -> tuple[list[reports.Part], list[dict]]:
        source, company = options["source"], None
        if options["company"]:
            company = Company.objects.filter(slug=options["company"]).first()
            if company is None:
                raise CommandError(f"no company {options['company']!r}")
        if source == "db":
            if options["app"]:
                raise CommandError("--app is for --source xero")
            companies = [company] if company else list(Company.objects.order_by("name", "pk"))
            if not companies:
                raise CommandError("there is no company to report on")
            return reports.parts_for_books(companies), []
        if source == "xero":
            connections = XeroConnection.objects.active().select_related("app")
            if options["app"]:
                if not XeroApp.objects.filter(name=options["app"]).exists():
                    raise CommandError(f"no Xero app {options['app']!r}")
                connections = connections.filter(app__name=options["app"])
            if company is not None:
                connections = connections.filter(company=company)
            connections = list(connections.order_by("tenant_name", "pk"))
            if not connections:
                raise CommandError("no active Xero connection to report on")
            return reports.parts_for_connections(connections), reports.stale_connections(connections)
        if source.startswith("file:"):
            if company is not None or options["app"]:
                raise CommandError("--company and --app are for --source db or xero; a file names its own companies")
            path = Path(source.removeprefix("file:"))
            try:
                with path.open("rb") as stream:
                    parsed = files.read(stream, name=path.name)
            except OSError as exc:
                raise CommandError(f"cannot read {path}: {exc.strerror}") from None
            except files.FileError as exc:
                raise CommandError(f"{path}: {exc}") from None
            return reports.part_for_file(parsed, path.name), []
        raise CommandError(f"--source must be db, xero or file:PATH, not {source!r}")

    def _write(self, output: bytes, out: str) -> None:
        if out == "-":
            self.stdout.write(output.decode(), ending="")
            return
        try:
            Path(out).write_bytes(output)
        except OSError as exc:
            raise CommandError(f"cannot write {out}: {exc.strerror}") from None

    def _summary(self, built: reports.Built, out: str) -> None:
        stream = self.stderr if out == "-" else self.stdout
        report = built.report
        stream.write(f"aged receivables as of {report.options.as_of}: {len(report.rows)} contact rows")
        for total in report.totals:
            stream.write(f"  {total.company} {total.currency}: {engine.money(total.total)}")
        for line in built.reconciliation:
            if line["control_balance"] is None:
                stream.write(f"  {line['company']} has no receivables control account to reconcile to")
                continue
            state = "reconciled" if line["reconciled"] else f"differs by {line['difference']}"
            stream.write(f"  control account of {line['company']}: {line['control_balance']} ({state})")
        for failure in built.failures:
            stream.write(f"  left out or stale: {failure.get('tenant')}: {failure['error']}")
        if out != "-":
            stream.write(f"written to {out}")
