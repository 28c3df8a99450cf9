from django.apps import AppConfig
from django.db.models.signals import post_migrate


class SchedulingConfig(AppConfig):
    """The job layer: beat, runs, health. Knows nothing of the domain."""

    name = "scheduling"

    def ready(self) -> None:
        from django.utils.module_loading import autodiscover_modules

        # Every app's jobs.py declares its jobs; importing them fills the registry.
        autodiscover_modules("jobs")
        from importlib import import_module

        from django.conf import settings

        for module in settings.JOB_MODULES:
            import_module(module)
        post_migrate.connect(sync_after_migrate, sender=self)


def sync_after_migrate(sender, using: str = "default", verbosity: int = 1, **kwargs) -> None:
    """``migrate`` leaves the job definitions in step with the code."""
    from scheduling.services.sync import sync_jobs

    report = sync_jobs()
    if verbosity >= 2:
        for line in report.lines():
            print(f"  sync_jobs: {line}")  # noqa: T201 — migrate's own output
