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


class ProgressBar:
    """A progress bar on a terminal (``[#####     ] 5/10 label``, redrawn in place); on
    anything else, nothing until ``done`` prints the last state once, so logs stay clean."""

    WIDTH = 30

    def __init__(self, stream, label: str = "") -> None:
        self.stream = stream
        self.label = label
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.last = (0, 0)

    def __call__(self, done: int, total: int) -> None:
        self.last = (done, total)
        if self.tty:
            self.stream.write("\r" + self._line(done, total))
            self.stream.flush()

    def done(self) -> None:
        done, total = self.last
        if total:
            self.stream.write(("\r" if self.tty else "") + self._line(done, total) + "\n")

    def _line(self, done: int, total: int) -> str:
        filled = self.WIDTH * done // total if total else self.WIDTH
        return f"[{'#' * filled}{' ' * (self.WIDTH - filled)}] {done}/{total} {self.label}".rstrip()
