from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Customers, invoices, payments and credit notes; invoice runs, overdue checks, dunning.

    Posts to the ledger (floor 3); never imports receivables.
    """

    name = "billing"
