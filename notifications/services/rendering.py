"""Subject and bodies from the Django template language.

A company's Template row wins over the platform's (no company), which wins over the
default the kind registered in code. Templates compile once per process per source text,
so an edit in the admin takes effect with the next notification and nothing is cached
stale. Text parts render without autoescaping, the HTML part with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from django.template import Context, Engine, NodeList, TemplateSyntaxError
from django.template import Template as DjangoTemplate
from django.template.defaulttags import ForNode

from notifications import kinds
from notifications.models import Notification, Template

SUBJECT_LENGTH = Notification._meta.get_field("subject").max_length

MAX_LOOP_DEPTH = 2  # loops in loops in loops multiply; two levels (invoices, their lines) is what a notice needs
MAX_OUTPUT = 200_000  # characters one rendered part may have


class _Engine(Engine):
    default_builtins = ["notifications.template_library"]  # in place of Django's builtins


_TEXT = _Engine(autoescape=False)
_HTML = _Engine(autoescape=True)


class RenderError(Exception):
    """A template that does not compile or render; recorded on the delivery."""


@dataclass(frozen=True)
class Source:
    subject: str
    body: str
    html: str = ""


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    html: str


@lru_cache(maxsize=512)
def _compiled(text: str, html: bool) -> DjangoTemplate:
    template = (_HTML if html else _TEXT).from_string(text)
    if _loop_depth(template.nodelist) > MAX_LOOP_DEPTH:
        raise TemplateSyntaxError(f"loops may be nested {MAX_LOOP_DEPTH} deep at most")
    return template


def _loop_depth(nodes: NodeList) -> int:
    return max((1 + _loop_depth(loop.nodelist_loop) for loop in nodes.get_nodes_by_type(ForNode)), default=0)


def sources(pairs: set[tuple[int | None, str]]) -> dict[tuple[int | None, str], Source | None]:
    """The template source for each (company id, kind), in one query."""
    company_ids = {company_id for company_id, _kind in pairs if company_id is not None}
    kind_codes = {kind for _company_id, kind in pairs}
    rows = {
        (row.company_id, row.kind): Source(row.subject, row.body, row.html)
        for row in Template.objects.filter(kind__in=kind_codes).filter(company__in=company_ids)
    }
    rows.update(
        {
            (None, row.kind): Source(row.subject, row.body, row.html)
            for row in Template.objects.filter(kind__in=kind_codes, company__isnull=True)
        }
    )
    found: dict[tuple[int | None, str], Source | None] = {}
    for company_id, kind in pairs:
        registered = kinds.get(kind)
        default = Source(registered.subject, registered.body, registered.html) if registered else None
        found[(company_id, kind)] = rows.get((company_id, kind)) or rows.get((None, kind)) or default
    return found


def render(source: Source | None, context: dict, kind: str = "", *, html: bool = True) -> Rendered:
    """Render ``source`` with ``context``; any failure is a RenderError naming its cause."""
    if source is None:
        raise RenderError(f"no template for {kind!r}: add one in the admin under Notifications > Templates")
    try:
        subject = _compiled(source.subject, False).render(Context(context, autoescape=False))
        body = _compiled(source.body, False).render(Context(context, autoescape=False))
        html_part = _compiled(source.html, True).render(Context(context)) if html and source.html else ""
    except TemplateSyntaxError as error:
        raise RenderError(f"template error: {error}") from error
    except Exception as error:  # a filter or a value's __str__ failing in the middle of rendering
        raise RenderError(f"template error while rendering: {type(error).__name__}: {error}") from error
    if max(len(subject), len(body), len(html_part)) > MAX_OUTPUT:
        raise RenderError(f"template error: a rendered part is over {MAX_OUTPUT:,} characters")
    subject = " ".join(subject.split())[:SUBJECT_LENGTH]  # a header is one line
    return Rendered(subject, body.strip(), html_part)


def check(text: str, *, html: bool = False) -> str | None:
    """The error that stops ``text`` compiling, or None."""
    try:
        _compiled(text, html)
    except TemplateSyntaxError as error:
        return f"template error: {error}"
    return None


def sample_context(template: Template) -> dict:
    """What a saved template's preview renders with: its sample data, or its kind's."""
    registered = kinds.get(template.kind)
    data = template.sample_data or (registered.sample_data if registered else {})
    return {"kind": template.kind, "company": str(template.company or ""), **data}


def context_of(notification: Notification, company_name: str = "") -> dict:
    """What a template sees: the notification's data and who it is for."""
    return {
        "recipient_name": notification.recipient_name,
        "recipient_email": notification.recipient_email,
        "company": company_name,
        "kind": notification.kind,
        **notification.data,
    }
