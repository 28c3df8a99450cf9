from django.apps import AppConfig


class LedgerConfig(AppConfig):
    """Companies and their books: chart of accounts, periods, double-entry journals."""

    name = "ledger"
