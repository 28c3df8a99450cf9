"""Platform tasks. Task functions stay thin: logic lives in services."""

from __future__ import annotations

import os
import time

from celery import shared_task
from django.utils import timezone

MAX_HOLD_SECONDS = 60.0


@shared_task(bind=True, name="scheduling.probe")
def probe(self, token: str = "", hold: float = 0.0) -> dict:
    """A round trip through broker, worker and result backend, answering who ran it.

    ``hold`` keeps the worker busy for that many seconds (at most a minute), to watch a
    task in flight: in Flower, or when a worker is stopped under it.
    """
    if hold:
        time.sleep(min(float(hold), MAX_HOLD_SECONDS))
    return {
        "token": token,
        "worker": self.request.hostname,
        "pid": os.getpid(),
        "queue": (self.request.delivery_info or {}).get("routing_key"),
        "at": timezone.now().isoformat(),
    }
