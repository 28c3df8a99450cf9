"""Receivables' jobs, one module per family; importing this package registers them all."""

from receivables.jobs import ledger, reports, xero

__all__ = ["ledger", "reports", "xero"]
