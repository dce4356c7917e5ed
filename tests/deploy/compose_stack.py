"""A real docker compose project of Conveyor, driven through Compose v2 and the Docker engine.

The project is a copy of the repository's compose file, Dockerfile and packages in a temporary
directory with its own ``.env``, under its own project name, so neither the developer's
``.env`` nor their own ``conveyor`` stack is touched. Everything the tests see comes from the
containers: ``conveyor`` commands run with ``docker compose exec`` in the beat container, and
the warehouse is compared with the sandbox by a script run in that container too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from tests.deploy.files import ROOT

PROJECT_FILES = ("Dockerfile", "docker-compose.yml", ".dockerignore", "pyproject.toml", "README.md")
PACKAGES = ("app", "broker", "workers", "sandbox")
IMAGE_VARIABLES = ("CONVEYOR_BASE_IMAGE", "REDIS_IMAGE", "POSTGRES_IMAGE")
DEFAULT_IMAGES = {"CONVEYOR_BASE_IMAGE": "python:3.11-slim", "REDIS_IMAGE": "redis:7",
                  "POSTGRES_IMAGE": "postgres:16"}
FINAL_STATES = {"succeeded", "succeeded_with_rejections", "failed", "cancelled"}
_TASK_RECEIVED = re.compile(r"Task (conveyor\.\w+)\[([^\]]+)\] received")
_TASK_ENDED = re.compile(r"Task (conveyor\.\w+)\[([^\]]+)\] (succeeded|retry|raised|failed|ignored)")

#: Runs inside a Conveyor container after tests/support/compare.py's text: every table read
#: from the sandbox through its API (the source), and from the warehouse.
LANDED_SCRIPT = """
import json
from app.extractors import AirtableExtractor
from app.warehouses import warehouse_for_url

source = AirtableExtractor(requests_per_second=1000)
warehouse = warehouse_for_url()
report = {}
for table in source.list_tables():
    records = [r for page in source.iter_pages(table) for r in page.records]
    landed = list(warehouse.read_records(table))
    report[table.name] = {"source": len(records), "landed": len(landed),
                          "problems": differences(records, landed)}
