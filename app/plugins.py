"""Plug-ins: warehouses and extractors found by name through Python entry points.

A package makes its classes nameable in runs by declaring them in its ``pyproject.toml``::

    [project.entry-points."conveyor.warehouses"]
    mywh = "my_package.warehouse:MyWarehouse"   # a Warehouse subclass; its ``backends``
                                                # are the URL schemes it serves
    [project.entry-points."conveyor.extractors"]
    myapi = "my_package.extractor:MyExtractor"  # a TabularExtractor subclass

or, without packaging, by calling ``register_warehouse``/``register_extractor`` in a module
that ``CONVEYOR_IMPORTS`` names. Conveyor's own classes are declared the same way in its own
``pyproject.toml``; ``BUILTINS`` repeats them only so that an install whose entry points
are stale (an editable checkout not reinstalled) still has them.

A plug-in that fails to import is listed with its error (``conveyor plugins``) and fails
only a run that names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Final

from app.errors import ConfigurationError

if TYPE_CHECKING:
    from app.extractors.base import TabularExtractor
    from app.warehouses.base import Warehouse

WAREHOUSE_GROUP: Final = "conveyor.warehouses"
EXTRACTOR_GROUP: Final = "conveyor.extractors"
#: group → name → "module:Class", as Conveyor's pyproject.toml declares them.
BUILTINS: Final[dict[str, dict[str, str]]] = {
    WAREHOUSE_GROUP: {
        "sqlite": "app.warehouses.sqlite:SQLiteWarehouse",
        "postgres": "app.warehouses.postgres:PostgresWarehouse",
        "duckdb": "app.warehouses.duck:DuckDBWarehouse",
    },
    EXTRACTOR_GROUP: {"airtable": "app.extractors.airtable:AirtableExtractor"},
}
_CONVEYOR: Final = "conveyor"


@dataclass(frozen=True)
class Plugin:
    """One registered (or failed) plug-in, as ``conveyor plugins`` lists it."""

    group: str
    name: str
    target: str  # "module:Class"
    origin: str  # the distribution that declared it, or "register_…" for a call
    error: str | None = None
    schemes: tuple[str, ...] = ()


WAREHOUSES: dict[str, type[Warehouse]] = {}
EXTRACTORS: dict[str, type[TabularExtractor]] = {}
_found: dict[tuple[str, str], Plugin] = {}
_loaded = False


def register_warehouse(
    name: str, cls: type[Warehouse], *, origin: str = "register_warehouse"
) -> type[Warehouse]:
    """Make a warehouse class nameable in runs, and its ``backends`` usable as URL schemes.

    Raises:
        ConfigurationError: ``cls`` is not a Warehouse or declares no URL scheme.
    """
    from app.warehouses.base import Warehouse

    if not (isinstance(cls, type) and issubclass(cls, Warehouse)) or not cls.backends:
        raise ConfigurationError(
            f"warehouse plug-in {name!r} must be a Warehouse subclass with ``backends``"
            f" (its URL schemes), not {cls!r}"
        )
    WAREHOUSES[name] = cls
    _found[(WAREHOUSE_GROUP, name)] = Plugin(
        WAREHOUSE_GROUP, name, _target(cls), origin, schemes=tuple(cls.backends)
    )
    return cls


def register_extractor(
    name: str, cls: type[TabularExtractor], *, origin: str = "register_extractor"
) -> type[TabularExtractor]:
    """Make an extractor class nameable in runs (``conveyor run NAME``, distributed runs).

    Raises:
        ConfigurationError: ``cls`` is not a TabularExtractor.
    """
    from app.extractors.base import TabularExtractor

    if not (isinstance(cls, type) and issubclass(cls, TabularExtractor)):
        raise ConfigurationError(
            f"extractor plug-in {name!r} must be a TabularExtractor subclass, not {cls!r}"
        )
    EXTRACTORS[name] = cls
    _found[(EXTRACTOR_GROUP, name)] = Plugin(EXTRACTOR_GROUP, name, _target(cls), origin)
    return cls


def load_plugins() -> None:
    """Register every declared plug-in once per process (built-ins first, then the rest)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    declared = {group: list(entry_points(group=group)) for group in BUILTINS}
    for group, builtins in BUILTINS.items():
        names = {ep.name for ep in declared[group]}
        missing = [EntryPoint(n, v, group) for n, v in builtins.items() if n not in names]
        # Conveyor's own first, so a third-party plug-in of the same name overrides it.
        ordered = sorted(declared[group], key=lambda ep: _origin(ep) != _CONVEYOR)
        for entry in [*missing, *ordered]:
            _load(group, entry)


def plugins() -> list[Plugin]:
    """Every plug-in found, registered or failed, by group and name."""
    load_plugins()
    return sorted(_found.values(), key=lambda p: (p.group, p.name))


def failure(group: str, name: str) -> str | None:
    """Why the plug-in ``name`` of ``group`` could not be loaded, if it was found but failed."""
    found = _found.get((group, name))
    return None if found is None else found.error


def _load(group: str, entry: EntryPoint) -> None:
    origin = _origin(entry)
    try:
        cls = entry.load()
        if group == WAREHOUSE_GROUP:
            register_warehouse(entry.name, cls, origin=origin)
        else:
            register_extractor(entry.name, cls, origin=origin)
    except Exception as exc:  # noqa: BLE001  (any import error of a third-party module)
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        _found[(group, entry.name)] = Plugin(group, entry.name, entry.value, origin, error=reason)


def _origin(entry: EntryPoint) -> str:
    dist = getattr(entry, "dist", None)
    return dist.name if dist is not None else _CONVEYOR


def _target(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"
