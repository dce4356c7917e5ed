"""The classes a run may name: messages and the CLI resolve names only through this registry.

A task message never carries an import path, so whoever can write to the broker can only ask
for what is registered here.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from app.errors import ConfigurationError
from app.extractors import AirtableExtractor, TabularExtractor
from app.warehouses import PostgresWarehouse, SQLiteWarehouse, Warehouse

EXTRACTORS: dict[str, type[TabularExtractor]] = {"airtable": AirtableExtractor}
WAREHOUSES: dict[str, type[Warehouse]] = {"sqlite": SQLiteWarehouse, "postgres": PostgresWarehouse}
class NamedWorkflow(Protocol):
    """What the registry needs of a workflow class (``app.workflows.base.Workflow``)."""

    @classmethod
    def name(cls) -> str: ...

    def run(self, **options: Any) -> Any: ...

    def call_hook(self, hook: str) -> None: ...


W = TypeVar("W", bound=type[NamedWorkflow])

#: ETLWorkflow registers itself (app.workflows.etl), so this module never imports a driver.
WORKFLOWS: dict[str, type[NamedWorkflow]] = {}


def register_extractor(name: str, cls: type[TabularExtractor]) -> type[TabularExtractor]:
    """Make a user's extractor nameable in runs (``conveyor run NAME``, distributed runs)."""
    EXTRACTORS[name] = cls
    return cls


def register_workflow(cls: W) -> W:
    """Make a user's workflow nameable in distributed runs, under ``cls.name()``."""
    WORKFLOWS[cls.name()] = cls
    return cls


def _lookup(kind: str, table: dict[str, type], name: str) -> type:
    try:
        return table[name]
    except KeyError:
        known = ", ".join(sorted(table)) or "none"
        raise ConfigurationError(f"unknown {kind} {name!r}: registered are {known}") from None


def extractor_class(name: str) -> type[TabularExtractor]:
    """The registered extractor called ``name``."""
    return _lookup("extractor", EXTRACTORS, name)


def warehouse_class(name: str) -> type[Warehouse]:
    """The registered warehouse called ``name``."""
    return _lookup("warehouse", WAREHOUSES, name)


def workflow_class(name: str) -> type[NamedWorkflow]:
    """The registered workflow called ``name``."""
    return _lookup("workflow", WORKFLOWS, name)


def name_of(table: dict[str, type], cls: type) -> str:
    """The registry name of ``cls`` (which must be registered)."""
    for name, registered in table.items():
        if registered is cls:
            return name
    raise ConfigurationError(f"{cls.__name__} is not registered: register it before enqueueing")
