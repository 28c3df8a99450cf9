"""Billing admin: payments."""
