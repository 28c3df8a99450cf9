from importlib import import_module

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction


class Command(BaseCommand):
    help = "Load the small demo data set; each app contributes through its demo.load(). Safe to re-run."

    def handle(self, *args, **options) -> None:
        # Apps are visited in INSTALLED_APPS order, which follows the floors, so an app's
        # demo data can build on what the apps below it loaded.
        with transaction.atomic():
            for config in apps.get_app_configs():
                try:
                    module = import_module(f"{config.name}.demo")
                except ModuleNotFoundError as exc:
                    if exc.name != f"{config.name}.demo":
                        raise
                    continue
                for line in module.load():
                    self.stdout.write(f"{config.label}: {line}")
