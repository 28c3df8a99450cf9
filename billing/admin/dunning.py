"""Billing admin: dunning."""
