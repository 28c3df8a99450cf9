"""A real beat process reads schedules from the database, sends due tasks to a real
worker, and records its ticks for the health check."""

from __future__ import annotations

import json

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from django_celery_results.models import TaskResult

from scheduling.models import BeatHeartbeat
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_beat_sends_a_database_schedule_to_a_worker_and_health_is_all_ok(start_worker, start_beat, client):
    every_second = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(
        name="probe every second", task="scheduling.probe", interval=every_second, kwargs=json.dumps({"token": "beat"})
    )
    start_worker()
    beat = start_beat()

    ran = wait_for(
        lambda: TaskResult.objects.filter(periodic_task_name="probe every second", status="SUCCESS").first(),
        timeout=60,
        what="beat's task to run",
    )
    wait_for(BeatHeartbeat.objects.exists, timeout=30, what="beat's heartbeat")

    assert json.loads(ran.result)["token"] == "beat"
    response = client.get("/api/v1/health")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok", body
    assert body["mode"] == "distributed"
    assert beat.stop() == 0


def test_health_reports_a_missing_worker_without_taking_the_api_down(client):
    response = client.get("/api/v1/health")

    body = response.json()
    assert response.status_code == 200
    assert body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"] and body["checks"]["cache"]["ok"]
    assert body["checks"]["workers"]["ok"] is False
