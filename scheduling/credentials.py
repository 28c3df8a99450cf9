"""The operator's credentials that make run sets up and prints (admin site and Flower)."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured

from config import env

PASSWORD_FILE = "admin_password"


def admin_username() -> str:
    return env.text("ADMIN_USERNAME", "admin")


def saved_password() -> str | None:
    path = settings.VAR_DIR / PASSWORD_FILE
    return path.read_text().strip() if path.exists() else None


def ensure_admin() -> tuple[str, str | None, str]:
    """Create or update the superuser. Returns (username, password if known, what happened).

    ADMIN_PASSWORD, when set, always wins. Otherwise a generated password is kept in the
    var directory (embedded mode) so that a second `make run` can print it again; once an
    operator changes it in the admin, it is no longer known and not printed.
    """
    User = get_user_model()
    username = admin_username()
    email = env.text("ADMIN_EMAIL", "admin@example.com")
    wanted = env.text("ADMIN_PASSWORD", "")
    user = User.objects.filter(username=username).first()

    if user is None:
        password = wanted or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email=email, password=password)
        if not wanted and settings.MODE == "embedded":
            path = settings.VAR_DIR / PASSWORD_FILE
            path.write_text(password)
            path.chmod(0o600)
        return username, password, "created"

    if wanted:
        if not user.check_password(wanted):
            user.set_password(wanted)
            user.save(update_fields=["password"])
            return username, wanted, "password set from ADMIN_PASSWORD"
        return username, wanted, "exists"
    saved = saved_password()
    if saved and user.check_password(saved):
        return username, saved, "exists"
    return username, None, "exists; its password was changed since it was generated"


def flower_basic_auth() -> str | None:
    """user:password for Flower: FLOWER_BASIC_AUTH, else the admin's known credentials."""
    configured = env.text("FLOWER_BASIC_AUTH", "")
    if configured:
        if ":" not in configured:
            raise ImproperlyConfigured("FLOWER_BASIC_AUTH must be user:password")
        return configured
    password = env.text("ADMIN_PASSWORD", "") or saved_password()
    return f"{admin_username()}:{password}" if password else None
