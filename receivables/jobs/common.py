"""What receivables' jobs share: the queue, and retrying only what can pass."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import DataError

from scheduling.registry import RetryPolicy

QUEUE = "receivables"

# Bad data or a bug fails at once and alerts; a lost connection or a lock timeout is retried.
RECEIVABLES_RETRY = RetryPolicy(
    max_retries=3,
    backoff_base=10,
    backoff_cap=600,
    non_retryable=(ValidationError, DataError, ArithmeticError, LookupError, TypeError, ValueError, AttributeError),
)
