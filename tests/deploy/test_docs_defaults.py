"""The time limits that docs/deployment.md and docker-compose.yml quote are the code's defaults."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.deploy.files import ROOT

QUOTED = re.compile(r"(hard time limit|soft time limit|visibility timeout)\s*\((\d+) s\b")
DOCUMENTS = ["docs/deployment.md", "docker-compose.yml"]


def code_defaults() -> dict[str, int]:
    """The limits broker/policies.py derives with no CONVEYOR_* override in the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_VISIBILITY")}
    script = ("import json; from broker import policies as p; print(json.dumps({"
              "'hard time limit': p.HARD_TIME_LIMIT, 'soft time limit': p.SOFT_TIME_LIMIT, "
              "'visibility timeout': p.VISIBILITY_TIMEOUT}))")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True, timeout=60)
    return {k: int(v) for k, v in json.loads(out.stdout).items()}


def test_the_code_defaults_are_the_documented_design():
    assert code_defaults() == {"hard time limit": 60, "soft time limit": 45, "visibility timeout": 120}


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_quoted_limit_is_the_codes_default(document):
    defaults = code_defaults()
    text = " ".join((ROOT / document).read_text().split())  # quotes may span lines
    quoted = QUOTED.findall(text)
    assert {name for name, _ in quoted} == set(defaults), f"{document} quotes {quoted}"
    wrong = [(name, int(value)) for name, value in quoted if int(value) != defaults[name]]
    assert not wrong, f"{document} says {wrong}; the code's defaults are {defaults}"
