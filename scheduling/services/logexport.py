"""Job log lines out as CSV, JSON or plain text, for the admin and the API alike.

``export`` streams: it reads the queryset with ``.iterator()`` (a server-side cursor on
PostgreSQL, never OFFSET pages), so exporting a million lines holds one chunk in memory.
Callers wrap the chunks in a ``StreamingHttpResponse``:

    chunks, content_type, ext = logexport.export(logs, "csv")
    response = StreamingHttpResponse(chunks, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="job-logs.{ext}"'
"""

from __future__ import annotations

import csv
import datetime
import json
from collections.abc import Iterator
from typing import NamedTuple

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet
from django.http import StreamingHttpResponse

from scheduling.choices import Level
from scheduling.models import JobLog

CHUNK_SIZE = 2000  # rows fetched per round trip
COLUMNS = ("at", "run_id", "job", "run_key", "attempt", "level", "message", "data")
FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "txt": "text/plain; charset=utf-8",
}


class Export(NamedTuple):
    chunks: Iterator[bytes]
    content_type: str
    extension: str


def export(queryset: QuerySet[JobLog], fmt: str) -> Export:
    """The lines of ``queryset`` (in its order) as ``fmt``: "csv", "json" or "txt".

    Every format carries the same columns: ``at`` (ISO 8601, UTC), run id, job code,
    run key, attempt, level name, message and data (JSON). Raises ValueError for another
    format before anything is read, so a caller can answer 400 instead of a broken stream.
    """
    if fmt not in FORMATS:
        raise ValueError("format must be csv, json or txt")
    rows = queryset.select_related("run__job").iterator(chunk_size=CHUNK_SIZE)
    writer = {"csv": _csv, "json": _json, "txt": _txt}[fmt]
    return Export(writer(rows), FORMATS[fmt], fmt)


def download(queryset: QuerySet[JobLog], fmt: str, filename: str) -> StreamingHttpResponse:
    """``export`` as a streamed attachment named ``filename.<ext>``; ValueError for a bad format."""
    chunks, content_type, extension = export(queryset, fmt)
    response = StreamingHttpResponse(chunks, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}.{extension}"'
    return response


def row(log: JobLog) -> dict:
    """One line as plain JSON-able values, in COLUMNS order."""
    return {
        "at": log.at.astimezone(datetime.UTC).isoformat(),
        "run_id": log.run_id,
        "job": log.run.job.code,
        "run_key": log.run.run_key,
        "attempt": log.attempt,
        "level": _level_name(log.level),
        "message": log.message,
        "data": log.data,
    }


def _level_name(level: int) -> str:
    try:
        return Level(level).name
    except ValueError:
        return str(level)


def _dumps(value) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False, sort_keys=True)


class _Line:
    """A file-like object that hands back what csv.writer writes, one line at a time."""

    def write(self, value: str) -> str:
        return value


def _csv(logs: Iterator[JobLog]) -> Iterator[bytes]:
    writer = csv.writer(_Line())
    yield writer.writerow(COLUMNS).encode()
    for log in logs:
        values = row(log)
        values["data"] = _dumps(values["data"])
        yield writer.writerow(values.values()).encode()


def _json(logs: Iterator[JobLog]) -> Iterator[bytes]:
    # One array, written line by line: valid JSON however long, and never whole in memory.
    yield b"["
    separator = "\n"
    for log in logs:
        yield (separator + _dumps(row(log))).encode()
        separator = ",\n"
    yield b"\n]\n"


def _txt(logs: Iterator[JobLog]) -> Iterator[bytes]:
    for log in logs:
        values = row(log)
        line = (
            f"{values['at']} [{values['level']}] {values['job']} {values['run_key']} "
            f"#{values['run_id']} a{values['attempt']}: {values['message']}"
        )
        if values["data"]:
            line += f" {_dumps(values['data'])}"
        yield (line + "\n").encode()
