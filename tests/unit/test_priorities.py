"""Priorities: 9 is the most urgent everywhere, mapped to what each broker reads as its
most urgent, and the settings that make each broker honour it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from amqp.exceptions import PreconditionFailed
from django.core.management import call_command
from django.core.management.base import CommandError
from kombu import Connection, Exchange, Queue

from config import env, filesystem_broker
from config.celery import app
from notifications import tasks as notification_tasks
from scheduling import priorities
from scheduling import tasks as scheduling_tasks
from scheduling.models import JobDefinition
from scheduling.services import runs

ROOT = Path(__file__).resolve().parents[2]
RABBITMQ = "amqp://guest:guest@mq:5672//"
REDIS = "redis://r:6379/0"


def delivery_order(broker_url: str) -> list[int]:
    """Platform priorities in the order the broker delivers their messages."""
    if priorities.transport(broker_url) in priorities.REVERSED:
        return sorted(priorities.LEVELS, key=lambda p: priorities.message_priority(p, broker_url))
    return sorted(priorities.LEVELS, key=lambda p: -priorities.message_priority(p, broker_url))


@pytest.mark.parametrize("broker_url", [RABBITMQ, "amqps://mq//", REDIS, "rediss://r/0", "filesystem://localhost//"])
def test_nine_is_delivered_first_and_zero_last_on_every_broker(broker_url):
    assert delivery_order(broker_url) == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]


def test_rabbitmq_reads_the_platform_priority_as_it_is():
    assert [priorities.message_priority(p, RABBITMQ) for p in priorities.LEVELS] == list(range(10))


def test_redis_reads_it_the_other_way_round_each_level_on_a_step_of_its_own():
    mapped = [priorities.message_priority(p, REDIS) for p in priorities.LEVELS]

    assert mapped == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    assert sorted(mapped) == priorities.REDIS_PRIORITY_STEPS  # no two levels share a Redis list


@pytest.mark.parametrize("priority", [-1, 10, 99, None, "9"])
def test_a_priority_outside_zero_to_nine_is_refused(priority):
    with pytest.raises(ValueError, match="9 most urgent"):
        priorities.message_priority(priority, RABBITMQ)


def test_a_broker_without_a_mapping_is_refused():
    with pytest.raises(ValueError, match="no priority mapping for 'sqs'"):
        priorities.message_priority(5, "sqs://key:secret@")


@pytest.mark.parametrize(("broker_url", "sent"), [(RABBITMQ, 9), (REDIS, 0), ("memory://", 9)])
def test_a_jobs_tasks_carry_its_priority_mapped_for_the_configured_broker(settings, broker_url, sent):
    settings.CELERY_BROKER_URL = broker_url
    definition = JobDefinition(code="GL_DAILY_CLOSE", queue="ledger", priority=9, time_limit=600)

    assert runs.task_options(definition)["priority"] == sent


# --- Settings, per broker ---------------------------------------------------------------------


def celery_settings(tmp_path, **variables) -> dict:
    """The Celery settings a fresh interpreter computes with exactly these variables set."""
    environment = {k: v for k, v in os.environ.items() if k not in env.VARIABLES}
    environment.update(COUNTINGHOUSE_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="config.settings", **variables)
    code = (
        "import json; from django.conf import settings as s; print(json.dumps({"
        "'options': s.CELERY_BROKER_TRANSPORT_OPTIONS, 'default_priority': s.CELERY_TASK_DEFAULT_PRIORITY, "
        "'max_priority': s.CELERY_TASK_QUEUE_MAX_PRIORITY, "
        "'queues': {q.name: [type(q).__name__, q.queue_arguments] for q in s.CELERY_TASK_QUEUES}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


DISTRIBUTED = {"DATABASE_URL": "postgres://db/x", "REDIS_URL": "redis://cache/1", "SECRET_KEY": "s"}


def test_on_redis_every_level_has_its_own_list_and_unprioritised_tasks_are_normal(tmp_path):
    found = celery_settings(tmp_path, **DISTRIBUTED, CELERY_BROKER_URL=REDIS)

    assert found["options"]["priority_steps"] == list(range(10))
    assert found["options"]["queue_order_strategy"] == "round_robin"
    assert "sep" not in found["options"]  # kombu's own: the lists already waiting are named with it
    assert found["options"]["visibility_timeout"] > 0  # merged with, not instead of, the other options
    assert found["default_priority"] == 4  # normal (5), the Redis way round


def test_on_rabbitmq_every_task_queue_is_a_priority_queue_up_to_nine(tmp_path):
    limits = {"CELERY_TASK_SOFT_TIME_LIMIT": "1500", "CELERY_TASK_TIME_LIMIT": "1700"}
    found = celery_settings(tmp_path, **DISTRIBUTED, **limits, CELERY_BROKER_URL=RABBITMQ)

    assert set(found["queues"]) == {"default", "billing", "receivables", "ledger", "notifications"}
    for kind, arguments in found["queues"].values():
        assert (kind, arguments) == ("PriorityQueue", {"x-max-priority": 9})
    assert found["max_priority"] == 9  # queues Celery makes on demand too
    assert found["default_priority"] == 5


def test_the_embedded_broker_keeps_its_options_and_reads_priorities_as_they_are(tmp_path):
    found = celery_settings(tmp_path)

    assert "priority_steps" not in found["options"]
    assert found["options"]["polling_interval"] > 0
    assert found["default_priority"] == 5


@pytest.mark.parametrize(
    ("task", "args", "queue"),
    [(scheduling_tasks.deliver_alert, (1,), "default"), (notification_tasks.deliver, ("email", [1]), "notifications")],
)
def test_a_task_sent_without_a_priority_gets_the_normal_one_for_the_broker(settings, task, args, queue):
    with app.connection_for_write() as connection:
        inbox = connection.SimpleQueue(app.amqp.queues[queue])
        inbox.clear()

        task.apply_async(args, connection=connection)
        message = inbox.get(timeout=1)
        message.ack()
        inbox.close()

    assert message.properties["priority"] == settings.CELERY_TASK_DEFAULT_PRIORITY


# --- Queues and the embedded broker ---------------------------------------------------------------


def test_a_queue_from_before_priorities_names_the_command_that_migrates_it(monkeypatch):
    refused = PreconditionFailed("PRECONDITION_FAILED - inequivalent arg 'x-max-priority' for queue 'billing'")
    monkeypatch.setattr(Queue, "queue_declare", lambda self, *a, **k: (_ for _ in ()).throw(refused))
    queue = priorities.PriorityQueue("billing", Exchange("billing"), routing_key="billing")

    with pytest.raises(priorities.QueueNeedsMigration) as raised:
        queue.queue_declare()

    assert "'billing'" in str(raised.value)
    assert "inequivalent arg 'x-max-priority'" in str(raised.value)
    assert "python manage.py migrate_priority_queues billing" in str(raised.value)


def test_a_priority_queue_copied_for_a_channel_keeps_its_class_and_arguments():
    queue = priorities.PriorityQueue("ledger", Exchange("ledger"), routing_key="ledger")

    with Connection("memory://") as connection:
        bound = queue.bind(connection.default_channel)

    assert type(bound) is priorities.PriorityQueue
    assert bound.queue_arguments == {"x-max-priority": 9}


@pytest.fixture
def broker(tmp_path) -> tuple[dict, Queue]:
    """The embedded broker's folders and a queue of its own: kombu keeps the bindings it has
    declared for the whole process, so a name another test bound is never bound in these folders."""
    folders = {name: tmp_path / name for name in ("queues", "claims", "control")}
    for folder in folders.values():
        folder.mkdir()
    options = {
        "data_folder_in": str(folders["queues"]),
        "data_folder_out": str(folders["queues"]),
        "processed_folder": str(folders["claims"]),
        "control_folder": str(folders["control"]),
    }
    name = f"priorities_{uuid.uuid4().hex}"
    return options, Queue(name, Exchange(name), routing_key=name)


def embedded(folders: dict) -> Connection:
    return Connection("filesystem://localhost//", transport=filesystem_broker.Transport, transport_options=folders)


def publish(broker: tuple[dict, Queue], sent: list[tuple[str, int | None]]) -> None:
    """Publish (name, message priority) pairs, in order, through the embedded broker."""
    folders, queue = broker
    with embedded(folders) as connection:
        producer = connection.Producer()
        for name, priority in sent:
            producer.publish({"name": name}, routing_key=queue.name, declare=[queue], priority=priority)


def receive(broker: tuple[dict, Queue]) -> list[str]:
    """The names of every waiting message, in the order the embedded broker hands them out."""
    folders, queue = broker
    with embedded(folders) as connection:
        inbox = connection.SimpleQueue(queue)
        received = []
        while True:
            try:
                message = inbox.get(block=False)
            except inbox.Empty:
                return received
            received.append(message.payload["name"])
            message.ack()


def test_the_embedded_broker_hands_out_the_most_urgent_first_then_the_oldest(broker):
    publish(broker, [("low-1", 1), ("normal-1", 5), ("urgent", 9), ("low-2", 1), ("normal-2", 5)])

    assert receive(broker) == ["urgent", "normal-1", "normal-2", "low-1", "low-2"]


def test_the_embedded_broker_hands_out_messages_from_before_priorities_first(broker):
    folders, queue = broker
    publish(broker, [("waited", 1)])
    (message,) = Path(folders["data_folder_in"]).iterdir()
    message.rename(message.with_name(f"123456_0b7e.{queue.name}.msg"))  # named as before priorities
    publish(broker, [("urgent", 9)])

    assert receive(broker) == ["waited", "urgent"]


def test_the_migration_command_leaves_brokers_other_than_rabbitmq_alone(capsys):
    call_command("migrate_priority_queues", "--broker", REDIS)

    assert "the broker is redis: its queues need no migration" in capsys.readouterr().out


def test_the_migration_command_refuses_a_broker_it_does_not_know_in_one_line():
    with pytest.raises(CommandError, match="no priority mapping for 'sqs'"):
        call_command("migrate_priority_queues", "--broker", "sqs://key:secret@")
