from django.core.management.base import BaseCommand, CommandError

from config.commands import database_ready
from ledger.models import Company
from ledger.services.chart import load_default_chart


class Command(BaseCommand):
    help = (
        "Load the default chart of accounts into companies. Accounts a company already has (by code) are left "
        "as they are, so it is safe to run again."
    )

    def add_arguments(self, parser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--company", action="append", metavar="SLUG", help="a company's slug; repeat for several")
        which.add_argument("--all", action="store_true", help="every company")

    def handle(self, *args, **options) -> None:
        with database_ready():
            self._handle(options)

    def _handle(self, options: dict) -> None:
        if options["all"]:
            companies = list(Company.objects.order_by("slug"))
            if not companies:
                self.stdout.write("no companies yet")
        else:
            slugs = list(dict.fromkeys(options["company"]))
            found = {company.slug: company for company in Company.objects.filter(slug__in=slugs)}
            missing = [slug for slug in slugs if slug not in found]
            if missing:
                raise CommandError(f"no company {', '.join(map(repr, missing))}")
            companies = [found[slug] for slug in slugs]
        for company in companies:
            loaded = load_default_chart(company)
            self.stdout.write(f"{company.slug}: {loaded.created} accounts created, {loaded.existing} already there")
