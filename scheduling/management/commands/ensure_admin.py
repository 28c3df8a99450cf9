from django.core.management.base import BaseCommand

from scheduling.credentials import ensure_admin


class Command(BaseCommand):
    help = "Create the superuser named by ADMIN_USERNAME (password from ADMIN_PASSWORD or generated)."

    def handle(self, *args, **options) -> None:
        username, password, outcome = ensure_admin()
        self.stdout.write(f"admin user {username!r} {outcome}; password: {password}")
