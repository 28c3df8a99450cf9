"""Secrets at rest (webhook secrets, Xero tokens): encrypted with Fernet, never logged.

Keys come from SECRETS_KEYS (comma-separated Fernet keys, newest first: the first
encrypts, all decrypt, so a key is rotated by putting a new one in front). Unset, one key
is derived from SECRET_KEY, which is enough for the embedded default; changing SECRET_KEY
then makes stored secrets unreadable, which is why production sets SECRETS_KEYS.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SecretUnreadable(Exception):
    """A stored secret no configured key decrypts (SECRET_KEY or SECRETS_KEYS changed)."""


@cache
def _fernet() -> MultiFernet:
    keys = [key.strip() for key in settings.SECRETS_KEYS if key.strip()]
    if not keys:
        digest = hashlib.sha256(f"countinghouse-secrets:{settings.SECRET_KEY}".encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(key) for key in keys])  # the settings refuse a malformed key at start-up


def encrypt(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as error:
        raise SecretUnreadable("no configured key decrypts this secret") from error
