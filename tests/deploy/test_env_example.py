""".env.example: every variable documented, each one that is set means something."""

from __future__ import annotations

import re

from dotenv import dotenv_values

from app.settings import Settings
from tests.deploy.files import COMPOSE_FILE, ENV_EXAMPLE, ROOT, env_example_names

#: Read by docker-compose.yml or flower, not by Conveyor's settings.
NOT_CONVEYOR = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "FLOWER_BASIC_AUTH"}


def readme_variables() -> set[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def test_every_variable_of_the_readme_is_documented():
    active, commented = env_example_names()
    missing = readme_variables() - active - commented
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_every_variable_set_is_a_setting_or_a_compose_variable():
    active, commented = env_example_names()
    fields = {name.upper() for name in Settings.model_fields}
    assert not (active - fields - NOT_CONVEYOR), "unknown variables in .env.example"


def test_the_example_loads_as_settings():
    values = dotenv_values(ENV_EXAMPLE)
    settings = Settings(**{k.lower(): v for k, v in values.items() if k not in NOT_CONVEYOR})
    assert settings.celery_broker_url == "redis://redis:6379/0"
    assert settings.warehouse_url.startswith("postgresql://")
    assert settings.airtable_table_list == []


def test_every_variable_the_compose_file_interpolates_is_set_or_shown_with_its_default():
    active, commented = env_example_names()
    text = COMPOSE_FILE.read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", text))
    defaults = dict(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*):-([^}]*)\}", text))
    assert used and used - set(defaults) <= active
    # a variable with a default in the compose file is documented, commented out, with it
    shown = {line[2:].split("=", 1)[0]: line[2:].split("=", 1)[1]
             for line in ENV_EXAMPLE.read_text().splitlines() if re.match(r"^# [A-Z_]+=", line)}
    for name, default in defaults.items():
        assert name in active or shown.get(name) == default, name


def test_secrets_are_placeholders():
    values = dotenv_values(ENV_EXAMPLE)
    assert "replace-me" in values["AIRTABLE_API_KEY"]
    assert values["POSTGRES_PASSWORD"] == "change-me"
