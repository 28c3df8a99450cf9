from django.core.management.base import BaseCommand

from scheduling.credentials import admin_password_hint, ensure_admin


class Command(BaseCommand):
    help = "Create the superuser named by ADMIN_USERNAME (password from ADMIN_PASSWORD or generated)."

    def handle(self, *args, **options) -> None:
        username, outcome, generated = ensure_admin()
        self.stdout.write(f"admin user {username!r} {outcome}; password: {generated or admin_password_hint()}")
