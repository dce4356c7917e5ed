"""A plug-in package installed for real: its entry points make its classes nameable."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from app.plugins import BUILTINS, EXTRACTOR_GROUP, WAREHOUSE_GROUP

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TOY = ROOT / "tests" / "plugins" / "conveyor_toy"


@pytest.fixture(scope="module")
def toy_site(tmp_path_factory) -> Path:
    """conveyor-toy installed by pip into a directory of its own (its dist-info included)."""
    site = tmp_path_factory.mktemp("toy-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(TOY)],
        check=True, capture_output=True, timeout=300,
    )
    assert list(site.glob("conveyor_toy-*.dist-info/entry_points.txt"))
    return site


def conveyor(site: Path | None, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join(p for p in (str(site) if site else "", str(ROOT)) if p)
    full_env = {**os.environ, "PYTHONPATH": path, "COLUMNS": "200", **env}
    return subprocess.run([sys.executable, "-m", "broker.cli", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=120)


def test_conveyor_plugins_lists_the_builtins_and_the_installed_plugin(toy_site):
    listed = conveyor(toy_site, "plugins")
    assert listed.returncode == 0, listed.stderr
    for group in (WAREHOUSE_GROUP, EXTRACTOR_GROUP):
        for name, target in BUILTINS[group].items():
            assert name in listed.stdout and target in listed.stdout
    assert "conveyor_toy:ToyWarehouse" in listed.stdout and "toysqlite://" in listed.stdout
    assert "conveyor_toy:ToyExtractor" in listed.stdout and "conveyor-toy" in listed.stdout
    without = conveyor(None, "plugins")
    assert without.returncode == 0 and "conveyor_toy" not in without.stdout


def test_the_plugin_extractor_loads_into_the_plugin_warehouse(toy_site, tmp_path):
    database = tmp_path / "toy.db"
    result = conveyor(toy_site, "run", "toy", "--warehouse", f"toysqlite:///{database}")
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(database) as conn:
        rows = conn.execute('SELECT "__id", "word", "letters" FROM "toy__greetings" ORDER BY 1').fetchall()
    assert rows == [("rec1", "hello", 5), ("rec2", "bonjour", 7), ("rec3", "hej", 3)]


def test_without_the_package_the_names_are_unknown(tmp_path):
    result = conveyor(None, "run", "toy", "--warehouse", f"sqlite:///{tmp_path / 'x.db'}")
    assert result.returncode == 1
    assert "unknown extractor 'toy'" in result.stderr and "airtable" in result.stderr
    result = conveyor(None, "run", "airtable", "--warehouse", f"toysqlite:///{tmp_path / 'x.db'}")
    assert result.returncode == 1 and "unsupported database 'toysqlite'" in result.stderr


def test_a_plugin_that_fails_to_import_is_listed_with_its_error(tmp_path):
    """A real broken distribution on the path: listed as failed, other plug-ins unharmed."""
    dist = tmp_path / "broken_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[conveyor.warehouses]\nbroken = no_such_module:Nothing\n")
    listed = conveyor(tmp_path, "plugins")
    assert listed.returncode == 1
    assert "broken" in listed.stdout and "ModuleNotFoundError" in listed.stdout
    assert "DuckDBWarehouse" in listed.stdout
    run = conveyor(tmp_path, "enqueue", "airtable", "--warehouse", "broken")
    assert "broken" in run.stderr and "failed to load" in run.stderr
