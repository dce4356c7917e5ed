"""Dockerfile: one slim, non-root image for every process, dependencies cached, no secrets."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys

import dockerfile
import pytest

from tests.deploy.files import DOCKERFILE, DOCKERIGNORE, ROOT, procfile_argv

SECRET = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)


@pytest.fixture(scope="module")
def instructions():
    """The Dockerfile as BuildKit's own parser reads it."""
    return dockerfile.parse_file(str(DOCKERFILE))


def index_of(instructions, cmd, predicate=lambda c: True) -> int:
    for i, c in enumerate(instructions):
        if c.cmd == cmd and predicate(c):
            return i
    raise AssertionError(f"no matching {cmd}")


def test_one_stage_whose_base_is_a_build_argument_defaulting_to_python_311_slim(instructions):
    froms = [c for c in instructions if c.cmd == "FROM"]
    assert [c.value[0] for c in froms] == ["${BASE_IMAGE}"]
    # an ARG before FROM is the only kind FROM can read; its default is what users pull
    first_from = instructions.index(froms[0])
    args = [c.value[0] for c in instructions[:first_from] if c.cmd == "ARG"]
    assert args == ["BASE_IMAGE=python:3.11-slim"]


def test_runs_as_a_non_root_user(instructions):
    users = [c.value[0] for c in instructions if c.cmd == "USER"]
    assert users, "no USER: the processes would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_output_is_unbuffered(instructions):
    env = {}
    for c in instructions:
        if c.cmd == "ENV":
            env.update(zip(c.value[::2], c.value[1::2], strict=True))
    assert env["PYTHONUNBUFFERED"] == "1"


def test_no_secret_is_baked_in(instructions):
    for c in instructions:
        if c.cmd in ("ENV", "ARG", "LABEL"):
            names = c.value[::2] if c.cmd != "ARG" else [v.split("=")[0] for v in c.value]
            assert not [n for n in names if SECRET.search(n)], c.original
    assert not [c for c in instructions if c.cmd in ("COPY", "ADD") and ".env" in c.value[:-1]]


def test_dependencies_are_installed_from_pyproject_before_the_code_is_copied(instructions):
    copy_pyproject = index_of(instructions, "COPY", lambda c: c.value[:-1] == ("pyproject.toml",))
    install_deps = index_of(instructions, "RUN", lambda c: "pip install -r" in c.value[0])
    first_code = index_of(instructions, "COPY", lambda c: c.value[0] in ("app", "broker",
                                                                          "workers", "."))
    install_project = index_of(instructions, "RUN", lambda c: "pip install '.[monitor]'"
                               in c.value[0])
    assert copy_pyproject < install_deps < first_code < install_project


def test_the_dependency_list_the_image_installs_is_the_projects(instructions, tmp_path):
    """Run the Dockerfile's own requirements step against pyproject.toml."""
    run = instructions[index_of(instructions, "RUN", lambda c: "pip install -r" in c.value[0])]
    words = shlex.split(run.value[0])
    script = words[words.index("-c") + 1]
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    requirements = result.stdout.split()
    assert any(r.startswith("celery") for r in requirements)
    assert any(r.startswith("flower") for r in requirements), "the monitor extra is missing"


def test_the_image_copies_every_package_setuptools_builds(instructions):
    copied = {c.value[0] for c in instructions if c.cmd == "COPY"}
    assert {"app", "broker", "workers", "pyproject.toml", "README.md"} <= copied


def test_default_command_is_the_load_worker(instructions):
    (cmd,) = [c for c in instructions if c.cmd == "CMD"]
    assert cmd.json, "shell-form CMD puts /bin/sh between docker and celery's signal handling"
    assert list(cmd.value) == procfile_argv("load")


def test_dockerignore_keeps_secrets_and_local_state_out():
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".env", ".venv", ".git", "data", "__pycache__", ".pytest_cache"} <= ignored
    assert not [line for line in ignored if line.startswith("!")]
