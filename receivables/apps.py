from django.apps import AppConfig


class ReceivablesConfig(AppConfig):
    """Aged receivables across the company's own books, Xero and files; Excel reports.

    Reads billing and Xero (floor 4); posts nothing.
    """

    name = "receivables"
