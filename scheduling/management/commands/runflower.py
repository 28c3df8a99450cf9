import os
import sys

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from config import env
from scheduling.credentials import flower_basic_auth


class Command(BaseCommand):
    help = "Start Flower with basic auth (FLOWER_BASIC_AUTH, required in distributed mode) and a bounded history."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--address", default="0.0.0.0")
        parser.add_argument("--port", type=int, default=None, help="default FLOWER_PORT or 5555")

    def handle(self, *args, **options) -> None:
        try:
            auth, _ = flower_basic_auth()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        port = options["port"] or env.integer("FLOWER_PORT", 5555, minimum=1)
        # Flower reads FLOWER_* from its environment: the password stays out of `ps`.
        os.environ["FLOWER_BASIC_AUTH"] = auth
        os.environ["FLOWER_MAX_TASKS"] = str(env.integer("FLOWER_MAX_TASKS", 10000, minimum=1))
        os.environ["FLOWER_PERSISTENT"] = "False"
        argv = [sys.executable, "-m", "celery", "-A", "config", "flower"]
        os.execv(sys.executable, [*argv, f"--address={options['address']}", f"--port={port}"])
