"""The kinds of notification the code knows, with their default templates and channels.

A domain app registers its kinds (billing: ``invoice_issued``, ``payment_reminder`` …) at
import time of its ``notifications`` module or ``AppConfig.ready``. A company's or the
platform's Template row overrides the subject and bodies; a kind nobody registered can
still be sent when a Template row exists for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.validators import RegexValidator

from notifications.models import KIND_RE, Channel

DEFAULT_CHANNELS = (Channel.IN_APP, Channel.EMAIL)


@dataclass(frozen=True)
class Kind:
    code: str
    subject: str
    body: str
    html: str = ""
    channels: tuple[str, ...] = DEFAULT_CHANNELS
    description: str = ""
    sample_data: dict | None = None


_KINDS: dict[str, Kind] = {}


def register(
    code: str,
    *,
    subject: str,
    body: str,
    html: str = "",
    channels: tuple[str, ...] = DEFAULT_CHANNELS,
    description: str = "",
    sample_data: dict | None = None,
) -> Kind:
    RegexValidator(KIND_RE)(code)
    unknown = set(channels) - set(Channel.values)
    if unknown:
        raise ValueError(f"kind {code}: unknown channels {sorted(unknown)}")
    kind = Kind(code, subject, body, html, tuple(channels), description, sample_data or {})
    _KINDS[code] = kind
    return kind


def get(code: str) -> Kind | None:
    return _KINDS.get(code)


def all_kinds() -> list[Kind]:
    return sorted(_KINDS.values(), key=lambda kind: kind.code)


JOB_ALERT = register(
    "job_alert",
    subject="[Countinghouse {{ severity }}] {{ job }}: {{ cause }}",
    body=(
        "{{ message }}\n\nJob: {{ job }} ({{ title }})\nSeverity: {{ severity }}\n"
        "{% if run %}Run: {{ run }}\n{% endif %}Acknowledge it in the admin under Scheduling > Job alerts."
    ),
    html=(
        "<p>{{ message }}</p><table><tr><th>Job</th><td>{{ job }} ({{ title }})</td></tr>"
        "<tr><th>Severity</th><td>{{ severity }}</td></tr>"
        "{% if run %}<tr><th>Run</th><td>{{ run }}</td></tr>{% endif %}"
        "</table><p>Acknowledge it in the admin under Scheduling &gt; Job alerts.</p>"
    ),
    description="A job failed, ran slow, missed its slot, was blocked or was lost with its worker.",
    sample_data={
        "job": "GL_DAILY_CLOSE",
        "title": "Daily GL close",
        "cause": "Consecutive failures",
        "severity": "critical",
        "message": "GL_DAILY_CLOSE failed 2 times in a row",
        "run": "2026-11-30 (failed)",
    },
)

WEBHOOK_DISABLED = register(
    "webhook_disabled",
    subject="Webhook endpoint {{ endpoint }} disabled",
    body=(
        "The webhook endpoint {{ endpoint }} ({{ url }}) of {{ company }} was disabled after {{ failures }} "
        "deliveries in a row failed.\nLast error: {{ error }}\n\nRe-enable it in the admin or through the API once "
        "it answers again; deliveries made while it was disabled can be resent."
    ),
    description="A client app's webhook endpoint kept failing and was switched off.",
    sample_data={
        "endpoint": "Portal",
        "url": "https://portal.example.com/hooks",
        "company": "Demo School",
        "failures": 5,
        "error": "HTTP 500",
    },
)
