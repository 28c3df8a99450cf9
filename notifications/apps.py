from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """Messages to people — in-app, email, webhook — with templates, dedupe and retried delivery.

    Generic: it knows nothing of the domain (floor 1).
    """

    name = "notifications"
