"""Job priorities: one direction for the platform, mapped to each broker's own.

The platform's direction: a priority is 0 to 9 and **9 is the most urgent**
(``JobDefinition.priority``, ``@job(priority=...)``; 5 is normal). Brokers disagree, so a
job's priority is mapped when its tasks are sent (``runs.task_options``):

- RabbitMQ delivers a higher message priority first, but only from a queue declared with
  ``x-max-priority``; on any other queue the property is ignored. Task queues are declared
  with ``x-max-priority`` 9 (``PriorityQueue``) and the priority passes unchanged.
- kombu's Redis transport keeps one list per queue and priority step and pops the lowest
  step first, across all the queues a worker consumes: 0 is its most urgent, so the message
  priority is ``9 - priority``. Ten steps (``REDIS_PRIORITY_STEPS``) keep every level apart.
- The embedded filesystem broker (config/filesystem_broker.py) takes a queue's files in
  name order and names them by urgency first: the platform's direction, unchanged. It
  orders within a queue only; a worker on several queues takes them in turn.
- memory:// (unit tests) keeps arrival order; the priority passes unchanged.

Only messages still in the broker are reordered. With acks_late and a prefetch multiplier
of 1 (settings) a worker holds no message beyond those it runs, so each process that comes
free takes the most urgent one waiting; a larger multiplier would let it reserve messages
before a more urgent one arrives.

A task sent without a priority (alerts, notifications) gets ``NORMAL`` through
``CELERY_TASK_DEFAULT_PRIORITY``: on Redis an absent priority would otherwise be 0, its
most urgent.

RabbitMQ refuses to declare ``x-max-priority`` on a queue created without it
(PRECONDITION_FAILED). Such queues are migrated by ``manage.py migrate_priority_queues``;
a worker or a sender that meets one raises ``QueueNeedsMigration``, which says so.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from amqp.exceptions import PreconditionFailed
from kombu import Queue

LOWEST = 0
NORMAL = 5
MOST_URGENT = 9
LEVELS = range(LOWEST, MOST_URGENT + 1)

QUEUE_ARGUMENTS = {"x-max-priority": MOST_URGENT}
REDIS_PRIORITY_STEPS = list(LEVELS)
MIGRATE_COMMAND = "python manage.py migrate_priority_queues"

TRANSPORTS = {
    "amqp": "amqp",
    "amqps": "amqp",
    "pyamqp": "amqp",
    "redis": "redis",
    "rediss": "redis",
    "sentinel": "redis",
    "filesystem": "filesystem",
    "memory": "memory",
}
REVERSED = frozenset({"redis"})  # brokers that take their lowest message priority first


def transport(broker_url: str) -> str:
    """The kind of broker a URL names: amqp, redis, filesystem or memory."""
    scheme = urlsplit(broker_url).scheme
    if scheme not in TRANSPORTS:
        raise ValueError(f"no priority mapping for {scheme or broker_url!r} brokers; known: {', '.join(TRANSPORTS)}")
    return TRANSPORTS[scheme]


def message_priority(priority: int, broker_url: str) -> int:
    """The message priority that makes the broker at ``broker_url`` honour a platform priority."""
    if priority not in LEVELS:
        raise ValueError(f"a priority is {LOWEST} to {MOST_URGENT} ({MOST_URGENT} most urgent), not {priority!r}")
    if transport(broker_url) in REVERSED:
        return MOST_URGENT - priority
    return priority


def redis_transport_options() -> dict:
    """What the Redis transport needs to honour priorities (merged into its other options).

    The separator keeps kombu's default: the lists of messages already waiting are named with it.
    The queue order strategy stays round robin: message priority already comes first across
    queues (BRPOP lists every queue's step 0 before any step 1); the strategy only orders
    queues within a step, and "priority" there would starve the later queues of a worker.
    """
    return {"priority_steps": REDIS_PRIORITY_STEPS, "queue_order_strategy": "round_robin"}


class QueueNeedsMigration(Exception):
    """A RabbitMQ queue exists with other arguments than the platform declares (no x-max-priority)."""

    def __init__(self, queue: str, detail: str) -> None:
        self.queue = queue
        super().__init__(
            f"RabbitMQ queue {queue!r} was declared without priorities ({detail}); stop the workers that "
            f"consume it and run `{MIGRATE_COMMAND} {queue}` (or with no queue names, every task queue)"
        )


class PriorityQueue(Queue):
    """A task queue that delivers its most urgent messages first (RabbitMQ: ``x-max-priority``)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["queue_arguments"] = {**QUEUE_ARGUMENTS, **(kwargs.get("queue_arguments") or {})}
        super().__init__(*args, **kwargs)

    def queue_declare(self, *args, **kwargs):
        try:
            return super().queue_declare(*args, **kwargs)
        except PreconditionFailed as exc:
            raise QueueNeedsMigration(self.name, exc.reply_text) from None
