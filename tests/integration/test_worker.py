"""A real worker process consumes from the broker, on every queue, and survives the
ways processes die: a killed pool process, SIGTERM mid-task, kill -9 of the worker."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import pytest
from celery.result import AsyncResult
from django.conf import settings
from django_celery_results.models import TaskResult

from config.celery import app
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def send_probe(broker_url: str, *, queue: str = "default", hold: float = 0) -> AsyncResult:
    with app.connection_for_write(broker_url) as connection:
        return app.send_task(
            "scheduling.probe",
            kwargs={"token": uuid.uuid4().hex, "hold": hold},
            queue=queue,
            routing_key=queue,
            connection=connection,
        )


def started_pid(result: AsyncResult) -> int:
    """The pool process running the task, from its STARTED state (task_track_started)."""
    row = wait_for(
        lambda: TaskResult.objects.filter(task_id=result.id, status="STARTED").first(),
        timeout=30,
        what="the task to start",
    )
    return json.loads(row.result)["pid"]


def test_real_worker_process_consumes_every_queue(broker_url, start_worker):
    worker = start_worker(broker=broker_url)

    results = {queue: send_probe(broker_url, queue=queue) for queue in settings.QUEUES}

    for queue, result in results.items():
        answer = result.get(timeout=30)
        assert answer["worker"] == worker.nodename
        assert answer["queue"] == queue
        assert answer["pid"] != os.getpid()


def test_task_survives_its_pool_process_being_killed(start_worker):
    start_worker(concurrency=1)
    result = send_probe(settings.CELERY_BROKER_URL, hold=3)
    doomed = started_pid(result)

    os.kill(doomed, signal.SIGKILL)  # acks_late + reject_on_worker_lost: the message goes back

    answer = result.get(timeout=60)
    assert answer["pid"] != doomed


def test_sigterm_lets_the_running_task_finish(broker_url, start_worker):
    worker = start_worker(broker=broker_url)
    result = send_probe(broker_url, hold=2)
    started_pid(result)

    exit_code = worker.stop(timeout=30)

    assert exit_code == 0
    assert TaskResult.objects.get(task_id=result.id).status == "SUCCESS"


def test_kill_9_of_a_worker_hands_its_task_to_another(start_worker):
    # Short limits so the broker's redelivery of the unacknowledged message is quick.
    short = {
        "CELERY_TASK_SOFT_TIME_LIMIT": "3",
        "CELERY_TASK_TIME_LIMIT": "4",
        "CELERY_VISIBILITY_TIMEOUT": "6",
        "NOTIFY_RETRY_BACKOFF_MAX": "5",  # below the visibility timeout, as the settings insist
    }
    first = start_worker(env=short)
    result = send_probe(settings.CELERY_BROKER_URL, hold=2)
    started_pid(result)

    first.kill()
    # Redis redelivers an unacknowledged message once its visibility timeout has passed;
    # a worker scans for such messages when it starts (and every few minutes after).
    time.sleep(7)
    second = start_worker(env=short)

    answer = result.get(timeout=90)
    assert answer["worker"] == second.nodename


def test_cold_shutdown_requeues_the_running_task_at_once(broker_url, start_worker):
    first = start_worker(broker=broker_url)
    result = send_probe(broker_url, hold=5)
    started_pid(result)

    first.send(signal.SIGQUIT)  # cold shutdown: cancel running tasks, requeue their messages
    first.process.wait(30)
    second = start_worker(broker=broker_url)

    answer = result.get(timeout=30)  # well inside Redis's visibility timeout
    assert answer["worker"] == second.nodename
