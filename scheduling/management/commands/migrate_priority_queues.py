"""Give RabbitMQ task queues declared before priorities their x-max-priority, losing no message.

RabbitMQ cannot change a queue's arguments: a queue created without x-max-priority has to
be deleted and declared again, and until then every worker or sender that declares it
fails with PRECONDITION_FAILED (``scheduling.priorities.QueueNeedsMigration`` names this
command). For each queue that needs it:

1. wait until nothing consumes the queue: a message a worker holds unacknowledged would
   return to a queue about to be deleted, so its workers must be stopped;
2. move its messages one by one to a durable holding queue ``<queue>.priority-migration``,
   acknowledging each only after RabbitMQ has confirmed its copy;
3. delete the queue only if it is empty and unused (RabbitMQ checks both at once; a
   message or a consumer that arrived meanwhile sends it back to 1) and at once declare it
   with x-max-priority, its exchange and its binding, as a worker does;
4. move the held messages back and delete the holding queue.

A message is never only in this process's memory: killed between a copy and its
acknowledgement, it leaves that message twice, which the job layer tolerates (acks_late:
every task is safe to run twice). Run again after any failure, it resumes where it stopped
(a holding queue that exists is emptied back); on queues that have priorities it does
nothing.

One window remains: a process still running the code from before priorities publishes
straight to the queue, and RabbitMQ drops what it publishes in the milliseconds between
the delete and the declare. Stop (or restart on the new code) web, beat and workers before
migrating; new code never publishes to a queue without priorities.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from amqp import Message
from amqp.exceptions import NotFound, PreconditionFailed
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from kombu import Connection, Exchange

from scheduling import priorities

HOLDING_SUFFIX = ".priority-migration"
POLL_SECONDS = 0.5


class Command(BaseCommand):
    help = (
        "Declare RabbitMQ task queues created before priorities again with x-max-priority, moving their "
        "messages aside and back. Stop the workers first; safe to run again, it resumes or does nothing."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("queues", nargs="*", help="queue names (default: every task queue in the settings)")
        parser.add_argument("--broker", help="the broker's URL (default: CELERY_BROKER_URL)")
        parser.add_argument(
            "--wait", type=float, default=300, help="seconds to wait for a queue's consumers to stop (default 300)"
        )

    def handle(self, *args, queues: list[str], broker: str | None, wait: float, **options) -> None:
        url = broker or settings.CELERY_BROKER_URL
        try:
            kind = priorities.transport(url)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if kind != "amqp":
            self.stdout.write(f"the broker is {kind}: its queues need no migration for priorities")
            return
        declared = {queue.name: queue for queue in settings.CELERY_TASK_QUEUES}
        connection = Connection(url, connect_timeout=settings.CELERY_BROKER_CONNECTION_TIMEOUT)
        where = connection.as_uri()  # without the password
        try:
            with connection:
                connection.connect()
                for name in queues or declared:
                    # A queue outside the settings is one Celery made on demand: exchange and key of its name.
                    queue = declared.get(name) or priorities.PriorityQueue(name, Exchange(name), routing_key=name)
                    QueueMigration(connection, queue, self.stdout.write, wait).run()
        except (*connection.connection_errors, *connection.channel_errors) as exc:
            raise CommandError(
                f"RabbitMQ at {where}: {exc or type(exc).__name__}; nothing is lost, run this again to resume"
            ) from None


class QueueMigration:
    """One queue's migration, resumable from wherever a previous one stopped."""

    def __init__(self, connection: Connection, queue: priorities.PriorityQueue, say, wait: float) -> None:
        self.connection = connection
        self.queue = queue
        self.name = queue.name
        self.holding = f"{queue.name}{HOLDING_SUFFIX}"
        self.say = say
        self.wait = wait

    def run(self) -> None:
        held = self._counts(self.holding)
        if self._has_priorities():
            if held is None:
                self.say(f"{self.name}: has priorities (x-max-priority {priorities.MOST_URGENT}); nothing to do")
                return
            self.say(f"{self.name}: resuming; {held[0]} message(s) wait in {self.holding}")
        else:
            self.say(f"{self.name}: declared without priorities; migrating it")
            with self._channel() as channel:
                channel.queue_declare(self.holding, durable=True, auto_delete=False)
            moved = self._empty_and_delete()
            self.say(f"{self.name}: moved {moved} message(s) to {self.holding} and deleted the queue")
            self._declare()
            self.say(f"{self.name}: declared with x-max-priority {priorities.MOST_URGENT}")
        moved = self._move(self.holding, self.name)
        with self._channel() as channel:
            channel.queue_delete(self.holding, if_unused=True, if_empty=True)
        self.say(f"{self.name}: moved {moved} message(s) back; done")

    def _has_priorities(self) -> bool:
        """Declare the queue as a worker would: creates it if missing, fails if it lacks priorities."""
        try:
            self._declare()
        except priorities.QueueNeedsMigration:
            return False
        return True

    def _declare(self) -> None:
        with self._channel() as channel:
            self.queue.bind(channel).declare()

    def _empty_and_delete(self) -> int:
        moved = 0
        while True:
            self._wait_for_no_consumers()
            moved += self._move(self.name, self.holding)
            try:
                with self._channel() as channel:
                    channel.queue_delete(self.name, if_unused=True, if_empty=True)
                return moved
            except PreconditionFailed:
                continue  # a message or a consumer arrived since: again

    def _wait_for_no_consumers(self) -> None:
        deadline = time.monotonic() + self.wait
        told = False
        while (consumers := self._counts(self.name)[1]) > 0:
            if time.monotonic() > deadline:
                raise CommandError(
                    f"{self.name} still has {consumers} consumer(s) after {self.wait:g}s; stop the workers that "
                    "read it and run this again"
                )
            if not told:
                self.say(f"{self.name}: waiting for its {consumers} consumer(s) to go; stop the workers that read it")
                told = True
            time.sleep(POLL_SECONDS)

    def _move(self, source: str, target: str) -> int:
        """Move every message from one queue to another; each is acknowledged once its copy is confirmed."""
        moved = 0
        with self._channel() as channel:
            while (message := channel.basic_get(source, no_ack=False)) is not None:
                properties = dict(message.properties)
                # What waited from before priorities had none: it is as normal as a task sent now without one.
                properties.setdefault("priority", priorities.NORMAL)
                # mandatory: should the target vanish, RabbitMQ returns the copy (an error here) instead of dropping it.
                channel.basic_publish_confirm(Message(message.body, **properties), "", target, mandatory=True)
                channel.basic_ack(message.delivery_tag)
                moved += 1
        return moved

    def _counts(self, name: str) -> tuple[int, int] | None:
        """(messages, consumers) of a queue, or None if there is no such queue."""
        try:
            with self._channel() as channel:
                _, messages, consumers = channel.queue_declare(name, passive=True)
        except NotFound:
            return None
        return messages, consumers

    @contextmanager
    def _channel(self) -> Iterator:
        # A refused declaration or deletion closes its channel: each step gets a fresh one.
        channel = self.connection.channel()
        channel.auto_decode = False  # bodies move as the bytes they are
        try:
            yield channel
        finally:
            if channel.is_open:
                channel.close()
