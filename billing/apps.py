from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Customers, invoices, payments and credit notes; invoice runs, overdue checks, dunning.

    Posts to the ledger (floor 3); never imports receivables.
    """

    name = "billing"

    def ready(self) -> None:
        from billing import kinds
        from billing.services.subledger import open_items_by_party
        from ledger import subledgers
        from ledger.models import AccountRole

        kinds.register()
        subledgers.register(AccountRole.RECEIVABLES, "billing open items", open_items_by_party)
