"""Receivables' jobs, one module per family; importing this package registers them all."""

from receivables.jobs import ledger, reports

__all__ = ["ledger", "reports"]
