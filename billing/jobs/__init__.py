"""Billing's jobs, one module per family; importing this package registers them all."""

from billing.jobs import invoicing, overdue, recurring

__all__ = ["invoicing", "overdue", "recurring"]
