"""The beat scheduler: django-celery-beat's database scheduler, recording a heartbeat."""

from __future__ import annotations

import logging
import os
import socket
import time

from django.db import DatabaseError, close_old_connections
from django.utils import timezone
from django_celery_beat import schedulers

from scheduling.models import BeatHeartbeat

logger = logging.getLogger(__name__)

HEARTBEAT_EVERY = 5.0  # seconds; well inside HEALTH_BEAT_STALE_AFTER


class DatabaseScheduler(schedulers.DatabaseScheduler):
    def __init__(self, *args, **kwargs) -> None:
        self.beat_name = f"{socket.gethostname()}:{os.getpid()}"
        self.beat_started_at = timezone.now()
        self._last_heartbeat = 0.0
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs) -> float:
        self.heartbeat()
        return super().tick(*args, **kwargs)

    def heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._last_heartbeat < HEARTBEAT_EVERY:
            return
        try:
            close_old_connections()
            BeatHeartbeat.objects.update_or_create(
                hostname=self.beat_name,
                defaults={"last_tick_at": timezone.now()},
                create_defaults={"started_at": self.beat_started_at, "last_tick_at": timezone.now()},
            )
        except DatabaseError:
            # A missed heartbeat shows as a stale beat in health checks; scheduling goes on.
            logger.exception("beat heartbeat could not be written")
            return
        self._last_heartbeat = now
