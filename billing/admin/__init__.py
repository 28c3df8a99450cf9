"""Billing's admin, one module per area; importing this package registers them all."""

from billing.admin import customers, dunning, invoices, payments, recurring

__all__ = ["customers", "dunning", "invoices", "payments", "recurring"]
