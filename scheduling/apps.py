from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    """The job layer: beat, runs, health. Knows nothing of the domain."""

    name = "scheduling"
