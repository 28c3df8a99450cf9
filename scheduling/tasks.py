"""Platform tasks. Task functions stay thin: logic lives in services."""

from __future__ import annotations

import socket

from celery import shared_task
from django.utils import timezone


@shared_task(name="scheduling.probe", acks_late=False)
def probe(token: str = "") -> dict:
    """A round trip through broker, worker and result backend (manage.py probe_workers)."""
    return {"token": token, "worker": socket.gethostname(), "at": timezone.now().isoformat()}
