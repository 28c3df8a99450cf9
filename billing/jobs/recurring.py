"""Recurring templates (seed 001): RECURRING_GENERATE."""
