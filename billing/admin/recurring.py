"""Billing admin: recurring."""
