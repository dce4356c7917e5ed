"""app/ must stay usable without Celery: no module under it imports celery, kombu or redis."""

import ast
from pathlib import Path

FORBIDDEN = {"celery", "kombu", "redis", "broker", "workers", "sandbox"}
APP = Path(__file__).resolve().parents[2] / "app"


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_app_imports_nothing_from_the_distribution_layer():
    modules = sorted(APP.rglob("*.py"))
    assert len(modules) > 10
    offenders = {
        str(path.relative_to(APP)): sorted(imported_roots(path) & FORBIDDEN) for path in modules
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_checker_sees_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import celery\nfrom kombu import Queue\n")
    assert imported_roots(bad) & FORBIDDEN == {"celery", "kombu"}
