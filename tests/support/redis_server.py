"""A private redis-server with persistence on, that a test can restart."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from broker.local_stack import free_port


class PersistentRedis:
    """redis-server on a free port, AOF with fsync on every write, in ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PersistentRedis:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--maxmemory-policy", "noeviction"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=0.5).ping():
                    return self
            except redis.RedisError:
                time.sleep(0.1)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                redis.Redis(port=self.port).shutdown(nosave=True)
            except redis.RedisError:
                pass  # the server closes the connection as it shuts down
            self.proc.wait(20)

    def restart(self, pause: float = 1.0) -> None:
        self.stop()
        time.sleep(pause)
        self.start()
