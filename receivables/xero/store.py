"""Writing pages of Xero's documents into receivables' tables.

A page is written in a few statements whatever its size: one read of the rows it names,
one insert of the new, one update of the changed (what Xero re-sends unchanged is left
alone, so a sync knows whether anything changed), one delete of what went. The unique
constraints on (connection, external_id) are partial (a row belongs to a connection or to
a document set), which ``INSERT … ON CONFLICT`` cannot name portably; reading first needs
no such clause, and a sync holds its connection's claim, so no one else writes the rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from decimal import Decimal

from django.db import models, transaction
from django.db.models import Case, F, Q, Value, When

from config.bulk import insert_columns, update_columns
from receivables.models import Allocation, Document, XeroConnection, XeroContact
from receivables.xero.normalise import Page

DOCUMENT_FIELDS = (
    "kind",
    "company_label",
    "contact_id",
    "contact_name",
    "number",
    "date",
    "due_date",
    "total",
    "currency",
    "rate",
    "status",
    "updated_at",
)
ALLOCATION_FIELDS = ("source_id", "invoice_id", "amount", "date")
CONTACT_FIELDS = ("name", "email", "status", "updated_at")
UNKNOWN_CONTACT = "(unknown contact)"
DELETE_BATCH = 1000


@dataclass
class Written:
    created: int = 0
    updated: int = 0
    removed: int = 0
    allocations: int = 0  # created or changed
    allocations_removed: int = 0
    contacts: int = 0  # created or changed
    renamed: int = 0  # documents given a contact's new name

    def add(self, other: Written) -> None:
        for item in fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))

    @property
    def changed(self) -> bool:
        """Whether what a report ages changed (contacts alone change no report)."""
        return bool(
            self.created or self.updated or self.removed or self.allocations or self.allocations_removed or self.renamed
        )


def _same(old, new) -> bool:
    if isinstance(old, Decimal) or isinstance(new, Decimal):
        return old is not None and new is not None and Decimal(old) == Decimal(new)
    return old == new


def upsert(
    model: type[models.Model], connection: XeroConnection, key: str, rows: dict[str, dict], names: Sequence[str]
) -> tuple[list[str], list[str], dict[str, tuple]]:
    """Insert the rows (keyed by ``key``) the connection lacks and update those that differ.
    Returns the keys created, the keys changed, and what the changed rows held before."""
    if not rows:
        return [], [], {}
    existing = {
        found[0]: found
        for found in model.objects.filter(connection=connection, **{f"{key}__in": list(rows)}).values_list(
            key, "pk", *names
        )
    }
    new, changed, before = [], [], {}
    for identifier, values in rows.items():
        found = existing.get(identifier)
        if found is None:
            new.append(identifier)
        elif not all(_same(found[2 + i], values[name]) for i, name in enumerate(names)):
            changed.append(model(pk=found[1], **{name: values[name] for name in names}))
            before[identifier] = found[2:]
    if new:
        columns = {"connection": [connection.pk] * len(new), key: new}
        columns.update({name: [rows[identifier][name] for identifier in new] for name in names})
        insert_columns(model, columns, returning=())
    if changed:
        update_columns(model, changed, names)
    return new, list(before), before


def fill(connection: XeroConnection, page: Page) -> None:
    """What Xero left out of a page, from what is already here: a payment's contact and
    currency from the document it pays, a contact's name from the contacts, a currency
    from the organisation's base currency. A document still without a currency is left out."""
    documents = page.documents
    if page.targets:
        known = {
            row[0]: row[1:]
            for row in Document.objects.filter(
                connection=connection, external_id__in=set(page.targets.values())
            ).values_list("external_id", "contact_id", "contact_name", "currency")
        }
        for payment, target in page.targets.items():
            row, found = documents.get(payment), known.get(target)
            if row is None or found is None:
                continue
            for name, value in zip(("contact_id", "contact_name", "currency"), found, strict=True):
                row[name] = row[name] or value
    unnamed = {row["contact_id"] for row in documents.values() if not row["contact_name"] and row["contact_id"]}
    names = dict(
        XeroContact.objects.filter(connection=connection, contact_id__in=unnamed).values_list("contact_id", "name")
        if unnamed
        else []
    )
    for identifier, row in list(documents.items()):
        row["contact_name"] = row["contact_name"] or names.get(row["contact_id"]) or UNKNOWN_CONTACT
        row["currency"] = row["currency"] or connection.base_currency
        if not row["currency"]:
            page.skipped.append(f"{row['kind']} {identifier} has no currency and the organisation no base currency")
            del documents[identifier]
            page.allocations = {
                key: allocation
                for key, allocation in page.allocations.items()
                if identifier not in (key, allocation["source_id"])
            }


