"""What the ledger's admin pages share: running a service over a selection and reporting
each refusal. Company scoping is config.companies.CompanyScoped, shared with the other apps."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html

from ledger.errors import LedgerStateError, PostingError
from ledger.models import Period


def reason(exc: Exception) -> str:
    return " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)


def operate(modeladmin, request, objects: Iterable, verb: str, service: Callable, *, label, unchanged: str) -> None:
    """Apply a service to each object in order; ``service`` answers whether it changed
    anything. One refusal does not stop the others, and each is reported by name."""
    done = same = 0
    refused = []
    for obj in objects:
        try:
            changed = service(obj)  # each service is one transaction
        except (PostingError, LedgerStateError) as exc:
            refused.append(f"{label(obj)}: {reason(exc)}")
            continue
        if changed:
            done += 1
        else:
            same += 1
    message = f"{verb}: {done} done" + (f", {same} {unchanged}" if same else "")
    if refused:
        message += f", {len(refused)} refused: " + "; ".join(refused)
    level = messages.SUCCESS if not refused else messages.WARNING if done else messages.ERROR
    modeladmin.message_user(request, message, level)


def entry_link(pk: int) -> str:
    return format_html('<a href="{}">JE{}</a>', reverse("admin:ledger_journalentry_change", args=[pk]), pk)


def period_label(period: Period) -> str:
    return f"{period.company.slug} {period.label}"
