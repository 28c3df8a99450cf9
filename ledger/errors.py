"""The ledger's two kinds of refusal."""

from __future__ import annotations

from django.core.exceptions import ValidationError


class PostingError(ValidationError):
    """A posting or draft is refused whole; ``message_dict`` names the fields at fault.
    A ValidationError, so the API answers 400 with the fields and jobs fail without retry."""


class LedgerStateError(Exception):
    """The books' state does not allow this now (drafts left in a period, an earlier period
    still open, a year not ready to close). The API answers 409."""
