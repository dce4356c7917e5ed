"""No module of a package imports one that imports it back, directly or through others.

Imports inside functions and under ``TYPE_CHECKING`` count: deferring an import hides a cycle
from the interpreter, not from the next person who has to move one of the two modules.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.import_cycles import cycle_components, describe, find_cycles, import_graph

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("package", [
    "sandbox",
    "app",
    "broker",
    "workers",
])
def test_package_has_no_import_cycle(package: str) -> None:
    root = ROOT / package
    assert (root / "__init__.py").is_file()
    found = describe(root)
    print(f"import cycles in {package}:\n{found or '(none)'}")
    assert not found, f"import cycles in {package}:\n{found}"


def test_no_cycle_crosses_the_packages() -> None:
    """All four packages as one graph: a cycle may cross packages too."""
    found = describe(*(ROOT / name for name in ("app", "broker", "workers", "sandbox")))
    print(f"import cycles across app, broker, workers, sandbox:\n{found or '(none)'}")
    assert not found, f"import cycles across packages:\n{found}"


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_checker_finds_cycles_hidden_in_functions_and_type_checking(tmp_path: Path) -> None:
    package = _write(tmp_path, {
        "pkg/__init__.py": "from pkg.a import A\n",
        "pkg/a.py": "from pkg import b\nclass A: ...\n",
        "pkg/b.py": "def later():\n    from . import c\n    return c\n",
        "pkg/c.py": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                     "    from pkg.a import A\n"),
        "pkg/sub/__init__.py": "",
        "pkg/sub/x.py": "import pkg.sub.y\n",
        "pkg/sub/y.py": "from ..sub import x\n",
        "pkg/free.py": "import os\nfrom pkg import a\n",
    })
    assert import_graph(package) == {
        "pkg": {"pkg.a"}, "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.c"}, "pkg.c": {"pkg.a"},
        "pkg.sub": set(), "pkg.sub.x": {"pkg.sub.y"}, "pkg.sub.y": {"pkg.sub.x"},
        "pkg.free": {"pkg.a"},
    }
    assert find_cycles(package) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"],
                                    ["pkg.sub.x", "pkg.sub.y", "pkg.sub.x"]]
    assert cycle_components(package) == [["pkg.a", "pkg.b", "pkg.c"], ["pkg.sub.x", "pkg.sub.y"]]
    assert "pkg.a -> pkg.b -> pkg.c -> pkg.a" in describe(package)


def test_checker_finds_a_cycle_between_two_packages(tmp_path: Path) -> None:
    _write(tmp_path, {
        "low/__init__.py": "", "low/a.py": "def f():\n    from high import b\n",
        "high/__init__.py": "", "high/b.py": "import low.a\n",
    })
    assert find_cycles(tmp_path / "low") == [] and find_cycles(tmp_path / "high") == []
    assert find_cycles(tmp_path / "low", tmp_path / "high") == [["high.b", "low.a", "high.b"]]


def test_checker_passes_a_package_that_only_imports_downward(tmp_path: Path) -> None:
    package = _write(tmp_path, {
        "pkg/__init__.py": "from pkg.top import run\n",
        "pkg/top.py": "from pkg import low\nfrom pkg.low import helper\ndef run(): ...\n",
        "pkg/low.py": "import json\ndef helper(): ...\n",
    })
    assert import_graph(package) == {"pkg": {"pkg.top"}, "pkg.top": {"pkg.low"}, "pkg.low": set()}
    assert find_cycles(package) == []
    assert describe(package) == ""
