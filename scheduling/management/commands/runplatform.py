"""Start web, worker(s), beat and Flower together and stop them together (make run).

Each process runs in its own session so that Ctrl-C reaches this supervisor only; it
then asks every child to stop (SIGTERM: warm shutdown for workers, graceful for web)
and kills what is still running after --stop-timeout. A second Ctrl-C kills at once.
If any child dies on its own, the others are stopped too and the exit code is 1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from config import env
from scheduling.credentials import admin_username, flower_basic_auth, saved_password

POLL_SECONDS = 0.2


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    def start(self, base_env: dict[str, str], echo) -> None:
        self.process = subprocess.Popen(
            self.argv,
            env={**base_env, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            text=True,
            bufsize=1,
        )
        threading.Thread(target=self._pump, args=(echo,), daemon=True).start()

    def _pump(self, echo) -> None:
        assert self.process and self.process.stdout
        for line in self.process.stdout:
            echo(self.name, line.rstrip("\n"))

    def signal(self, signum: int) -> None:
        """SIGTERM goes to the main process, which shuts its own pool down warmly; SIGKILL
        goes to the whole process group so that nothing is left behind."""
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                if signum == signal.SIGKILL:
                    os.killpg(self.process.pid, signum)
                else:
                    os.kill(self.process.pid, signum)

    @property
    def running(self) -> bool:
        return bool(self.process) and self.process.poll() is None


class Command(BaseCommand):
    help = "Run web, worker, beat and Flower together until Ctrl-C."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address web and Flower listen on")
        parser.add_argument("--web-port", type=int, default=None, help="default WEB_PORT or 8000")
        parser.add_argument("--flower-port", type=int, default=None, help="default FLOWER_PORT or 5555")
        parser.add_argument("--workers", type=int, default=1, help="worker processes to start")
        parser.add_argument("--no-flower", action="store_true")
        parser.add_argument("--stop-timeout", type=float, default=30.0)

    def handle(self, *args, **options) -> None:
        web_port = options["web_port"] or env.integer("WEB_PORT", 8000, minimum=1)
        flower_port = options["flower_port"] or env.integer("FLOWER_PORT", 5555, minimum=1)
        if options["workers"] < 1:
            raise CommandError("--workers must be at least 1")
        host = options["host"]
        self._lock = threading.Lock()
        children = self.plan(host, web_port, flower_port, options["workers"], not options["no_flower"])

        stop_requests = []
        signal.signal(signal.SIGINT, lambda *_: stop_requests.append(time.monotonic()))
        signal.signal(signal.SIGTERM, lambda *_: stop_requests.append(time.monotonic()))

        base_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for child in children:
            child.start(base_env, self.echo)
        self.announce(host, web_port, flower_port, children)

        failed = self.supervise(children, stop_requests)
        self.stop(children, stop_requests, options["stop_timeout"])
        if failed:
            raise CommandError(f"{failed} exited unexpectedly; stopped the rest")
        self.stdout.write("all processes stopped")

    def plan(self, host: str, web_port: int, flower_port: int, workers: int, flower: bool) -> list[Child]:
        python, queues = sys.executable, ",".join(settings.QUEUES)
        gunicorn = (
            "gunicorn config.wsgi --workers 2 --threads 4 --graceful-timeout 10 --access-logfile - --no-control-socket"
        )
        children = [Child("web", [python, "-m", *gunicorn.split(), "--bind", f"{host}:{web_port}"])]
        for n in range(1, workers + 1):
            worker = f"celery -A config worker -Q {queues} -n worker{n}@%h --loglevel {settings.LOG_LEVEL}"
            concurrency = ["--concurrency", str(settings.CELERY_WORKER_CONCURRENCY)]
            children.append(Child(f"worker{n}", [python, "-m", *worker.split(), *concurrency]))
        beat = f"celery -A config beat --loglevel {settings.LOG_LEVEL}"
        children.append(Child("beat", [python, "-m", *beat.split(), "--pidfile", ""]))
        if flower:
            try:
                auth = flower_basic_auth()
            except ImproperlyConfigured as exc:
                raise CommandError(str(exc)) from exc
            if not auth:
                raise CommandError("Flower needs credentials: set FLOWER_BASIC_AUTH=user:password (or ADMIN_PASSWORD)")
            # Flower reads FLOWER_* from its environment; the password stays out of `ps`.
            flower_env = {
                "FLOWER_BASIC_AUTH": auth,
                "FLOWER_MAX_TASKS": str(env.integer("FLOWER_MAX_TASKS", 10000, minimum=1)),
                "FLOWER_PERSISTENT": "False",
            }
            argv = [python, "-m", "celery", "-A", "config", "flower", f"--address={host}", f"--port={flower_port}"]
            children.append(Child("flower", argv, env=flower_env))
        return children

    def echo(self, name: str, line: str) -> None:
        with self._lock:
            self.stdout.write(f"{name:<8}| {line}")
            self.stdout.flush()

    def announce(self, host: str, web_port: int, flower_port: int, children: list[Child]) -> None:
        base = f"http://{host}:{web_port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and all(c.running for c in children):
            try:
                urllib.request.urlopen(f"{base}/api/v1/health", timeout=2)
                break
            except urllib.error.HTTPError:
                break  # it answers; 503 just means not everything is up yet
            except OSError:
                time.sleep(0.5)
        password = env.text("ADMIN_PASSWORD", "") and "from ADMIN_PASSWORD"
        password = password or saved_password() or "as changed in the admin"
        lines = [
            "",
            f"Countinghouse is running ({settings.MODE} mode). Ctrl-C stops everything.",
            f"  admin     {base}/admin/        user {admin_username()!r}, password {password}",
            f"  API docs  {base}/api/docs/",
            f"  health    {base}/api/v1/health",
        ]
        if any(c.name == "flower" for c in children):
            same = "the admin's" if not env.is_set("FLOWER_BASIC_AUTH") else "from FLOWER_BASIC_AUTH"
            lines.append(f"  Flower    http://{host}:{flower_port}/   credentials {same}")
        lines.append("")
        with self._lock:
            self.stdout.write("\n".join(lines))

    def supervise(self, children: list[Child], stop_requests: list[float]) -> str | None:
        while not stop_requests:
            for child in children:
                if not child.running:
                    return child.name
            time.sleep(POLL_SECONDS)
        return None

    def stop(self, children: list[Child], stop_requests: list[float], timeout: float) -> None:
        self.stdout.write("stopping: " + ", ".join(c.name for c in children if c.running))
        for child in children:
            child.signal(signal.SIGTERM)
        asked = len(stop_requests)
        deadline = time.monotonic() + timeout
        while any(c.running for c in children):
            if time.monotonic() > deadline or len(stop_requests) > asked:
                for child in children:
                    if child.running:
                        self.stdout.write(f"{child.name} did not stop in time; killing it")
                    child.signal(signal.SIGKILL)
                break
            time.sleep(POLL_SECONDS)
        for child in children:
            if child.process:
                child.process.wait()
