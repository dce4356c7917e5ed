"""Options shared by commands, so a flag means the same on every command."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from app.errors import ConfigurationError
from app.extractors.base import TabularExtractor
from app.plugins import WAREHOUSE_GROUP, failure
from app.registry import WAREHOUSES, extractor_class, warehouse_class
from app.warehouses import Warehouse, warehouse_for_url

WarehouseOption = Annotated[str | None, typer.Option(
    "--warehouse", help="Warehouse: a URL (sqlite:///file.db, postgresql://…) or a registered name "
    "(sqlite, postgres: built from WAREHOUSE_URL). Default: WAREHOUSE_URL.")]
TablesOption = Annotated[str | None, typer.Option(
    "--tables", help="Comma-separated table names or ids. Default: AIRTABLE_TABLES, else every table.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
SourceArgument = Annotated[str, typer.Argument(help="Registered extractor, e.g. airtable")]
DropTablesOption = Annotated[bool, typer.Option("--drop-tables", help="Replace tables atomically")]
IncrementalOption = Annotated[bool, typer.Option(
    "--incremental", help="Read only what changed since each table's last successful sync "
                          "(deletes included); a table without sync state is fully synced")]
HardDeletesOption = Annotated[bool, typer.Option(
    "--hard-deletes", help="Delete the rows of records deleted at the source "
                           "(default: set their __deleted_at)")]


def is_url(value: str) -> bool:
    return "://" in value or value.startswith("sqlite:")


def table_list(tables: str | None) -> list[str] | None:
    """The ``--tables`` value as a list (None when not given)."""
    if tables is None:
        return None
    names = [t.strip() for t in tables.split(",") if t.strip()]
    if not names:
        raise ConfigurationError("--tables is empty: give comma-separated table names or ids")
    return names


@contextlib.contextmanager
def blamed_on(flag: str | None, variable: str) -> Iterator[None]:
    """Errors about ``variable`` name ``flag`` instead when the value came from that flag."""
    try:
        yield
    except ConfigurationError as exc:
        text = str(exc)
        if flag is None or variable not in text:
            raise
        raise ConfigurationError(text.replace(variable, flag, 1)) from None


def local_warehouse(value: str | None) -> Warehouse | None:
    """The warehouse a ``--warehouse`` value names for a run in this process (None: default)."""
    if value is None:
        return None
    if is_url(value):
        with blamed_on("--warehouse", "WAREHOUSE_URL"):
            return warehouse_for_url(value)
    return warehouse_class(_registered(value))()


def remote_warehouse(value: str | None) -> type[Warehouse] | Warehouse | None:
    """The warehouse a ``--warehouse`` value names for a run on the workers: a URL travels in
    the run plan without its password (the workers take it from the run's connection), a
    registered name makes the workers use their own ``WAREHOUSE_URL`` of that kind.

    Raises:
        ConfigurationError: the name is not registered, or the URL's database is unsupported.
    """
    if value is None:
        return None
    if is_url(value):
        with blamed_on("--warehouse", "WAREHOUSE_URL"):
            return warehouse_for_url(value)
    return warehouse_class(_registered(value))


def _registered(name: str) -> str:
    if name not in WAREHOUSES:
        broken = failure(WAREHOUSE_GROUP, name)
        if broken:
            raise ConfigurationError(f"--warehouse {name!r}: the warehouse plug-in failed to load: {broken}")
        known = ", ".join(sorted(WAREHOUSES))
        raise ConfigurationError(f"--warehouse {name!r} is neither a URL nor a registered warehouse "
                                 f"({known})")
    return name


def build_extractor(source: str, tables: list[str] | None, **extra: Any) -> TabularExtractor:
    """The extractor ``source`` for a run in this process, reading ``tables`` only if given."""
    cls = extractor_class(source)
    params = inspect.signature(cls).parameters
    kwargs = {k: v for k, v in extra.items() if k in params}
    if tables is not None:
        if "tables" not in params:
            raise ConfigurationError(f"--tables: extractor {source!r} does not take a table list")
        kwargs["tables"] = tables
    with blamed_on("--tables" if tables is not None else None, "AIRTABLE_TABLES"):
        return cls(**kwargs)
