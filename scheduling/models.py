from __future__ import annotations

from django.db import models


class BeatHeartbeat(models.Model):
    """The last tick of each beat process, so health checks can tell a stalled scheduler."""

    hostname = models.CharField(max_length=255, unique=True, help_text="host:pid of the beat process")
    started_at = models.DateTimeField()
    last_tick_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-last_tick_at"]

    def __str__(self) -> str:
        return f"{self.hostname} @ {self.last_tick_at:%Y-%m-%d %H:%M:%S}"
