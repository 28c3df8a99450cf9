"""What a notification template may use: the Django template language without the parts
that reach outside the template or let its author make the platform allocate at will.

Templates are written by company members and rendered in the web process (previews) and
the shared delivery workers, so the library is a curated list rather than Django's
builtins: no ``load``, ``url``, ``debug``, ``csrf_token`` or ``lorem``; no ``safe`` (an
author writes HTML in the template itself, and a customer's name stays escaped); no
``pprint`` or ``random``. Padding and number formats take bounded widths.
"""

from __future__ import annotations

import re

from django.template import Library, Node, defaultfilters, defaulttags
from django.template.defaultfilters import stringfilter

MAX_WIDTH = 200
MAX_DECIMALS = 20
MAX_LOOP_PASSES = 100_000  # passes of all a part's loops together: two loops over long sample text multiply

TAGS = (
    "comment",
    "cycle",
    "filter",
    "firstof",
    "if",
    "ifchanged",
    "now",
    "regroup",
    "resetcycle",
    "spaceless",
    "templatetag",
    "verbatim",
    "widthratio",
    "with",
)
FILTERS = (
    "add",
    "addslashes",
    "capfirst",
    "cut",
    "date",
    "default",
    "default_if_none",
    "dictsort",
    "dictsortreversed",
    "divisibleby",
    "escape",
    "first",
    "force_escape",
    "iriencode",
    "join",
    "last",
    "length",
    "linebreaks",
    "linebreaksbr",
    "lower",
    "make_list",
    "pluralize",
    "slice",
    "slugify",
    "striptags",
    "time",
    "timesince",
    "timeuntil",
    "title",
    "truncatechars",
    "truncatechars_html",
    "truncatewords",
    "truncatewords_html",
    "upper",
    "urlencode",
    "urlize",
    "urlizetrunc",
    "wordcount",
    "wordwrap",
    "yesno",
)

register = Library()
register.tags.update({name: defaulttags.register.tags[name] for name in TAGS})
register.filters.update({name: defaultfilters.register.filters[name] for name in FILTERS})


def _width(arg) -> int:
    width = int(arg)
    if width > MAX_WIDTH:
        raise ValueError(f"a width is at most {MAX_WIDTH}, not {width}")
    return width


@register.filter(is_safe=True)
@stringfilter
def ljust(value: str, arg) -> str:
    return value.ljust(_width(arg))


@register.filter(is_safe=True)
@stringfilter
def rjust(value: str, arg) -> str:
    return value.rjust(_width(arg))


@register.filter(is_safe=True)
@stringfilter
def center(value: str, arg) -> str:
    return value.center(_width(arg))


@register.filter(is_safe=True)
def stringformat(value, arg) -> str:
    for number in re.findall(r"\d+", str(arg)):
        _width(number)
    return defaultfilters.stringformat(value, arg)


@register.filter(is_safe=True)
def floatformat(text, arg=-1) -> str:
    digits = re.findall(r"\d+", str(arg))
    if digits and int(digits[0]) > MAX_DECIMALS:
        raise ValueError(f"at most {MAX_DECIMALS} decimal places, not {digits[0]}")
    return defaultfilters.floatformat(text, arg)


class _LoopPass(Node):
    """The first node of every loop body: counts the part's passes and stops it at the bound."""

    def render(self, context) -> str:
        counts = context.render_context.dicts[0]  # one per Context: one per rendered part
        counts["loop passes"] = passes = counts.get("loop passes", 0) + 1
        if passes > MAX_LOOP_PASSES:
            raise ValueError(f"loops may make {MAX_LOOP_PASSES:,} passes at most")
        return ""


@register.tag("for")
def for_loop(parser, token) -> defaulttags.ForNode:
    loop = defaulttags.do_for(parser, token)
    loop.nodelist_loop.insert(0, _LoopPass())
    return loop
