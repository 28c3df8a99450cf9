"""The embedded mode as `make run` starts it: web, two workers, beat and Flower on one
SQLite file and the filesystem broker, under load from all sides, with no lock errors,
and all of it stopped by one Ctrl-C."""

from __future__ import annotations

import base64
import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from config import env as config_env
from tests.helpers import wait_for
from tests.processes import ROOT, PlatformProcess, manage

pytestmark = pytest.mark.embedded

PASSWORD = "embedded-test-password"
TASKS = 120
SEND_AND_COLLECT = f"""
import json
from django.conf import settings
from scheduling.tasks import probe
sent = [probe.apply_async(kwargs={{"token": str(i)}}, queue=settings.QUEUES[i % 5]) for i in range({TASKS})]
answers = [r.get(timeout=180) for r in sent]
print("RESULT " + json.dumps({{
    "answered": sum(a["token"] == str(i) for i, a in enumerate(answers)),
    "workers": sorted({{a["worker"] for a in answers}}),
    "ids": [r.id for r in sent],
}}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, auth: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def admin_login(base: str) -> int:
    """A full admin login: the session it creates is a write from the web process."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = opener.open(f"{base}/admin/login/", timeout=30).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token, "username": "admin", "password": PASSWORD, "next": "/admin/"}
    ).encode()
    request = urllib.request.Request(f"{base}/admin/login/", data=form, headers={"Referer": f"{base}/admin/login/"})
    with opener.open(request, timeout=30) as response:
        return response.status if response.url.endswith("/admin/") else 401


@pytest.fixture
def embedded_env(tmp_path) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k not in config_env.VARIABLES}
    environment.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        COUNTINGHOUSE_VAR_DIR=str(tmp_path / "var"),
        ADMIN_PASSWORD=PASSWORD,
        WEB_PORT=str(free_port()),
        FLOWER_PORT=str(free_port()),
        PYTHONUNBUFFERED="1",
    )
    return environment


def test_embedded_platform_runs_everything_at_once_without_lock_errors(embedded_env, tmp_path):
    bootstrap = subprocess.run(manage("bootstrap"), cwd=ROOT, env=embedded_env, capture_output=True, text=True)
    assert bootstrap.returncode == 0, bootstrap.stderr
    platform = PlatformProcess("platform", manage("runplatform", "--workers", "2"), embedded_env, tmp_path).start()
    try:
        platform.wait_for_output("Countinghouse is running", timeout=90)
        try:
            # Generous: at the end of the integration run the machine may still be busy with
            # what earlier tests started and stopped.
            wait_for(lambda: platform.output().count(" ready.") >= 2, timeout=150, what="both workers")
        except AssertionError as error:
            raise AssertionError(f"{error}; the platform printed:\n{platform.output()[-4000:]}") from None
        web = f"http://127.0.0.1:{embedded_env['WEB_PORT']}"
        flower = f"http://127.0.0.1:{embedded_env['FLOWER_PORT']}"

        # Load from every side at once: tasks through two workers, admin logins and
        # health checks through the web, beat ticking — all writing to one SQLite file.
        with ThreadPoolExecutor(max_workers=4) as pool:
            shell = pool.submit(
                subprocess.run,
                manage("shell", "-c", SEND_AND_COLLECT),
                cwd=ROOT,
                env=embedded_env,
                capture_output=True,
                text=True,
                timeout=240,
            )
            logins = list(pool.map(lambda _: admin_login(web), range(20)))
            health_codes = list(pool.map(lambda _: get(f"{web}/api/v1/health")[0], range(20)))
            sent = shell.result()

        assert sent.returncode == 0, sent.stderr
        result = json.loads(sent.stdout.split("RESULT ", 1)[1])
        assert result["answered"] == TASKS
        assert len(result["workers"]) == 2, result["workers"]
        assert logins == [200] * 20
        assert health_codes == [200] * 20

        status, body = get(f"{web}/api/v1/health")
        health = json.loads(body)
        assert status == 200 and health["status"] == "ok", health
        assert health["mode"] == "embedded"

        assert get(f"{web}/api/docs/")[0] == 200
        flower_auth = f"admin:{(tmp_path / 'var' / 'flower_password').read_text()}"
        assert f"password {flower_auth.split(':')[1]}" in platform.output()
        assert get(f"{flower}/")[0] == 401
        assert get(f"{flower}/", auth=f"admin:{PASSWORD}")[0] == 401
        assert get(f"{flower}/", auth=flower_auth)[0] == 200
        seen_by_flower = wait_for(
            lambda: result["ids"][-1] in get(f"{flower}/api/tasks?limit=1000", auth=flower_auth)[1].decode(),
            timeout=30,
            what="Flower to list the tasks",
        )
        assert seen_by_flower
    finally:
        platform.send(signal.SIGINT)  # what Ctrl-C does
        exit_code = platform.process.wait(90)

    output = platform.output()
    assert "database is locked" not in output
    assert "Traceback" not in output, output[-5000:]
    assert exit_code == 0, output[-3000:]
    assert "all processes stopped" in output
    for port in (embedded_env["WEB_PORT"], embedded_env["FLOWER_PORT"]):
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", int(port)), timeout=1):
            pass


def test_second_start_reuses_what_is_there(embedded_env):
    first = subprocess.run(manage("bootstrap"), cwd=ROOT, env=embedded_env, capture_output=True, text=True)
    second = subprocess.run(manage("bootstrap"), cwd=ROOT, env=embedded_env, capture_output=True, text=True)

    assert first.returncode == second.returncode == 0, second.stderr
    assert "admin user 'admin' exists" in second.stdout
    assert "company 'demo' already there" in second.stdout
