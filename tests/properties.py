"""What the ledger's property tests share: hypothesis settings and a clean slate per example."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

from django.db import transaction
from hypothesis import HealthCheck, settings


def properties(max_examples: int) -> settings:
    """Reproducible runs (derandomized, no example database). Each example runs inside
    ``clean_slate``, so sharing function-scoped fixtures between examples is safe."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        database=None,
        derandomize=True,
    )


@contextmanager
def clean_slate() -> Iterator[None]:
    """One hypothesis example: whatever it writes is rolled back when it ends."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def money(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)
