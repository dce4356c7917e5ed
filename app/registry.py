"""The classes a run may name: messages and the CLI resolve names only through this registry.

A task message never carries an import path, so whoever can write to the broker can only ask
for what is registered here. Extractors and warehouses come from plug-ins (``app.plugins``:
entry points, Conveyor's own included, or ``register_extractor``/``register_warehouse``).
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from app.errors import ConfigurationError
from app.extractors import TabularExtractor
from app.plugins import (
    EXTRACTOR_GROUP,
    EXTRACTORS,
    WAREHOUSE_GROUP,
    WAREHOUSES,
    failure,
    load_plugins,
    register_extractor,
    register_warehouse,
)
from app.warehouses import Warehouse

__all__ = [
    "EXTRACTORS",
    "WAREHOUSES",
    "WORKFLOWS",
    "extractor_class",
    "name_of",
    "register_extractor",
    "register_warehouse",
    "register_workflow",
    "warehouse_class",
    "workflow_class",
]


class NamedWorkflow(Protocol):
    """What the registry needs of a workflow class (``app.workflows.base.Workflow``)."""

    @classmethod
    def name(cls) -> str: ...

    def run(self, **options: Any) -> Any: ...

    def call_hook(self, hook: str) -> None: ...


W = TypeVar("W", bound=type[NamedWorkflow])

#: ETLWorkflow registers itself (app.workflows.etl), so this module never imports a driver.
WORKFLOWS: dict[str, type[NamedWorkflow]] = {}
load_plugins()


def register_workflow(cls: W) -> W:
    """Make a user's workflow nameable in distributed runs, under ``cls.name()``."""
    WORKFLOWS[cls.name()] = cls
    return cls


def _lookup(kind: str, table: dict[str, type], name: str, group: str | None = None) -> type:
    try:
        return table[name]
    except KeyError:
        broken = failure(group, name) if group else None
        if broken:
            raise ConfigurationError(f"{kind} plug-in {name!r} failed to load: {broken}") from None
        known = ", ".join(sorted(table)) or "none"
        raise ConfigurationError(f"unknown {kind} {name!r}: registered are {known}") from None


def extractor_class(name: str) -> type[TabularExtractor]:
    """The registered extractor called ``name``."""
    return _lookup("extractor", EXTRACTORS, name, EXTRACTOR_GROUP)


def warehouse_class(name: str) -> type[Warehouse]:
    """The registered warehouse called ``name``."""
    return _lookup("warehouse", WAREHOUSES, name, WAREHOUSE_GROUP)


def workflow_class(name: str) -> type[NamedWorkflow]:
    """The registered workflow called ``name``."""
    return _lookup("workflow", WORKFLOWS, name)


def name_of(table: dict[str, type], cls: type) -> str:
    """The registry name of ``cls`` (which must be registered)."""
    for name, registered in table.items():
        if registered is cls:
            return name
    raise ConfigurationError(f"{cls.__name__} is not registered: register it before enqueueing")