print(json.dumps(report))
"""


def engine_problem() -> str | None:
    """Why no Docker engine can be used here, or None when one answers."""
    if shutil.which("docker") is None:
        return "no docker client (apt-get install docker.io, or run .ci/compose)"
    result = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        return f"no Docker engine answers ({result.stderr.strip()[:200]}); .ci/compose starts one"
    return None


def base_images() -> dict[str, str]:
    """The three images to run on: as exported, the defaults if present, else the stand-ins.

    Nothing is pulled: without a registry, deploy/local-images.sh builds Debian stand-ins.
    """
    chosen = {name: os.environ[name] for name in IMAGE_VARIABLES if os.environ.get(name)}
    if len(chosen) == len(IMAGE_VARIABLES):
        return chosen
    present = [subprocess.run(["docker", "image", "inspect", image], capture_output=True,
                              timeout=60).returncode == 0 for image in DEFAULT_IMAGES.values()]
    if all(present):
        return dict(DEFAULT_IMAGES)
    result = subprocess.run(["bash", str(ROOT / "deploy" / "local-images.sh")], capture_output=True,
                            text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [ln for ln in result.stdout.splitlines() if ln.startswith("export ")]
    return dict(word.split("=", 1) for word in line.split()[1:])


class ComposeStack:
    """One compose project: its directory, its compose binary, and what the tests ask of it."""

    def __init__(self, binary: Path, directory: Path, name: str, env: dict[str, str],
                 images: dict[str, str]) -> None:
        self.binary = binary
        self.directory = directory
        self.name = name
        for path in PROJECT_FILES:
            shutil.copy(ROOT / path, directory / path)
        for package in PACKAGES:
            shutil.copytree(ROOT / package, directory / package,
                            ignore=shutil.ignore_patterns("__pycache__"))
        (directory / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        # the caller's COMPOSE_*/POSTGRES_*/SANDBOX_* would override .env's interpolation
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("COMPOSE_", "POSTGRES_", "SANDBOX_"))
                    and k not in IMAGE_VARIABLES}
        self.env.update(images)
        #: every run the tests queued, oldest first
        self.runs: list[str] = []
        self.started = time.monotonic()

    # -- compose and docker ----------------------------------------------------------------

    def compose(self, *args: str, timeout: float = 900, check: bool = True,
                stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), "--project-name", self.name, "--profile", "demo", *args],
            cwd=self.directory, env=self.env, input=stdin, capture_output=True, text=True,
            timeout=timeout)
        if check:
            assert result.returncode == 0, (args, result.stdout[-3000:], result.stderr[-3000:])
        return result

    def up(self, extract: int, load: int, *extra: str) -> None:
        self.compose("up", "-d", "--wait", "--scale", f"worker-extract={extract}",
                     "--scale", f"worker-load={load}", *extra)

    def containers(self, service: str) -> dict[str, str]:
        """Running container id -> container hostname, for one service."""
        ids = self.compose("ps", "-q", service).stdout.split()
        return {cid: docker("inspect", "--format", "{{.Config.Hostname}}", cid).strip()
                for cid in ids}

    def nodes(self, service: str, queue: str) -> dict[str, str]:
        """Celery node name (``load@<hostname>``) -> container id, for one service."""
        return {f"{queue}@{host}": cid for cid, host in self.containers(service).items()}

    def logs(self, *services: str) -> str:
        return self.compose("logs", "--no-color", *services, check=False).stdout

    # -- conveyor, inside the stack ----------------------------------------------------------

    def conveyor(self, *args: str, timeout: float = 300) -> str:
        return self.compose("exec", "-T", "beat", "conveyor", *args, timeout=timeout).stdout

    def enqueue(self) -> str:
        run_id = self.conveyor("enqueue", "airtable", "--drop-tables").split()[0]
        self.runs.append(run_id)
        return run_id

    def status(self, run_id: str) -> dict[str, Any]:
        status: dict[str, Any] = json.loads(self.conveyor("status", run_id, "--json"))
        return status

    def wait(self, run_id: str, timeout: float,
             until: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        """Poll the run's status until it is final (or ``until`` holds); fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.status(run_id)
            if current["state"] in FINAL_STATES or (until is not None and until(current)):
                return current
            assert time.monotonic() < deadline, (
                f"run {run_id} still {current['state']} after {timeout}s: "
                f"{summary(current)}\n{self.stuck_report(run_id)}\n"
                f"{self.logs('worker-extract', 'worker-load')[-5000:]}")
            time.sleep(3)  # each poll starts a Python process in the container

    def stuck_report(self, run_id: str) -> str:
        """Why a run may not move: each table's barrier counters (resume steps by task name
        only) and the workers' warnings and errors, which the log tail may not reach."""
        def redis_cli(*args: str) -> str:
            return self.compose("exec", "-T", "redis", "redis-cli", *args, check=False).stdout

        lines = []
        for key in redis_cli("--scan", "--pattern", f"conveyor:run:{run_id}:table:*:sync").split():
            fields = redis_cli("HGETALL", key).splitlines()
            counters = dict(zip(fields[::2], fields[1::2], strict=False))
            for name, value in counters.items():
                if name.startswith("resume") and value:
                    counters[name] = json.loads(value).get("task", "?")
            lines.append(f"barrier {key}: {counters}")
        noteworthy = [line for line in self.logs("worker-extract", "worker-load", "beat").splitlines()
                      if "WARNING" in line or "ERROR" in line]
        return "\n".join([*lines, "worker warnings and errors:", *noteworthy[-40:]])

    def landed(self) -> dict[str, Any]:
        """Per table: records in the sandbox, rows in the warehouse, and every difference."""
        script = (ROOT / "tests" / "support" / "compare.py").read_text() + LANDED_SCRIPT
        out = self.compose("exec", "-T", "beat", "python", "-", stdin=script, timeout=600).stdout
        report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return report


def docker(*args: str, timeout: float = 120) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (args, result.stderr)
    return result.stdout


