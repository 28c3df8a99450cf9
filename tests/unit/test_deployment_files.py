"""docker-compose.yml, Procfile and README agree with the settings. No Docker engine
runs here, so the compose file's structure is what is checked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from config.env import VARIABLES

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = {"migrate", "web", "worker", "beat", "flower"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def command_of(service: dict) -> str:
    command = service["command"]
    return command if isinstance(command, str) else " ".join(map(str, command))


def test_compose_has_every_service_with_a_healthcheck(compose):
    services = compose["services"]

    assert set(services) == {"postgres", "redis", *APP_SERVICES}
    for name in set(services) - {"migrate"}:
        assert "healthcheck" in services[name], name


def test_compose_app_services_use_only_declared_variables(compose):
    for name in APP_SERVICES:
        undeclared = set(compose["services"][name]["environment"]) - set(VARIABLES)
        assert not undeclared, f"{name} sets {undeclared}, which config/env.py does not declare"


def test_compose_selects_distributed_mode_on_its_own_services(compose):
    environment = compose["services"]["web"]["environment"]

    assert environment["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in environment["DATABASE_URL"]
    assert environment["CELERY_BROKER_URL"].startswith("redis://redis:6379/")
    assert environment["REDIS_URL"].startswith("redis://redis:6379/")
    assert environment["CELERY_BROKER_URL"] != environment["REDIS_URL"]


def test_compose_worker_scales_and_consumes_every_queue(compose):
    worker = compose["services"]["worker"]

    assert "container_name" not in worker and "ports" not in worker
    assert f"-Q {','.join(settings.QUEUES)}" in command_of(worker)
    assert "-A config worker" in command_of(worker)


def test_compose_starts_apps_after_migrations_and_healthy_services(compose):
    for name in APP_SERVICES - {"migrate"}:
        depends = compose["services"][name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == depends["redis"]["condition"] == "service_healthy"
    assert "bootstrap" in command_of(compose["services"]["migrate"])


def test_compose_runs_a_leading_and_a_standby_beat_and_flower_with_auth(compose):
    assert compose["services"]["beat"]["deploy"]["replicas"] == 2
    assert "FLOWER_BASIC_AUTH" in compose["services"]["flower"]["environment"]


def test_procfile_runs_the_same_processes():
    entries = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())

    assert set(entries) == {"release", "web", "worker", "beat", "flower"}
    assert f"-Q {','.join(settings.QUEUES)}" in entries["worker"]
    assert entries["web"].startswith("gunicorn config.wsgi")


def test_readme_documents_every_variable_and_starts_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()

    undocumented = [name for name in VARIABLES if f"`{name}`" not in readme]
    assert not undocumented, f"README.md does not document {undocumented}"
    first_commands = re.findall(r"^make \w+", readme, flags=re.M)[:2]
    assert first_commands == ["make run", "make test"]
