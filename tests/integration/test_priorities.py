"""Priorities on real workers: with the worker busy, a high-priority run starts before the
low-priority runs queued ahead of it, on Redis and on RabbitMQ; and RabbitMQ queues from
before priorities are migrated without losing a message."""

from __future__ import annotations

import datetime
import io
import uuid

import kombu.pools
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from kombu import Connection, Exchange, Queue

from config.celery import app
from scheduling import priorities
from scheduling.choices import RunStatus
from scheduling.models import JobDefinition, JobRun
from scheduling.services import runs
from tests.helpers import wait_for

DAY = datetime.date(2026, 11, 2)
LOW, HIGH = 1, 9
LOW_RUNS = 4
HOLDING = ".priority-migration"


@pytest.fixture
def send_through(settings, monkeypatch):
    """Make this process send to a broker as a process configured with it would: priorities
    mapped for it, messages through it."""

    def point(broker_url: str) -> None:
        settings.CELERY_BROKER_URL = broker_url  # what runs.task_options maps priorities for
        monkeypatch.setenv("CELERY_BROKER_URL", broker_url)  # Celery reads the variable before its settings
        fresh_pools()

    yield point
    fresh_pools()


def fresh_pools() -> None:
    """Drop the connection and producer pools: the next send makes them anew, for the broker
    then configured. kombu keeps producer pools in a registry shared by the whole process, so
    closing one in place would close it for every later test too."""
    kombu.pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


def ask(code: str, key: str, priority: int | None = None, **params) -> JobRun:
    definition = JobDefinition.objects.get(code=code)
    if priority is not None:
        # As an operator sets it in the admin: a run's tasks carry its job's priority when sent.
        JobDefinition.objects.filter(pk=definition.pk).update(priority=priority)
        definition.refresh_from_db()
    run, _ = runs.request_run(definition, business_date=DAY, run_key=key, params=params)
    return run


def finished(run: JobRun) -> JobRun:
    def done() -> bool:
        run.refresh_from_db()
        return run.is_finished

    wait_for(done, timeout=60, what=f"run {run.run_key} to finish")
    return run


@pytest.mark.django_db(transaction=True)
def test_a_high_priority_run_starts_before_low_priority_runs_queued_ahead_of_it(broker_url, send_through, start_worker):
    start_worker(broker=broker_url, concurrency=1)
    send_through(broker_url)
    busy = ask("TEST_SLOW", "busy", hold=60.0)
    wait_for(lambda: JobRun.objects.get(pk=busy.pk).status == RunStatus.RUNNING, what="the busy run to start")

    lows = [ask("TEST_WRITE", f"low-{n}", priority=LOW) for n in range(LOW_RUNS)]
    high = ask("TEST_WRITE", "high", priority=HIGH)
    runs.cancel(busy)  # the worker is free once the busy run stops at its next checkpoint

    lows, high = [finished(run) for run in lows], finished(high)
    assert [run.status for run in [*lows, high]] == [RunStatus.SUCCEEDED] * (LOW_RUNS + 1)
    order = [run.run_key for run in sorted([*lows, high], key=lambda run: run.started_at)]
    assert high.started_at < min(low.started_at for low in lows), f"started in the order {order}"


# --- RabbitMQ: queues from before priorities ----------------------------------------------------------


@pytest.fixture
def old_queue(rabbitmq_with_priorities):
    """A throw-away queue declared as before priorities (a plain queue, no x-max-priority)."""
    url, name = rabbitmq_with_priorities, f"test-priorities-{uuid.uuid4().hex[:8]}"
    with Connection(url) as connection:
        Queue(name, Exchange(name), routing_key=name)(connection.default_channel).declare()
        yield url, name
        channel = connection.channel()
        for queue in (name, f"{name}{HOLDING}"):
            channel.queue_delete(queue)
        channel.exchange_delete(name)


