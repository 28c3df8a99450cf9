"""Receivables' admin, one module per area; importing this package registers them all."""

from receivables.admin import reports, statements, xero

__all__ = ["reports", "statements", "xero"]
