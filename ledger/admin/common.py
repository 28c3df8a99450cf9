"""What the ledger's admin pages share: scoping every page to the operator's companies,
running a service over a selection and reporting each refusal."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.contrib import messages
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db.models import Model, QuerySet
from django.urls import reverse
from django.utils.html import format_html

from config.companies import AdminCompanyFilter
from ledger.errors import LedgerStateError, PostingError
from ledger.models import Company, Period


def member_companies(user) -> QuerySet[Company]:
    return Company.objects.of_member(user)


def _company_lookup(model: type[Model]) -> str | None:
    if model is Company:
        return "pk__in"
    try:
        field = model._meta.get_field("company")
    except FieldDoesNotExist:
        return None
    return "company__in" if field.is_relation and field.related_model is Company else None


def in_companies(queryset: QuerySet, user) -> QuerySet:
    """``queryset`` as ``user`` may see it in the admin. Superusers run the platform and see
    every company; other staff see only the companies they are members of. (The API's
    ``for_user`` lets every staff user read everything; the admin also writes, so it does not.)
    Rows that belong to no company, such as users, are left as they are."""
    lookup = _company_lookup(queryset.model)
    if user.is_superuser or lookup is None:
        return queryset
    return queryset.filter(**{lookup: member_companies(user)})


class CompanyScoped:
    """Mixed into every ledger ModelAdmin and inline (ahead of the admin class) so an operator
    works only on the books of their companies (see ``in_companies``).

    The admin reads every row through ``get_queryset``: changelists and their counts, change,
    delete and history pages (another company's object "doesn't exist", as a missing one),
    an action's selection, and the autocomplete answers for a field pointing at this model.
    Foreign-key choices in forms (company, account, parent, period, ...) are narrowed the
    same way, so a posted choice from another company is not a valid one.
    """

    def get_queryset(self, request):
        return in_companies(super().get_queryset(request), request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if field is not None and getattr(field, "queryset", None) is not None:
            field.queryset = in_companies(field.queryset, request.user)  # the widget follows its field's queryset
        return field

    def get_list_filter(self, request):
        return [(name, AdminCompanyFilter) if name == "company" else name for name in super().get_list_filter(request)]


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
