"""The beat scheduler: django-celery-beat's database scheduler, plus the job layer.

Job schedules are fired by ``services.firing`` (one indexed query per tick, runs keyed
per slot), not by django-celery-beat's in-memory heap; other periodic tasks an admin adds
still go through django-celery-beat as usual. Only the beat holding the lease fires
anything: a second beat is a hot standby that takes over when the lease lapses.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import time

from django.conf import settings
from django.db import DatabaseError, IntegrityError, close_old_connections, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone
from django_celery_beat import schedulers
from django_celery_beat.models import PeriodicTasks

from scheduling.models import BeatHeartbeat, BeatLease
from scheduling.services import firing

logger = logging.getLogger(__name__)

HEARTBEAT_EVERY = 5.0  # seconds; well inside HEALTH_BEAT_STALE_AFTER
STANDBY_SLEEP = 2.0
REFRESH_EVERY = 300.0  # recompute fire times this often even without a change signal (holidays)


class Lease:
    """A lease row renewed by its holder; anybody may take it once it has lapsed.

    Works on PostgreSQL and SQLite alike. A leader that cannot renew (database gone) stops
    firing when its own copy of the lease runs out, before anybody else can take it.
    """

    def __init__(self, holder: str, ttl: float, name: str = BeatLease.BEAT) -> None:
        self.holder, self.ttl, self.name = holder, ttl, name
        self.valid_until = 0.0  # monotonic
        self.leading = False

    def hold(self) -> bool:
        now = time.monotonic()
        if self.leading and self.valid_until - now > self.ttl * 2 / 3:
            return True  # renewed recently enough
        try:
            acquired = self._acquire()
        except DatabaseError:
            logger.exception("beat lease could not be renewed")
            acquired = None  # unknown: lead on while our own copy of the lease lasts
        if acquired:
            self.valid_until = now + self.ttl
        leading = bool(acquired) or (acquired is None and self.leading and now < self.valid_until)
        if leading != self.leading:
            logger.warning("beat %s is %s", self.holder, "now the leader" if leading else "a standby")
        self.leading = leading
        return leading

    def _acquire(self) -> bool:
        now = timezone.now()
        expires = now + datetime.timedelta(seconds=self.ttl)
        mine_or_lapsed = BeatLease.objects.filter(name=self.name).filter(Q(holder=self.holder) | Q(expires_at__lt=now))
        taken = mine_or_lapsed.update(
            expires_at=expires,
            acquired_at=Case(When(holder=self.holder, then=F("acquired_at")), default=Value(now)),
            holder=self.holder,
        )
        if taken:
            return True
        try:
            with transaction.atomic():
                BeatLease.objects.create(name=self.name, holder=self.holder, acquired_at=now, expires_at=expires)
        except IntegrityError:
            return False
        return True

    def release(self) -> None:
        """Hand over at once on a clean stop, instead of making the standby wait out the lease."""
        if not self.leading:
            return
        try:
            BeatLease.objects.filter(name=self.name, holder=self.holder).update(expires_at=timezone.now())
        except DatabaseError:
            logger.exception("beat lease could not be released")
        self.leading = False


class DatabaseScheduler(schedulers.DatabaseScheduler):
    def __init__(self, *args, **kwargs) -> None:
        self.beat_name = f"{socket.gethostname()}:{os.getpid()}"
        self.beat_started_at = timezone.now()
        self._last_heartbeat = 0.0
        self._last_refresh = 0.0
        self._last_change = None
        self.lease = Lease(self.beat_name, settings.BEAT_LEASE_SECONDS)
        super().__init__(*args, **kwargs)

    def enabled_models_qs(self):
        return super().enabled_models_qs().filter(job_schedule__isnull=True)

    def tick(self, *args, **kwargs) -> float:
        self.heartbeat()
        close_old_connections()
        if not self.lease.hold():
            return STANDBY_SLEEP
        try:
            self.refresh_job_schedules()
            _, wait = firing.fire_due()
        except DatabaseError:
            logger.exception("job schedules could not be fired; trying again")
            wait = STANDBY_SLEEP
        return min(wait, super().tick(*args, **kwargs))

    def refresh_job_schedules(self) -> None:
        change = PeriodicTasks.last_change()
        now = time.monotonic()
        if change == self._last_change and now - self._last_refresh < REFRESH_EVERY:
            return
        changed = firing.refresh_schedules()
        if changed:
            logger.info("beat: %d job schedule(s) have new fire times", changed)
        self._last_change, self._last_refresh = change, now

    def close(self) -> None:
        self.lease.release()
        super().close()

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
