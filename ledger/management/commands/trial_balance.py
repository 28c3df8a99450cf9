import datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from config.commands import database_ready
from ledger.models import Company
from ledger.services import balances, export
from ledger.services.periods import EARLIEST, LATEST


class Command(BaseCommand):
    help = (
        "A company's trial balance: each account's opening balance, debits, credits and closing balance over a "
        "range, with totals. --to defaults to the company's today and --from to the start of the fiscal year that "
        "contains --to. JSON and CSV go to stdout unless --output is given; xlsx goes to --output, or to stdout "
        "when stdout is a file or a pipe (never a terminal)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--company", required=True, metavar="SLUG", help="the company's slug")
        parser.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="first day of the range")
        parser.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="last day of the range")
        parser.add_argument("--format", choices=export.FORMATS, default="json", help="json (default), csv or xlsx")
        parser.add_argument("--output", metavar="FILE", help="write to this file instead of stdout")

    def handle(self, *args, **options) -> None:
        with database_ready():
            self._handle(options)

    def _handle(self, options: dict) -> None:
        fmt, output = options["format"], options["output"]
        if fmt == "xlsx" and not output and (not hasattr(self.stdout, "buffer") or self.stdout.isatty()):
            raise CommandError("xlsx is a binary file: give --output FILE or redirect stdout to a file")
        date_to = _date(options["date_to"], "--to")
        date_from = _date(options["date_from"], "--from")
        company = Company.objects.filter(slug=options["company"]).first()
        if company is None:
            raise CommandError(f"no company {options['company']!r}")
        date_to = date_to or company.today()
        date_from = date_from or company.fiscal_year_containing(date_to)[0]
        if date_from > date_to:
            raise CommandError(f"--from {date_from} is after --to {date_to}")
        tb = balances.trial_balance(company, date_from, date_to)
        rendered = export.render(tb, fmt)
        if output:
            try:
                Path(output).write_bytes(rendered.content)
            except OSError as exc:
                raise CommandError(f"cannot write {output}: {exc.strerror or exc}") from exc
            verdict = "balanced" if tb.balanced else "NOT balanced"
            self.stdout.write(
                f"{output}: trial balance of {company.slug} from {date_from} to {date_to}, "
                f"{len(tb.rows)} accounts, {verdict}"
            )
        elif fmt == "xlsx":
            self.stdout.flush()
            self.stdout.buffer.write(rendered.content)
            self.stdout.buffer.flush()
        else:
            self.stdout.write(rendered.content.decode())


def _date(text: str | None, option: str) -> datetime.date | None:
    if not text:
        return None
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{option} {text!r} must be YYYY-MM-DD") from None
    if not EARLIEST <= day <= LATEST:
        raise CommandError(f"{option} {day} must fall between {EARLIEST} and {LATEST}")
    return day
