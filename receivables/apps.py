from django.apps import AppConfig


class ReceivablesConfig(AppConfig):
    """Aged receivables across the company's own books, Xero and files; Excel reports;
    statements and credit limit checks.

    Reads billing and Xero (floor 4); posts nothing.
    """

    name = "receivables"

    def ready(self) -> None:
        from receivables import kinds

        kinds.register()
