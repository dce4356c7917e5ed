"""Real Celery worker processes for integration tests, tracked and stopped by pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """One ``celery -A workers worker -Q <queue>`` process with its own log file."""

    def __init__(self, queue: str, env: dict[str, str], log_dir: Path, concurrency: int = 1,
                 log_level: str = "info") -> None:
        self.queue = queue
        self.log_level = log_level
        self.env = env
        self.log_path = log_dir / f"worker-{queue}-{uuid_suffix()}.log"
        self.concurrency = concurrency
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def hostname(self) -> str:
        return f"{self.queue}@conveyor-test"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", self.queue,
            "-n", self.hostname, "-c", str(self.concurrency), "--pool", "prefork",
            "--without-gossip", "--without-mingle", "-l", self.log_level,
        ]

    def start(self, timeout: float = 60, wait_for: str = " ready.") -> WorkerProcess:
        """Start the process and wait until its log shows ``wait_for``."""
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        log = open(self.log_path, "ab")  # noqa: SIM115  (owned by the process)
        # A session of its own, so a kill reaches the main process and its pool children.
        self.proc = subprocess.Popen(self.command(), cwd=ROOT, env=env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.queue} exited:\n{self.log()}")
            if wait_for in self.log():
                return self
            time.sleep(0.2)
        raise RuntimeError(f"{self.queue} not ready after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        """SIGKILL the whole worker, main process and pool, as ``docker kill`` would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20) -> None:
        if not self.proc or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def uuid_suffix() -> str:
    import uuid

    return uuid.uuid4().hex[:6]


class BeatProcess(WorkerProcess):
    """A ``celery -A workers beat`` process (Conveyor's RedBeat scheduler) with its own log."""

    def __init__(self, env: dict[str, str], log_dir: Path, name: str = "beat") -> None:
        super().__init__(name, env, log_dir)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", "workers", "beat", "-l", "info",
                "-s", str(self.log_path.with_suffix(".schedule"))]

    def start(self, timeout: float = 60, wait_for: str = "beat: Starting...") -> BeatProcess:
        super().start(timeout, wait_for)
        return self
