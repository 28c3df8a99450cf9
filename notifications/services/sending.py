"""The public face: ``notify`` one recipient, ``notify_many`` thousands.

Both write the notifications in one statement that skips any whose dedupe key the company
already holds (``ON CONFLICT DO NOTHING``), so a second call — a re-run, a redelivered
message, another worker at the same moment — creates nothing. Each new notification gets a
delivery per channel, decided here in memory from the preferences, quiet hours and webhook
endpoints read once per call; the queued ones go to the delivery tasks in chunks after the
transaction commits.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone

from config import bulk
from notifications import kinds
from notifications.models import (
    Channel,
    Delivery,
    DeliveryStatus,
    Notification,
    Preference,
    Priority,
    QuietHours,
    WebhookEndpoint,
    kind_validator,
)
from notifications.services.recipients import Recipient, recipient

# Channels quiet hours hold back: the ones that interrupt someone. An in-app notice waits
# in the inbox anyway.
HELD_IN_QUIET_HOURS = frozenset({Channel.EMAIL, Channel.WEBHOOK})
DEDUPE_KEY_LENGTH = Notification._meta.get_field("dedupe_key").max_length
NUL = re.compile(
    r"(?<!\\)(?:\\\\)*\\u0000"
)  # JSON's escape of a NUL character, not an escaped backslash before "u0000"
WEBHOOK_CHUNK = 25  # posts one task makes; an endpoint at its time-out holds a task that many times
KEYS_PER_QUERY = 10_000  # recipients whose preferences one query reads (under every database's parameter limit)
# What a row holds at most; PostgreSQL's column-array insert would cut a longer value short silently.
LIMITS = {
    "recipient key": Notification._meta.get_field("recipient_key").max_length,
    "email": Notification._meta.get_field("recipient_email").max_length,
    "party id": Notification._meta.get_field("party_id").max_length,
}


class NotifyError(ValueError):
    """A call to notify that cannot be honoured: an unknown channel, a bad kind or key."""


@dataclass
class Message:
    recipient: Recipient | models.Model
    kind: str
    context: dict = field(default_factory=dict)
    company: models.Model | int | None = None
    dedupe_key: str | None = None
    channels: Sequence[str] | None = None
    priority: str = Priority.NORMAL


@dataclass
class Outcome:
    created: list[int] = field(default_factory=list)  # ids of the notifications created
    skipped: int = 0  # already notified under their dedupe key
    queued: int = 0  # deliveries handed to the delivery tasks
    waiting: int = 0  # deliveries held by quiet hours
    suppressed: int = 0  # deliveries a preference, a missing address or ``silenced`` stopped
    silenced: int = 0  # notifications created inside ``silenced``: recorded, sent to nobody

    @property
    def notified(self) -> int:
        """Notifications created that go out to people."""
        return len(self.created) - self.silenced


_silence: ContextVar[str] = ContextVar("notifications_silence", default="")


@contextlib.contextmanager
def silenced(reason: str) -> Iterator[None]:
    """Within this block notifications are recorded but reach nobody: each delivery is
    suppressed, saying ``reason``. The job layer wraps a backfilled run in it (through
    ``JOB_SILENCE``), so re-making last year's invoices emails nobody."""
    token = _silence.set(reason)
    try:
        yield
    finally:
        _silence.reset(token)


def notify(
    to: Recipient | models.Model,
    kind: str,
    context: dict | None = None,
    *,
    company: models.Model | int | None = None,
    dedupe_key: str | None = None,
    channels: Sequence[str] | None = None,
    priority: str = Priority.NORMAL,
) -> Notification:
    """Notify one recipient. Returns the notification, or the one already made under
    ``dedupe_key`` (in which case nothing new is written or sent)."""
    message = Message(to, kind, context or {}, company, dedupe_key, channels, priority)
    outcome = notify_many([message])
    if outcome.created:
        return Notification.objects.get(pk=outcome.created[0])
    return Notification.objects.get(company=_company_id(company), dedupe_key=dedupe_key)


@dataclass
class _Prepared:
    to: Recipient
    kind: str
    data: dict
    company_id: int | None
    dedupe_key: str
    channels: list[str]
    priority: str
    auto: bool  # the dedupe key was generated: nothing to dedupe


