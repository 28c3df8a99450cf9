"""Start web, worker(s), beat and Flower together and stop them together (make run).

Each process runs in its own session so that Ctrl-C reaches this supervisor only. It
then stops the children in steps: SIGTERM (workers finish their running tasks, web
drains), then after --stop-timeout or a second Ctrl-C SIGQUIT (workers cancel running
tasks and put their messages back on the queue), then after a few seconds more or a
third Ctrl-C SIGKILL. If any child dies on its own the others are stopped too and the
exit code is 1.
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

from config import env, filesystem_broker
from scheduling.credentials import admin_password_hint, admin_username, flower_basic_auth

POLL_SECONDS = 0.2
PRUNE_EVERY = 60.0  # seconds between clean-ups of the embedded broker's event and reply messages
COLD_SHUTDOWN_GRACE = 10.0  # seconds between SIGQUIT and SIGKILL


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
        """SIGTERM and SIGQUIT go to the main process, which stops its own pool; SIGKILL
        goes to the whole process group so that nothing is left behind."""
        if self.running:
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
        parser.add_argument("--stop-timeout", type=float, default=30.0, help="seconds of warm shutdown")

    def handle(self, *args, **options) -> None:
        web_port = options["web_port"] or env.integer("WEB_PORT", 8000, minimum=1)
        flower_port = options["flower_port"] or env.integer("FLOWER_PORT", 5555, minimum=1)
        if options["workers"] < 1:
            raise CommandError("--workers must be at least 1")
        host = options["host"]
        self._lock = threading.Lock()
        try:
            flower = flower_basic_auth() if not options["no_flower"] else None
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        children = self.plan(host, web_port, flower_port, options["workers"], flower=bool(flower))

        stop_requests: list[float] = []
        signal.signal(signal.SIGINT, lambda *_: stop_requests.append(time.monotonic()))
        signal.signal(signal.SIGTERM, lambda *_: stop_requests.append(time.monotonic()))

        if settings.MODE == "embedded":
            # Nothing runs yet: bindings and messages of event and reply queues are leftovers.
            filesystem_broker.reset_transient_state(settings.CELERY_BROKER_TRANSPORT_OPTIONS, settings.QUEUES)
        base_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for child in children:
            child.start(base_env, self.echo)
        self.announce(host, web_port, flower_port, flower)

        failed = self.supervise(children, stop_requests)
        self.stop(children, stop_requests, options["stop_timeout"])
        if failed:
            raise CommandError(f"{failed} exited unexpectedly; stopped the rest")
        self.stdout.write("all processes stopped")

    def plan(self, host: str, web_port: int, flower_port: int, workers: int, flower: bool) -> list[Child]:
        python, queues = sys.executable, ",".join(settings.QUEUES)
        gunicorn = "gunicorn config.wsgi --workers 2 --threads 4 --graceful-timeout 10 --access-logfile -"
        web = [python, "-m", *gunicorn.split(), "--no-control-socket", "--bind", f"{host}:{web_port}"]
        children = [Child("web", web)]
        for n in range(1, workers + 1):
            worker = f"celery -A config worker -Q {queues} -n worker{n}@%h --loglevel {settings.LOG_LEVEL}"
            concurrency = ["--concurrency", str(settings.CELERY_WORKER_CONCURRENCY)]
            children.append(Child(f"worker{n}", [python, "-m", *worker.split(), *concurrency]))
        beat = f"celery -A config beat --loglevel {settings.LOG_LEVEL}"
        children.append(Child("beat", [python, "-m", *beat.split(), "--pidfile", ""]))
        if flower:
            manage = [python, str(settings.BASE_DIR / "manage.py"), "runflower"]
            children.append(Child("flower", [*manage, f"--address={host}", f"--port={flower_port}"]))
        return children

    def echo(self, name: str, line: str) -> None:
        with self._lock:
            self.stdout.write(f"{name:<8}| {line}")
            self.stdout.flush()

    def announce(self, host: str, web_port: int, flower_port: int, flower: tuple[str, str] | None) -> None:
        base = f"http://{host}:{web_port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{base}/api/v1/health", timeout=2)
                break
            except urllib.error.HTTPError:
                break  # it answers; 503 just means not everything is up yet
            except OSError:
                time.sleep(0.5)
        lines = [
            "",
            f"Countinghouse is running ({settings.MODE} mode). Ctrl-C stops everything.",
            f"  admin     {base}/admin/        user {admin_username()!r}, password {admin_password_hint()}",
            f"  API docs  {base}/api/docs/",
            f"  health    {base}/api/v1/health",
        ]
        if flower:
            auth, source = flower
            user, _, secret = auth.partition(":")
            # A password the operator chose is not printed; a generated one must be.
            shown = "password from FLOWER_BASIC_AUTH" if source == "FLOWER_BASIC_AUTH" else f"password {secret}"
            lines.append(f"  Flower    http://{host}:{flower_port}/        user {user!r}, {shown}")
        lines.append("")
        with self._lock:
            self.stdout.write("\n".join(lines))

    def supervise(self, children: list[Child], stop_requests: list[float]) -> str | None:
        next_prune = time.monotonic() + PRUNE_EVERY
        while not stop_requests:
            for child in children:
                if not child.running:
                    return child.name
            if settings.MODE == "embedded" and time.monotonic() > next_prune:
                options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
                filesystem_broker.prune_transient_messages(options, settings.QUEUES)
                next_prune = time.monotonic() + PRUNE_EVERY
            time.sleep(POLL_SECONDS)
        return None

    def stop(self, children: list[Child], stop_requests: list[float], timeout: float) -> None:
        self.stdout.write("stopping: " + ", ".join(c.name for c in children if c.running))
        steps = [(signal.SIGTERM, timeout), (signal.SIGQUIT, COLD_SHUTDOWN_GRACE), (signal.SIGKILL, 10.0)]
        for signum, grace in steps:
            if signum == signal.SIGKILL:
                for child in children:
                    if child.running:
                        self.stdout.write(f"{child.name} did not stop; killing it")
            for child in children:
                child.signal(signum)
            asked, deadline = len(stop_requests), time.monotonic() + grace
            while any(c.running for c in children):
                if time.monotonic() > deadline or len(stop_requests) > asked:
                    break  # out of patience, or Ctrl-C again: next step
                time.sleep(POLL_SECONDS)
            else:
                break
        for child in children:
            if child.process:
                child.process.wait()
