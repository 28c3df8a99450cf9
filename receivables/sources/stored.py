"""Documents kept in receivables' own tables (synced from a Xero connection or imported
from a file) as the engine's documents."""

from __future__ import annotations

import datetime

from receivables import engine
from receivables.models import Allocation, Document

CHUNK = 10_000


def documents(as_of: datetime.date, **origin) -> tuple[list[engine.Doc], list[engine.Alloc]]:
    """Every document and allocation of one origin (``connection=…`` or
    ``document_set=…``) dated on or before ``as_of``: two queries, streamed."""
    rows = (
        Document.objects.filter(date__lte=as_of, **origin)
        .values_list(
            "kind",
            "external_id",
            "company_label",
            "contact_name",
            "date",
            "total",
            "currency",
            "number",
            "due_date",
            "rate",
            "contact_id",
        )
        .iterator(chunk_size=CHUNK)
    )
    docs = [engine.Doc(*row) for row in rows]
    allocations = [
        engine.Alloc(*row)
        for row in Allocation.objects.filter(date__lte=as_of, **origin)
        .values_list("source_id", "invoice_id", "amount", "date", "external_id")
        .iterator(chunk_size=CHUNK)
    ]
    return docs, allocations
