import json

from django.core.management.base import BaseCommand, CommandError

from scheduling.health import CHECKS, check_health


class Command(BaseCommand):
    help = "Check database, broker, cache, workers and beat; exit 1 when a critical check fails."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument(
            "--require",
            default="",
            help="comma-separated checks that must pass as well as the critical ones (e.g. beat,workers)",
        )

    def handle(self, *args, **options) -> None:
        required = [name.strip() for name in options["require"].split(",") if name.strip()]
        unknown = sorted(set(required) - set(CHECKS))
        if unknown:
            raise CommandError(f"--require names unknown checks {', '.join(unknown)}; choose from {', '.join(CHECKS)}")
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
        failed = [c.name for c in report.checks if c.name in required and not c.ok]
        if failed:
            raise CommandError(f"required check failing: {', '.join(failed)}")
