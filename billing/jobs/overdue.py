"""Overdue check and dunning: BILLING_OVERDUE_CHECK and SL_OVERDUE_REMINDERS."""
