"""Billing's two kinds of refusal, as the ledger's: bad input (400 with fields, a job fails
without retry) and a state that does not allow it now (409)."""

from __future__ import annotations

from django.core.exceptions import ValidationError


class BillingError(ValidationError):
    """Refused whole; ``message_dict`` names the fields at fault."""


class BillingStateError(Exception):
    """The document's state does not allow this (a paid invoice voided, a draft allocated)."""
