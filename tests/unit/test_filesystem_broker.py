"""The embedded broker: messages appear whole or not at all, each is claimed once, and
leftovers of gone consumers are cleaned up without touching task queues."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from kombu import Connection, Exchange, Queue

from config import filesystem_broker

TASK_QUEUES = ("default", "billing")


@pytest.fixture
def options(tmp_path) -> dict:
    folders = {name: tmp_path / name for name in ("queues", "claims", "control")}
    for folder in folders.values():
        folder.mkdir()
    return {
        "data_folder_in": str(folders["queues"]),
        "data_folder_out": str(folders["queues"]),
        "processed_folder": str(folders["claims"]),
        "control_folder": str(folders["control"]),
    }


def connection(options: dict) -> Connection:
    return Connection("filesystem://localhost//", transport=filesystem_broker.Transport, transport_options=options)


def test_every_message_is_delivered_once_to_competing_consumers(options):
    queue = Queue("default", Exchange("default"), routing_key="default")
    with connection(options) as conn:
        producer = conn.Producer()
        for n in range(300):
            producer.publish({"n": n}, exchange=queue.exchange, routing_key="default", declare=[queue])

    def drain(_) -> list[int]:
        got = []
        with connection(options) as conn:
            simple = conn.SimpleQueue(queue)
            while True:
                try:
                    message = simple.get(block=False)
                except simple.Empty:
                    return got
                got.append(message.payload["n"])
                message.ack()

    with ThreadPoolExecutor(max_workers=4) as pool:
        received = [n for part in pool.map(drain, range(4)) for n in part]

    assert sorted(received) == list(range(300))
    assert os.listdir(options["processed_folder"]) == []


def test_a_message_is_never_visible_half_written(options, monkeypatch):
    seen_while_writing = []
    real_replace = os.replace

    def watching_replace(src, dst):
        seen_while_writing.append(sorted(os.listdir(options["data_folder_in"])))
        real_replace(src, dst)

    monkeypatch.setattr(filesystem_broker.os, "replace", watching_replace)
    with connection(options) as conn:
        conn.default_channel._put("default", {"body": "x"})

    assert seen_while_writing == [[]]
    assert len(os.listdir(options["data_folder_in"])) == 1


def test_reset_drops_leftover_bindings_and_messages_but_keeps_tasks(options):
    queues, control = options["data_folder_in"], options["control_folder"]
    for name in ("1_a.default.msg", "2_b.celeryev.flower.msg", "3_c.worker1@vm.celery.pidbox.msg"):
        open(os.path.join(queues, name), "w").close()
    for exchange in ("default", "celeryev", "reply.celery.pidbox"):
        open(os.path.join(control, f"{exchange}.exchange"), "w").close()
    open(os.path.join(options["processed_folder"], "4_d.default.msg.part"), "w").close()

    removed = filesystem_broker.reset_transient_state(options, TASK_QUEUES)

    assert removed == 2
    assert os.listdir(queues) == ["1_a.default.msg"]
    assert os.listdir(control) == ["default.exchange"]
    assert os.listdir(options["processed_folder"]) == []


def test_prune_removes_only_old_event_and_reply_messages(options):
    queues = options["data_folder_in"]
    old, fresh = time.time() - 600, time.time()
    for name, when in (("1.celeryev.x.msg", old), ("2.celeryev.x.msg", fresh), ("3.billing.msg", old)):
        path = os.path.join(queues, name)
        open(path, "w").close()
        os.utime(path, (when, when))

    removed = filesystem_broker.prune_transient_messages(options, TASK_QUEUES)

    assert removed == 1
    assert sorted(os.listdir(queues)) == ["2.celeryev.x.msg", "3.billing.msg"]
