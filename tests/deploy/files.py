"""The deployment files, read the way their tools read them (PyYAML, honcho, BuildKit's parser)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml
from honcho.environ import parse_procfile

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROCFILE = ROOT / "Procfile"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"

#: Compose service -> the Procfile process that runs the same command.
SERVICE_PROCESS = {"worker-extract": "extract", "worker-load": "load", "beat": "beat",
                   "flower": "flower"}
#: Services meant for ``docker compose up --scale``.
SCALED = ("worker-extract", "worker-load")
WORKERS = SCALED


def compose() -> dict[str, Any]:
    """docker-compose.yml as a mapping (YAML merge keys resolved, as Compose resolves them)."""
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict)
    return document


def procfile() -> dict[str, str]:
    """Process name -> command, parsed by honcho itself."""
    return dict(parse_procfile(PROCFILE.read_text()).processes)


def procfile_argv(name: str) -> list[str]:
    """A Procfile command split as the shell that honcho starts it with splits it."""
    return shlex.split(procfile()[name])


def command_argv(command: str | list[str]) -> list[str]:
    """A compose ``command`` (string or list) as an argv."""
    return shlex.split(command) if isinstance(command, str) else list(command)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}


def seconds(duration: str | int | float) -> float:
    """A compose duration (``330s``, ``5m30s``, ``1h``) in seconds."""
    if isinstance(duration, int | float):
        return float(duration)
    text = duration.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a compose duration: {duration!r}")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def env_example_names() -> tuple[set[str], set[str]]:
    """Variables set in .env.example, and those only shown commented out (``# NAME=value``)."""
    active, commented = set(), set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        if match := re.match(r"^([A-Z][A-Z0-9_]*)=", line):
            active.add(match.group(1))
        elif match := re.match(r"^#\s?([A-Z][A-Z0-9_]*)=", line):
            commented.add(match.group(1))
    return active, commented
