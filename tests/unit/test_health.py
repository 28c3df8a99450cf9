import datetime
from unittest import mock

import pytest
from django.utils import timezone

from scheduling import health
from scheduling.models import BeatHeartbeat

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def worker_answers():
    with mock.patch.object(health.current_app.control, "ping", return_value=[{"w1@host": {"ok": "pong"}}]) as ping:
        yield ping


def beat_ticked(seconds_ago: float) -> BeatHeartbeat:
    at = timezone.now() - datetime.timedelta(seconds=seconds_ago)
    return BeatHeartbeat.objects.create(hostname="host:1", started_at=at, last_tick_at=at)


def test_everything_up_is_ok(staff_client, worker_answers):
    beat_ticked(3)

    response = staff_client.get("/api/v1/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "cache", "workers", "beat"}
    assert all(check["ok"] and check["latency_ms"] >= 0 for check in body["checks"].values())
    assert body["checks"]["workers"]["data"] == {"workers": ["w1@host"]}


def test_no_worker_and_no_beat_is_degraded_not_down(staff_client):
    response = staff_client.get("/api/v1/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["workers"]["ok"] is False
    assert "no worker answered" in body["checks"]["workers"]["detail"]
    assert body["checks"]["beat"]["detail"].endswith("beat has never ticked")


def test_stale_beat_fails_its_check(staff_client, worker_answers, time_machine):
    time_machine.move_to(NOW, tick=False)
    beat_ticked(61)

    check = staff_client.get("/api/v1/health").json()["checks"]["beat"]

    assert check["ok"] is False
    assert "61s ago" in check["detail"]


def test_critical_failure_answers_503(staff_client, worker_answers):
    beat_ticked(1)
    with mock.patch.dict(health.CHECKS, {"cache": mock.Mock(side_effect=ConnectionError("refused"))}):
        response = staff_client.get("/api/v1/health")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failing"
    assert body["checks"]["cache"] == {
        "ok": False,
        "critical": True,
        "latency_ms": body["checks"]["cache"]["latency_ms"],
        "detail": "ConnectionError: refused",
        "data": {},
    }


def test_operators_can_make_workers_critical(client, settings):
    settings.HEALTH_CRITICAL_CHECKS = ["database", "broker", "cache", "workers"]

    response = client.get("/api/v1/health")

    assert response.status_code == 503
    assert response.json()["checks"]["workers"]["critical"] is True


def test_anonymous_callers_see_status_and_latency_but_no_details(client, worker_answers):
    beat_ticked(1)

    body = client.get("/api/v1/health").json()

    assert body["status"] == "ok"
    assert body["checks"]["workers"] == {
        "ok": True,
        "critical": False,
        "latency_ms": body["checks"]["workers"]["latency_ms"],
    }


def test_a_failing_broker_is_not_pinged_through(staff_client):
    with (
        mock.patch.dict(health.CHECKS, {"broker": mock.Mock(side_effect=ConnectionError("refused"))}),
        mock.patch.object(health.current_app.control, "ping") as ping,
    ):
        body = staff_client.get("/api/v1/health").json()

    ping.assert_not_called()
    assert body["checks"]["workers"]["detail"] == "not checked: the broker is failing"
    assert body["status"] == "failing"


def test_health_needs_no_credentials_even_with_a_bad_token(client, worker_answers):
    response = client.get("/api/v1/health", HTTP_AUTHORIZATION="Token not-a-token")

    assert response.status_code == 200


def test_health_command_exits_non_zero_when_critical_check_fails(worker_answers):
    from django.core.management import CommandError, call_command

    with (
        mock.patch.dict(health.CHECKS, {"database": mock.Mock(side_effect=OSError("gone"))}),
        pytest.raises(CommandError, match="critical check is failing"),
    ):
        call_command("health")


def test_health_command_can_require_a_non_critical_check():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="required check failing: beat"):
        call_command("health", require="beat")


def test_health_command_refuses_unknown_check_names():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="unknown checks disk"):
        call_command("health", require="disk")