def notify_many(messages: Iterable[Message]) -> Outcome:
    """Notify many recipients at once: one insert for the notifications, one for their
    deliveries, delivery queued in chunks after commit."""
    # Keys a caller chose go in one order for every caller, so two inserts of overlapping
    # keys wait for each other on the unique index instead of deadlocking. Generated keys
    # conflict with nothing and keep the caller's order.
    prepared = _prepare(messages)
    prepared.sort(key=lambda p: (p.auto, p.company_id is None, p.company_id or 0, "" if p.auto else p.dedupe_key))
    outcome = Outcome()
    if not prepared:
        return outcome
    now = timezone.now()
    with transaction.atomic():
        rows = bulk.insert_columns(
            Notification,
            {
                "company": [p.company_id for p in prepared],
                "kind": [p.kind for p in prepared],
                "priority": [p.priority for p in prepared],
                "dedupe_key": [p.dedupe_key for p in prepared],
                "user": [p.to.user_id for p in prepared],
                "party_type": [p.to.party_type_id for p in prepared],
                "party_id": [p.to.party_id for p in prepared],
                "recipient_key": [p.to.key for p in prepared],
                "recipient_name": [p.to.name[:200] for p in prepared],
                "recipient_email": [p.to.email for p in prepared],
                "channels": [p.channels for p in prepared],
                "data": [p.data for p in prepared],
                "subject": [""] * len(prepared),
                "body": [""] * len(prepared),
                "created_at": [now] * len(prepared),
            },
            returning=("id", "company", "dedupe_key"),
            ignore_conflicts=True,
        )
        by_key = {(p.company_id, p.dedupe_key): p for p in prepared}
        created = [(pk, by_key[(company_id, key)]) for pk, company_id, key in rows]
        outcome.created = [pk for pk, _p in created]
        outcome.skipped = len(prepared) - len(created)
        if _silence.get():
            outcome.silenced = len(created)
        if created:
            _write_deliveries(created, now, outcome)
    return outcome


def _company_id(company: models.Model | int | None) -> int | None:
    return getattr(company, "pk", company)


def _prepare(messages: Iterable[Message]) -> list[_Prepared]:
    prepared: list[_Prepared] = []
    seen: set[tuple[int | None, str]] = set()
    for message in messages:
        try:
            kind_validator(message.kind)
        except ValidationError as error:
            raise NotifyError(f"kind {message.kind!r}: {error.messages[0]}") from error
        if message.priority not in Priority.values:
            raise NotifyError(f"priority must be one of {', '.join(Priority.values)}, not {message.priority!r}")
        to = recipient(message.recipient)
        registered = kinds.get(message.kind)
        if message.channels is not None:
            wanted = list(message.channels)
        else:
            wanted = list(registered.channels if registered else kinds.DEFAULT_CHANNELS)
        unknown = set(wanted) - set(Channel.values)
        if unknown:
            raise NotifyError(f"unknown channels {sorted(unknown)}; choose from {', '.join(Channel.values)}")
        if to.channels is not None:
            wanted = [channel for channel in wanted if channel in to.channels]
        auto = not message.dedupe_key
        key = message.dedupe_key or f"auto:{uuid.uuid4().hex}"
        if len(key) > DEDUPE_KEY_LENGTH:
            raise NotifyError(f"a dedupe key is at most {DEDUPE_KEY_LENGTH} characters")
        company_id = _company_id(message.company)
        if (company_id, key) in seen:
            continue  # the same key twice in one call is one notification
        seen.add((company_id, key))
        if not isinstance(message.context, dict):
            raise NotifyError("a notification's context is a mapping of names to values")
        for what, value in (("recipient key", to.key), ("email", to.email), ("party id", to.party_id)):
            if len(value) > LIMITS[what]:
                raise NotifyError(f"a recipient's {what} is at most {LIMITS[what]} characters: {value[:40]!r}…")
        # Through JSON now, so a template renders what the row holds: dates and Decimals as text.
        text = json.dumps(message.context, cls=DjangoJSONEncoder)
        if NUL.search(text):
            raise NotifyError("a notification's context holds a NUL character, which no database column stores")
        data = json.loads(text)
        prepared.append(
            _Prepared(to, message.kind, data, company_id, key, list(dict.fromkeys(wanted)), message.priority, auto)
        )
    return prepared


class _Rules:
    """Preferences, quiet hours and webhook endpoints of the companies in one call, read
    once (each a query) and consulted per delivery in memory."""

    def __init__(self, prepared: list[_Prepared]) -> None:
        company_ids = {p.company_id for p in prepared} - {None}
        self.preferences: dict[tuple[int | None, str], dict[tuple[str, str], bool]] = defaultdict(dict)
        wanted_keys = sorted({p.to.key for p in prepared})
        for start in range(0, len(wanted_keys), KEYS_PER_QUERY):
            rows = Preference.objects.filter(
                models.Q(company__in=company_ids) | models.Q(company__isnull=True),
                recipient_key__in=wanted_keys[start : start + KEYS_PER_QUERY],
            ).values_list("company_id", "recipient_key", "kind", "channel", "enabled")
            for company_id, key, kind, channel, enabled in rows:
                self.preferences[(company_id, key)][(kind, channel)] = enabled
        self.quiet: dict[tuple[int, str], QuietHours] = {
            (q.company_id, q.recipient_key): q for q in QuietHours.objects.filter(company__in=company_ids)
        }
        self.endpoints: dict[int, list[WebhookEndpoint]] = defaultdict(list)
        for endpoint in WebhookEndpoint.objects.filter(company__in=company_ids, active=True).order_by("pk"):
            self.endpoints[endpoint.company_id].append(endpoint)

    def enabled(self, p: _Prepared, channel: str) -> bool:
        for scope in ((p.company_id, p.to.key), (None, p.to.key)):
            choices = self.preferences.get(scope)
            if choices:
                for kind in (p.kind, ""):
                    if (kind, channel) in choices:
                        return choices[(kind, channel)]
        return True

    def quiet_until(self, p: _Prepared, channel: str, now):
        if p.company_id is None or p.priority == Priority.URGENT or channel not in HELD_IN_QUIET_HOURS:
            return None
        window = self.quiet.get((p.company_id, p.to.key)) or self.quiet.get((p.company_id, ""))
        return window.release_at(now) if window else None


