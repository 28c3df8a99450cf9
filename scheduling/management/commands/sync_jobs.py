from django.core.management.base import BaseCommand

from scheduling.services.sync import sync_jobs


class Command(BaseCommand):
    help = (
        "Copy the jobs declared in every app's jobs.py into job definitions and create their default "
        "schedules once. Admin edits win over later declarations. migrate runs this too."
    )

    def handle(self, *args, **options) -> None:
        lines = sync_jobs().lines()
        for line in lines or ["job definitions are up to date"]:
            self.stdout.write(line)