def write_page(connection: XeroConnection, page: Page) -> Written:
    """One page, all or nothing."""
    fill(connection, page)
    written = Written()
    with transaction.atomic():
        created, changed, _ = upsert(Document, connection, "external_id", page.documents, DOCUMENT_FIELDS)
        written.created, written.updated = len(created), len(changed)
        mine = Allocation.objects.filter(connection=connection)
        if page.removed:
            written.removed = Document.objects.filter(connection=connection, external_id__in=page.removed).delete()[0]
            written.allocations_removed += mine.filter(
                Q(source_id__in=page.removed) | Q(invoice_id__in=page.removed) | Q(external_id__in=page.removed)
            ).delete()[0]
        if page.replaces:
            # A credit's allocations are all on its page: any other of its allocations went in
            # Xero. A refund out of the credit is not one of them: it is keyed by the refund,
            # which is also its "invoice" (see normalise), and comes with the payments.
            written.allocations_removed += (
                mine.filter(source_id__in=page.replaces)
                .exclude(external_id__in=list(page.allocations))
                .exclude(external_id=F("invoice_id"))
                .delete()[0]
            )
        created, changed, _ = upsert(Allocation, connection, "external_id", page.allocations, ALLOCATION_FIELDS)
        written.allocations = len(created) + len(changed)
    return written


def write_contacts(connection: XeroConnection, rows: dict[str, dict]) -> Written:
    """Contacts, and a renamed contact's new name onto its documents (Xero does not touch
    the documents, so they would not come again)."""
    written = Written()
    with transaction.atomic():
        created, changed, before = upsert(XeroContact, connection, "contact_id", rows, CONTACT_FIELDS)
        written.contacts = len(created) + len(changed)
        renamed = {key: rows[key]["name"] for key in changed if before[key][0] != rows[key]["name"]}
        if renamed:
            written.renamed = Document.objects.filter(connection=connection, contact_id__in=list(renamed)).update(
                contact_name=Case(
                    *(When(contact_id=key, then=Value(name or UNKNOWN_CONTACT)) for key, name in renamed.items()),
                    default=F("contact_name"),
                )
            )
    return written


def remove_unseen(connection: XeroConnection, documents: set[str], allocations: set[str]) -> Written:
    """After a full sync: what Xero no longer has at all (deleted outright, or beyond what
    an earlier sync was told) goes."""
    written = Written()
    stale = _unseen(Document.objects.filter(connection=connection), documents)
    written.removed = _delete(Document, stale)
    stale = _unseen(Allocation.objects.filter(connection=connection), allocations)
    written.allocations_removed = _delete(Allocation, stale)
    return written


def _unseen(queryset: models.QuerySet, seen: set[str]) -> list[int]:
    return [pk for pk, external_id in queryset.values_list("pk", "external_id").iterator() if external_id not in seen]


def _delete(model: type[models.Model], pks: Iterable[int]) -> int:
    pks, removed = list(pks), 0
    for start in range(0, len(pks), DELETE_BATCH):
        removed += model.objects.filter(pk__in=pks[start : start + DELETE_BATCH]).delete()[0]
    return removed
