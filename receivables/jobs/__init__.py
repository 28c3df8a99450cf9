"""Receivables' jobs, one module per family; importing this package registers them all."""

from receivables.jobs import reports

__all__ = ["reports"]
