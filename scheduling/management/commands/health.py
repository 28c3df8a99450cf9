import json

from django.core.management.base import BaseCommand, CommandError

from scheduling.health import check_health


class Command(BaseCommand):
    help = "Check database, broker, cache, workers and beat; exit 1 when a critical check fails."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, **options) -> None:
        report = check_health()
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            for check in report.checks:
                mark = "ok" if check.ok else ("FAILING" if check.critical else "failing")
                self.stdout.write(f"{check.name:<9} {mark:<8} {check.latency_ms:>8.1f} ms  {check.detail}")
            self.stdout.write(f"status: {report.status}")
        if report.status == "failing":
            raise CommandError("a critical check is failing")
