"""Gapless per-company document numbers.

The company's counter row is locked (``SELECT … FOR UPDATE``) and advanced in the
transaction that numbers the documents: a rollback gives the numbers back, and two
transactions numbering at once take turns. Callers take the lock as late as they can,
after their inserts, so the turns are short.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import F

from billing.models import DocumentSequence
from billing.models.invoices import DEFAULT_PREFIX, Series
from ledger.models import Company


def take(company: Company | int, series: str, count: int) -> list[str]:
    """The next ``count`` numbers of the company's ``series``, formatted."""
    return advance(lock(company, series), count)


def lock(company: Company | int, series: str) -> DocumentSequence:
    """Lock the company's counter of ``series`` until the transaction ends. Read the
    documents to number after this: another numberer's work is then committed and seen."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("numbers are taken inside the transaction that uses them")
    company_id = getattr(company, "pk", company)
    sequence = DocumentSequence.objects.select_for_update().filter(company_id=company_id, series=series).first()
    if sequence is not None:
        return sequence
    # First document of the series: create the counter, racing safely with another
    # transaction doing the same (the unique constraint picks one; both then lock it).
    DocumentSequence.objects.bulk_create(
        [DocumentSequence(company_id=company_id, series=series, prefix=DEFAULT_PREFIX[Series(series)])],
        ignore_conflicts=True,
    )
    return DocumentSequence.objects.select_for_update().get(company_id=company_id, series=series)


def advance(sequence: DocumentSequence, count: int) -> list[str]:
    """The next ``count`` numbers of a locked counter."""
    if count <= 0:
        return []
    first = sequence.next_number
    DocumentSequence.objects.filter(pk=sequence.pk).update(next_number=F("next_number") + count)
    sequence.next_number = first + count
    return [sequence.format(number) for number in range(first, first + count)]
