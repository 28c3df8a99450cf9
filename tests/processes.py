"""Real platform processes for integration tests: started as subprocesses, stopped
cleanly or killed with SIGKILL, their output kept in a log file for assertions."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[1]
QUEUES = "default,billing,receivables,ledger,notifications"


class PlatformProcess:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> PlatformProcess:
        log = self.log_path.open("ab")
        # A session of its own: signals from the test runner's terminal do not reach it,
        # and kill() can take its whole process group (the worker's pool included).
        self.process = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process
        return self.process.pid

    @property
    def alive(self) -> bool:
        return bool(self.process) and self.process.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_output(self, text: str, timeout: float = 60) -> None:
        def seen() -> bool:
            if not self.alive and text not in self.output():
                raise AssertionError(f"{self.name} exited ({self.process.returncode}):\n{self.output()[-3000:]}")
            return text in self.output()

        wait_for(seen, timeout=timeout, what=f"{self.name} to print {text!r}")

    def send(self, signum: int) -> None:
        if self.alive:
            os.kill(self.pid, signum)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait: a worker finishes its running tasks (warm shutdown)."""
        if not self.process:
            return 0
        self.send(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not stop within {timeout}s:\n{self.output()[-3000:]}") from None

    def kill(self) -> None:
        """kill -9 of the process and all its children."""
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(10)


def celery(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "config", *args]


def manage(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "manage.py"), *args]