def publish(url: str, queue: str, messages: list[tuple[str, int | None]]) -> None:
    """Publish as Celery does: straight to the queue, persistent, with a header to carry over."""
    with Connection(url) as connection:
        producer = connection.Producer()
        for name, priority in messages:
            producer.publish({"name": name}, routing_key=queue, priority=priority, headers={"task": name})


def drain(url: str, queue: str) -> list[tuple[str, str]]:
    """(body's name, header) of every message, in the order RabbitMQ hands them out."""
    with Connection(url) as connection:
        channel = connection.channel()
        got = []
        while (message := channel.basic_get(queue, no_ack=True)) is not None:
            got.append((channel.message_to_python(message).decode()["name"], message.headers["task"]))
        return got


def migrate(url: str, *queues: str, wait: float = 10) -> str:
    out = io.StringIO()
    call_command("migrate_priority_queues", *queues, "--broker", url, "--wait", str(wait), stdout=out)
    return out.getvalue()


def priority_queue(name: str) -> priorities.PriorityQueue:
    return priorities.PriorityQueue(name, Exchange(name), routing_key=name)


def declare_with_priorities(url: str, name: str) -> None:
    with Connection(url) as connection:
        priority_queue(name)(connection.default_channel).declare()


@pytest.mark.rabbitmq
def test_migrating_an_old_queue_keeps_every_message_and_then_honours_priorities(old_queue):
    url, name = old_queue
    publish(url, name, [("none", None), ("low", 1), ("urgent", 9), ("normal", 5), ("lowest", 0)])

    first = migrate(url, name)
    second = migrate(url, name)

    assert f"{name}: moved 5 message(s) to {name}{HOLDING}" in first
    assert f"{name}: moved 5 message(s) back; done" in first
    assert f"{name}: has priorities (x-max-priority 9); nothing to do" in second
    declare_with_priorities(url, name)  # a worker's declaration is accepted now
    # A message from before priorities without one counts as normal, as a task sent now would.
    assert drain(url, name) == [
        ("urgent", "urgent"),
        ("none", "none"),
        ("normal", "normal"),
        ("low", "low"),
        ("lowest", "lowest"),
    ]


@pytest.mark.rabbitmq
def test_an_interrupted_migration_resumes_and_loses_nothing(old_queue):
    url, name = old_queue
    # Killed after moving three messages aside: two still wait in the old queue.
    publish(url, name, [("left-1", 5), ("left-2", 5)])
    with Connection(url) as connection:
        connection.default_channel.queue_declare(f"{name}{HOLDING}", durable=True, auto_delete=False)
    publish(url, f"{name}{HOLDING}", [("held-1", 5), ("held-2", 9), ("held-3", 1)])

    migrate(url, name)

    assert sorted(drain(url, name)) == sorted((n, n) for n in ("left-1", "left-2", "held-1", "held-2", "held-3"))
    with Connection(url) as connection, pytest.raises(connection.channel_errors):
        connection.default_channel.queue_declare(f"{name}{HOLDING}", passive=True)


@pytest.mark.rabbitmq
def test_migration_waits_for_the_workers_to_stop_and_gives_up_in_one_line(old_queue):
    url, name = old_queue
    publish(url, name, [("waiting", 5)])
    refused = f"{name} still has 1 consumer\\(s\\) after 1s; stop the workers"
    with Connection(url) as worker:
        # A consumer that never acknowledges: a worker still running the code from before priorities.
        consumer = worker.Consumer(Queue(name, Exchange(name), routing_key=name), callbacks=[])
        with consumer, pytest.raises(CommandError, match=refused):
            migrate(url, name, wait=1)

    assert drain(url, name) == [("waiting", "waiting")]  # handed back, untouched


@pytest.mark.rabbitmq
def test_a_sender_meeting_an_old_queue_is_told_what_to_run(old_queue):
    url, name = old_queue

    with Connection(url) as connection, pytest.raises(priorities.QueueNeedsMigration) as raised:
        connection.Producer().publish({}, routing_key=name, declare=[priority_queue(name)])

    assert f"run `python manage.py migrate_priority_queues {name}`" in str(raised.value)
