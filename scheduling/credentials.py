"""The operator's credentials that make run sets up and prints (admin site and Flower)."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured

from config import env

ADMIN_PASSWORD_FILE = "admin_password"
FLOWER_PASSWORD_FILE = "flower_password"


def admin_username() -> str:
    return env.text("ADMIN_USERNAME", "admin")


def _saved(name: str) -> str | None:
    path = settings.VAR_DIR / name
    return path.read_text().strip() if path.exists() else None


def _save(name: str, secret: str) -> None:
    path = settings.VAR_DIR / name
    path.write_text(secret)
    path.chmod(0o600)


def saved_admin_password() -> str | None:
    return _saved(ADMIN_PASSWORD_FILE)


def admin_password_hint() -> str:
    """What to print for the admin's password: the generated one while it is still
    valid, otherwise where the password comes from. ADMIN_PASSWORD is never shown."""
    if env.is_set("ADMIN_PASSWORD"):
        return "(from ADMIN_PASSWORD)"
    return saved_admin_password() or "(as set in the admin; manage.py changepassword resets it)"


def ensure_admin() -> tuple[str, str, str | None]:
    """Create or update the superuser. Returns (username, what happened, the password if
    one was generated just now).

    ADMIN_PASSWORD, when set, always wins. Otherwise a generated password is kept in the
    var directory (embedded mode) so that a second `make run` can print it again, until
    an operator changes it in the admin.
    """
    User = get_user_model()
    username = admin_username()
    wanted = env.text("ADMIN_PASSWORD", "")
    user = User.objects.filter(username=username).first()

    if user is None:
        password = wanted or secrets.token_urlsafe(12)
        email = env.text("ADMIN_EMAIL", "admin@example.com")
        User.objects.create_superuser(username=username, email=email, password=password)
        if wanted:
            return username, "created", None
        if settings.MODE == "embedded":
            _save(ADMIN_PASSWORD_FILE, password)
        return username, "created", password

    if wanted:
        if user.check_password(wanted):
            return username, "exists", None
        user.set_password(wanted)
        user.save(update_fields=["password"])
        return username, "exists; password set from ADMIN_PASSWORD", None
    saved = saved_admin_password()
    if saved and not user.check_password(saved):
        # Changed in the admin since: the saved copy is stale and must not be printed again.
        (settings.VAR_DIR / ADMIN_PASSWORD_FILE).unlink()
    return username, "exists", None


def flower_basic_auth() -> tuple[str, str]:
    """user:password for Flower, and where it came from.

    FLOWER_BASIC_AUTH wins. In embedded mode, without it, Flower gets the admin's user
    name and a generated password of its own kept in the var directory; in distributed
    mode it is required, so Flower never starts open.
    """
    configured = env.text("FLOWER_BASIC_AUTH", "")
    if configured:
        user, _, password = configured.partition(":")
        if not user or not password:
            raise ImproperlyConfigured("FLOWER_BASIC_AUTH must be user:password")
        return configured, "FLOWER_BASIC_AUTH"
    if settings.MODE != "embedded":
        raise ImproperlyConfigured("FLOWER_BASIC_AUTH is required in distributed mode (user:password)")
    password = _saved(FLOWER_PASSWORD_FILE)
    if not password:
        password = secrets.token_urlsafe(12)
        _save(FLOWER_PASSWORD_FILE, password)
    return f"{admin_username()}:{password}", f"var/{FLOWER_PASSWORD_FILE}"