def _write_deliveries(created: list[tuple[int, _Prepared]], now, outcome: Outcome) -> None:
    rules = _Rules([p for _pk, p in created])
    columns: dict[str, list] = defaultdict(list)
    silence = _silence.get()

    def add(notification_id: int, p: _Prepared, channel: str, status: str, when, error: str = "", endpoint=None):
        columns["notification"].append(notification_id)
        columns["company"].append(p.company_id)
        columns["channel"].append(channel)
        columns["endpoint"].append(endpoint)
        columns["status"].append(status)
        columns["next_attempt_at"].append(when)
        columns["last_error"].append(error)

    for pk, p in created:
        for channel in p.channels:
            if channel == Channel.WEBHOOK:
                targets = [e.pk for e in rules.endpoints.get(p.company_id, ()) if e.receives(p.kind)]
            else:
                targets = [None]
            for endpoint in targets:
                reason = f"silenced: {silence}" if silence else _suppression(p, channel, rules)
                if reason:
                    add(pk, p, channel, DeliveryStatus.SUPPRESSED, now, reason, endpoint)
                    continue
                release = rules.quiet_until(p, channel, now)
                if release:
                    add(pk, p, channel, DeliveryStatus.WAITING, release, "", endpoint)
                else:
                    add(pk, p, channel, DeliveryStatus.QUEUED, now, "", endpoint)
    if not columns:
        return
    n = len(columns["notification"])
    columns.update(
        attempts=[0] * n,
        claim=[""] * n,
        claimed_at=[None] * n,
        provider_message_id=[""] * n,
        sent_at=[None] * n,
        created_at=[now] * n,
        updated_at=[now] * n,
    )
    rows = bulk.insert_columns(Delivery, dict(columns), returning=("id", "channel", "status", "endpoint"))
    queued: dict[tuple[str, int | None], list[int]] = defaultdict(list)
    for pk, channel, status, endpoint in rows:
        if status == DeliveryStatus.QUEUED:
            queued[(channel, endpoint)].append(pk)
            outcome.queued += 1
        elif status == DeliveryStatus.WAITING:
            outcome.waiting += 1
        else:
            outcome.suppressed += 1
    if queued:
        transaction.on_commit(lambda: dispatch(queued), robust=True)


def _suppression(p: _Prepared, channel: str, rules: _Rules) -> str:
    if not rules.enabled(p, channel):
        return f"{p.to.key} turned {channel} off for {p.kind}"
    if channel == Channel.EMAIL and not p.to.email:
        return "no email address"
    if channel == Channel.IN_APP and p.to.user_id is None:
        return "no user to show it to"
    return ""


def dispatch(queued: dict[tuple[str, int | None], list[int]]) -> int:
    """Hand deliveries to the delivery tasks: chunks per channel, and per endpoint for
    webhooks, so a slow endpoint holds up only its own deliveries. Returns the tasks sent."""
    from notifications import tasks

    sent = 0
    for (channel, _endpoint), ids in queued.items():
        size = settings.NOTIFY_DELIVERY_CHUNK if channel != Channel.WEBHOOK else WEBHOOK_CHUNK
        for start in range(0, len(ids), size):
            tasks.deliver.delay(channel, ids[start : start + size])
            sent += 1
    return sent


def amend(company: models.Model | int | None, changes: dict[str, dict]) -> int:
    """Merge values into the context of the company's notifications by dedupe key, in the
    transaction that created them, before their deliveries go out (they are queued on
    commit). For a caller that learns a value only after notifying: billing numbers its
    invoices last, under a lock it holds as briefly as it can. Returns the rows changed."""
    if not changes:
        return 0
    if not transaction.get_connection().in_atomic_block:
        raise NotifyError("amend runs in the transaction that created the notifications")
    company_id = getattr(company, "pk", company)
    table = Notification._meta.db_table
    keys = list(changes)
    patches = [json.dumps(changes[key], cls=DjangoJSONEncoder) for key in keys]
    scope = "company_id = %s" if company_id is not None else "company_id IS NULL"
    scope_params = [company_id] if company_id is not None else []
    with transaction.get_connection().cursor() as cursor:
        if cursor.db.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {table} AS n SET data = n.data || v.patch::jsonb "
                f"FROM UNNEST(%s::text[], %s::text[]) AS v(key, patch) "
                f"WHERE n.dedupe_key = v.key AND n.{scope}",
                [keys, patches, *scope_params],
            )
            return cursor.rowcount
        cursor.executemany(
            f"UPDATE {table} SET data = json_patch(data, %s) WHERE dedupe_key = %s AND {scope}",
            [[patch, key, *scope_params] for key, patch in zip(keys, patches, strict=True)],
        )
        return len(keys)
