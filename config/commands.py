"""What management commands share."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management.base import CommandError
from django.db import DatabaseError


@contextmanager
def database_ready() -> Iterator[None]:
    """A database error (tables missing, server down) ends the command with one line that
    says what to do, not a traceback."""
    try:
        yield
    except DatabaseError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CommandError(f"the database is not ready ({first_line}); run manage.py migrate") from exc
