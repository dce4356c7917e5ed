"""A throwaway local stack for the demo: a private Redis if needed, and one worker per queue."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis


def redis_answers(url: str) -> bool:
    """Whether a Redis server answers PING at ``url``."""
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2).ping())
    except (redis.RedisError, OSError, ValueError):
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A redis-server of our own on a free port in a temporary directory, for this block only."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server is not installed")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="conveyor-redis-") as workdir:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir,
             "--save", "", "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            deadline = time.monotonic() + 10
            while not redis_answers(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the private redis-server did not start")
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            proc.wait(10)


@contextlib.contextmanager
def worker_pool(
    queues: tuple[str, ...], env: dict[str, str], log_dir: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """One ``celery -A workers worker -Q <queue>`` process per queue, stopped on exit."""
    procs: list[subprocess.Popen[bytes]] = []
    full_env = {**os.environ, **env}
    try:
        for queue in queues:
            log = open(log_dir / f"worker-{queue}.log", "ab")  # noqa: SIM115
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", queue,
                 "-n", f"{queue}@%h", "-c", "1", "--without-gossip", "--without-mingle",
                 "-l", "info"],
                env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            ))
        _wait_ready(queues, log_dir, procs)
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _wait_ready(queues: tuple[str, ...], log_dir: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 60
    pending = set(queues)
    while pending:
        for queue, proc in zip(queues, procs, strict=True):
            text = (log_dir / f"worker-{queue}.log").read_text(errors="replace")
            if proc.poll() is not None:
                raise RuntimeError(f"the {queue} worker exited:\n{text[-2000:]}")
            if " ready." in text:
                pending.discard(queue)
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers {sorted(pending)} did not start within 60 s")
        time.sleep(0.2)