@contextlib.contextmanager
def container_events(project: str) -> Iterator[list[str]]:
    """The Docker engine's container events of ``project`` while the block runs, as lines
    (time, service, action: ``kill`` with its signal, ``die`` with its exit code): they show
    which container waited out its stop grace period."""
    lines: list[str] = []
    fmt = ("{{.TimeNano}} {{index .Actor.Attributes \"com.docker.compose.service\"}} "
           "{{.Actor.Attributes.name}} {{.Action}} signal={{.Actor.Attributes.signal}} "
           "exit={{.Actor.Attributes.exitCode}}")
    watcher = subprocess.Popen(
        ["docker", "events", "--filter", "type=container", "--filter",
         f"label=com.docker.compose.project={project}", "--format", fmt],
        stdout=subprocess.PIPE, text=True)
    try:
        yield lines
    finally:
        time.sleep(1)
        watcher.terminate()
        out, _ = watcher.communicate(timeout=30)
        start = None
        for line in out.splitlines():
            stamp, _, rest = line.partition(" ")
            start = start or int(stamp)
            lines.append(f"{(int(stamp) - start) / 1e9:7.1f}s {rest}")


#: Run inside a container: every Celery process logs its threads' stacks (Celery's SIGUSR1).
_STACKS_SCRIPT = (
    "import os, signal\n"
    "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
    "    try:\n"
    "        if b'celery' in open(f'/proc/{pid}/cmdline', 'rb').read():\n"
    "            os.kill(int(pid), signal.SIGUSR1)\n"
    "    except OSError:\n"
    "        pass\n"
)
_SESSIONS_SQL = ("SELECT pid, state, wait_event_type, wait_event, now() - xact_start AS xact_age,"
                 " left(query, 160) FROM pg_stat_activity WHERE datname = current_database()")


@contextlib.contextmanager
def stall_witness(stack: ComposeStack, containers: Iterable[str], after: float) -> Iterator[list[str]]:
    """If the block is still running ``after`` seconds in, what the ``containers`` still up are
    doing: their Celery processes' thread stacks and log tails, and PostgreSQL's sessions (a
    worker that outlives its stop grace period is otherwise only a SIGKILL in the events)."""
    found: list[str] = []
    done = threading.Event()

    def witness() -> None:
        if done.wait(after):
            return
        sessions = stack.compose("exec", "-T", "postgres", "sh", "-c",
                                 f'psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c "{_SESSIONS_SQL}"',
                                 check=False, timeout=60)
        found.append(f"--- PostgreSQL sessions:\n{sessions.stdout}{sessions.stderr}")
        running = [c for c in containers
                   if docker("inspect", "--format", "{{.State.Running}}", c).strip() == "true"]
        for cid in running:
            subprocess.run(["docker", "exec", cid, "python", "-c", _STACKS_SCRIPT],
                           capture_output=True, timeout=60)
        time.sleep(3)
        for cid in running:
            found.append(f"--- {cid[:12]} still running; its log's end:\n{container_log(cid)[-12000:]}")

    thread = threading.Thread(target=witness, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        done.set()
        thread.join(timeout=120)


def container_log(container: str) -> str:
    """A container's whole log; Celery writes it to standard error."""
    result = subprocess.run(["docker", "logs", container], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def summary(status: dict[str, Any]) -> str:
    tables = ", ".join(f"{t['table']['name']} {t['loaded']}/{t['fetched']} {t['state']}"
                       + (f" ({t['error']})" if t.get("error") else "")
                       for t in status.get("tables", []))
    error = f" [{status['error']}]" if status.get("error") else ""
    return f"{status['state']}{error}: {tables}"


def step_hosts(status: dict[str, Any], queue: str, step: str | None = None) -> Counter[str]:
    """How many recorded steps of the run each Celery node took on ``queue``."""
    return Counter(s["hostname"] for s in status.get("steps", [])
                   if s.get("queue") == queue and (step is None or s.get("step") == step))


#: Tasks that start as soon as they are received (no countdown), so received means running.
IMMEDIATE_TASKS = ("conveyor.extract_table", "conveyor.load_batch")


def tasks_in_flight(log: str) -> set[str]:
    """Ids of extract and load tasks a worker log shows received and not (yet) ended.

    Tasks retried with a countdown (finish_table) are left out: a worker holds them unstarted
    until their time, and on shutdown hands them back to the queue without an end line.
    """
    received = Counter(m.group(2) for m in _TASK_RECEIVED.finditer(log)
                       if m.group(1) in IMMEDIATE_TASKS)
    ended = Counter(m.group(2) for m in _TASK_ENDED.finditer(log))
    return {task for task, count in received.items() if count > ended[task]}


def tasks_ended(log: str) -> set[str]:
    return {m.group(2) for m in _TASK_ENDED.finditer(log)}
