"""Load settings up front, so that a bad variable stops a process with one readable line."""

from __future__ import annotations

import sys

from django.core.exceptions import ImproperlyConfigured


def load_settings_or_exit() -> None:
    from django.conf import settings

    try:
        settings.INSTALLED_APPS  # noqa: B018 — reading a setting imports the module
    except ImproperlyConfigured as exc:
        sys.exit(f"countinghouse: configuration error: {exc}")
