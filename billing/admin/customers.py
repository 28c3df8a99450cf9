"""Billing admin: customers."""
