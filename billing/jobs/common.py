"""What billing's jobs share: the queue, and retrying only what can pass."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import DataError

from billing.errors import BillingStateError
from ledger.errors import LedgerStateError
from scheduling.registry import RetryPolicy

# A refused posting (closed period, missing account), bad data or a bug fails at once and
# alerts. An IntegrityError is retried: it is how a chunk learns that a concurrent run
# billed some of its enrolments first, and the retry finds them billed.
BILLING_RETRY = RetryPolicy(
    max_retries=3,
    backoff_base=10,
    backoff_cap=600,
    non_retryable=(
        ValidationError,
        BillingStateError,
        LedgerStateError,
        DataError,
        ArithmeticError,
        LookupError,
        TypeError,
        ValueError,
        AttributeError,
    ),
)
QUEUE = "billing"
