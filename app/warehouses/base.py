"""The Warehouse base class: connection, error translation, and the load and read API."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.types import TypeEngine

from app.contracts import (
    Batch,
    BatchResult,
    Column,
    Record,
    RejectedRecord,
    SyncCommit,
    TableRef,
    TableSchema,
    TableTarget,
)
from app.errors import ConfigurationError
from app.settings import get_settings
from app.warehouses import ddl, loader, naming, retype, rows, tables
from app.warehouses.catalog import Catalog
from app.warehouses.failures import masked_url, one_line, parse_url, scrub, translated

#: Execution option that makes a SQLite transaction a reader (see ``sqlite.py``).
READ_ONLY_OPTION = "conveyor_read_only"
#: Ids per ``IN (…)`` query: well under every database's bound-parameter limit.
_IN_CHUNK = 500


class Warehouse(ABC):
    """A SQL database that Conveyor loads tables into (SQLite or PostgreSQL).

    Construct it with a URL, or bare to use ``WAREHOUSE_URL``/``WAREHOUSE_SCHEMA``. Nothing
    connects until first use; ``check()`` connects and proves the warehouse is writable.
    """

    #: The ``make_url(...).get_backend_name()`` values this class handles.
    backends: ClassVar[tuple[str, ...]] = ()
    #: Whether a number column keeps NaN and -0.0; where not, they go to ``__unfit``.
    exact_floats: bool = True
    #: Whether text and JSON values may hold NUL characters; where not, such records are
    #: rejected with a reason naming the field.
    allows_nul: bool = True

    def __init__(self, url: str | None = None, *, schema: str | None = None) -> None:
        """Validate the URL; nothing connects yet.

        Args:
            url: The database URL; ``WAREHOUSE_URL`` when None.
            schema: Where tables go (PostgreSQL only); ``WAREHOUSE_SCHEMA`` when None.

        Raises:
            ConfigurationError: the URL is not one this class can use.
        """
        parsed = parse_url(url if url is not None else get_settings().warehouse_url)
        if parsed.get_backend_name() not in self.backends:
            raise ConfigurationError(
                f"WAREHOUSE_URL {masked_url(parsed)} is not"
                f" a {type(self).__name__} URL: it must start with {self.backends[0]}://"
            )
        self.url = self._normalise_url(parsed)
        self._password = parsed.password
        self.schema = self._pick_schema(schema)
        self.catalog = Catalog(self)
        self._engine: sa.Engine | None = None
        self._engine_pid = 0
        self._catalog_ready = False

    # -- what each dialect provides --------------------------------------------------------

    def _normalise_url(self, url: sa.URL) -> sa.URL:
        """The URL as the engine is created with (driver chosen, options checked)."""
        return url

    def _pick_schema(self, schema: str | None) -> str | None:
        """The schema tables live in, from the argument or the settings."""
        return None

    @abstractmethod
    def _create_engine(self) -> sa.Engine:
        """A new engine for ``self.url``, tuned for several writer processes."""

    @abstractmethod
    def type_for(self, kind: str) -> TypeEngine[Any]:
        """The SQL type of a column of ``kind``."""

    @abstractmethod
    def upsert(self, table: sa.Table, keys: Sequence[str], update: Sequence[str]) -> sa.Insert:
        """An INSERT that updates ``update`` on a ``keys`` conflict (does nothing if empty)."""

    def change_column_types(
        self, conn: sa.Connection, name: str, layout: Sequence[Column], retyped: Sequence[Column]
    ) -> None:
        """Give the ``retyped`` columns of table ``name`` the SQL types of their (new) kinds.

        The hook of a retype (see ``retype.migrate``), called in the transaction that
        prepares the table: the caller has saved the columns' values and writes them back
        converted, so the columns may (and should) be left NULL in every row. The default
        rebuilds the table (``retype.rebuild_with_types``): create it anew as ``layout``
        says, copy the other columns, drop the old one, rename; any database with
        transactional DDL and ``ALTER TABLE … RENAME TO`` supports that. A warehouse with
        ``ALTER COLUMN … TYPE`` may override it to keep the table in place.

        Args:
            conn: A connection inside the write transaction, holding the catalog lock.
            name: The data table.
            layout: Every field column the table has, with the kinds it must have, in order.
            retyped: The columns of ``layout`` whose kind changed.
        """
        retype.rebuild_with_types(conn, self, name, layout, retyped)

    def lock_catalog(self, conn: sa.Connection) -> None:  # noqa: B027 (optional hook)
        """Serialise catalog changes until the transaction ends (SQLite writers already are)."""

    def _prepare_database(self, conn: sa.Connection) -> None:  # noqa: B027 (optional hook)
        """Create what must exist before the catalog (PostgreSQL: the schema)."""

    def _prepare_location(self) -> None:  # noqa: B027 (optional hook)
        """Make the database reachable before connecting (SQLite: its directory)."""

    def _make_directory_of(self, database: str) -> None:
        """Create the directory of a file database (SQLite, DuckDB), naming it if we cannot."""
        directory = Path(database).parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"WAREHOUSE_URL {self.display_url} is not writable: cannot create directory"
                f" {directory} ({exc.strerror}); point it at a file in a writable directory"
            ) from None

    def _is_transient(self, exc: sa.exc.DBAPIError) -> bool:
        """Whether ``exc`` may go away on retry (dialects add their own cases)."""
        return exc.connection_invalidated or isinstance(exc, sa.exc.InterfaceError)

    def refuses_row(self, exc: sa.exc.DBAPIError) -> bool:
        """Whether ``exc`` is about one row's data (dialects add their own cases).

        Anything else (a lost connection, a missing table) is about the whole batch and
        must fail it, not reject its rows one by one.
        """
        return isinstance(exc, sa.exc.DataError | sa.exc.IntegrityError)

    def row_too_large(self, exc: sa.exc.DBAPIError) -> bool:
        """Whether ``exc`` says a row is too large as laid out (packing it may help)."""
        return False

    def write_rows(
        self,
        conn: sa.Connection,
        target: TableTarget,
        pending: list[tuple[Record, dict[str, Any]]],
        run_id: str,
    ) -> list[RejectedRecord]:
        """Upsert one batch's rows into ``target.write_to``; returns the refused records.

        The default sends the batch as one executemany of the upsert and sets refused rows
        aside with savepoints (``loader.write_rows``); a dialect with a faster bulk path
        (DuckDB's Arrow scan) overrides it.
        """
        return loader.write_rows(conn, self, target, pending, run_id)

    @property
    def binds_json_text(self) -> bool:
        """Whether every write path binds JSON values through ``codec.to_json_text`` (the
        engine's JSON serializer), so rows may carry them as ``codec.JSONText``."""
        return False

    @abstractmethod
    def _diagnose(self, exc: sa.exc.DBAPIError) -> str:
        """Why the warehouse cannot be used and what to fix, after ``WAREHOUSE_URL <url>``."""

    # -- connection ------------------------------------------------------------------------

    def identity(self) -> str:
        """What this warehouse writes to (database and schema, no password), for the overlap
        guard: two spellings of one warehouse have one identity."""
        url = self.url.set(password=None, query={})
        if url.get_backend_name() == "sqlite" and url.database:
            url = url.set(drivername="sqlite", database=os.path.abspath(url.database))
        return f"{url.render_as_string(hide_password=False)}#{self.schema or ''}"

    def to_params(self) -> dict[str, Any]:
        """The constructor arguments a worker needs to build this warehouse again, without the
        password (``password`` says whether the worker must supply one from the connection)."""
        return {
            "url": self.url.set(password=None).render_as_string(hide_password=False),
            "schema": self.schema,
            "password": self._password is not None,
        }

    @property
    def display_url(self) -> str:
        """The URL with any password masked: safe for logs and messages."""
        return masked_url(self.url)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.display_url!r})"

    @property
    def engine(self) -> sa.Engine:
        """The engine, created on first use (and renewed in a forked child process)."""
        if self._engine is None:
            try:
                self._engine = self._create_engine()
            except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
                message = f"WAREHOUSE_URL {self.display_url} cannot be used: {one_line(str(exc))}"
                raise ConfigurationError(scrub(message, self._password)) from None
            self._engine_pid = os.getpid()
        elif self._engine_pid != os.getpid():
            # Pooled connections belong to the parent; sharing a socket corrupts both sides.
            self._engine.dispose(close=False)
            self._engine_pid = os.getpid()
        return self._engine

    def dispose(self) -> None:
        """Close every pooled connection; the next use reconnects."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        self._catalog_ready = False

    def check(self) -> None:
        """Connect and prove the warehouse is writable by creating the catalog tables.

        Raises:
            ConfigurationError: the URL is invalid, the server unreachable, the database
                missing, or the file or directory read-only; one line naming WAREHOUSE_URL.
        """
        try:
            self._prepare_location()
            with self.engine.begin() as conn:
                self._create_catalog(conn)
        except sa.exc.DBAPIError as exc:
            message = f"WAREHOUSE_URL {self.display_url} {self._diagnose(exc)}"
            raise ConfigurationError(scrub(one_line(message), self._password)) from None
        self._catalog_ready = True

    def _create_catalog(self, conn: sa.Connection) -> None:
        self.lock_catalog(conn)
        self._prepare_database(conn)
        self.catalog.create(conn)

    def _ensure_catalog(self) -> None:
        if self._catalog_ready:
            return
        self._prepare_location()
        with self._errors("creating the catalog tables"), self.engine.begin() as conn:
            self._create_catalog(conn)
        self._catalog_ready = True

    def _errors(self, doing: str) -> AbstractContextManager[None]:
        """Translate SQLAlchemy errors raised while ``doing`` into Conveyor's."""
        prefix = f"warehouse {self.display_url} failed {doing}"
        return translated(prefix, self._is_transient, self._password)

    @contextmanager
    def _writing(self, doing: str) -> Iterator[sa.Connection]:
        """One write transaction, committed on success, with errors translated."""
        self._ensure_catalog()
        with self._errors(doing), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _reading(self, doing: str) -> Iterator[sa.Connection]:
        """One read-only transaction, with errors translated."""
        self._ensure_catalog()
        with self._errors(doing), self.engine.connect() as conn:
            conn.execution_options(**{READ_ONLY_OPTION: True})
            yield conn

    # -- loading ---------------------------------------------------------------------------

    def prepare_table(self, schema: TableSchema, *, run_id: str, replace: bool) -> TableTarget:
        """Create (or extend) the table that ``schema``'s records load into.

        A field keeps its column across runs (by ``FieldSpec.key``) and a table its name (by
        source and table id). Without ``replace``, a column whose field's type now gives
        another kind is migrated to it here, every stored value kept (``retype.migrate``).
        With ``replace`` the rows go to a fresh staging table that ``finish_table`` swaps
        in. Calling this again for the same run and table returns the same target and keeps
        the rows already loaded.

        Args:
            schema: The table's fields, with kinds from ``kinds.detect_schema`` (a field
                without a kind gets its type's, else ``text``).
            run_id: The run loading the table.
            replace: Load into a staging table and replace the live table at the end.

        Returns:
            Where this run's batches go and how fields map to columns.

        Raises:
            WarehouseUnavailableError: the warehouse is unreachable or locked; retry.
            WarehouseError: the database refused the DDL.
        """
        with self._writing(f"preparing table {schema.table.name!r}") as conn:
            return tables.prepare(conn, self, self.catalog, schema, run_id=run_id, replace=replace)

    def load_batch(self, target: TableTarget, batch: Batch) -> BatchResult:
        """Upsert ``batch`` (by record id) in one transaction with its ``_conveyor_batches`` row.

        A batch loaded before changes nothing and returns its stored result, ``replayed``.
        Records the database refuses are returned in ``rejected`` with a one-line reason; the
        others land. Every record is one or the other: ``loaded + len(rejected)`` is the
        number of records in the batch (see ``app.warehouses`` for what lands how).

        Raises:
            WarehouseUnavailableError: the connection failed or the database is locked;
                nothing was committed; retry.
            WarehouseError: the database refused the batch as a whole.
        """
        doing = f"loading batch {batch.batch_no} of table {target.table.name!r}"
        with self._writing(doing) as conn:
            return loader.load(conn, self, self.catalog, target, batch)

    def finish_table(self, target: TableTarget, commit: SyncCommit | None = None) -> int:
        """Swap a replacing load's staging table in, atomically; a second call does nothing.

        With ``commit``, in the same transaction: the rows of records deleted at the source
        get ``__deleted_at`` (or are deleted), and the table's sync state is stored, so a
        cursor never moves past data that is not visible.

        Returns:
            How many rows were found deleted at the source.

        Raises:
            WarehouseError: the staging table is gone (aborted) or the swap was refused.
            WarehouseUnavailableError: the warehouse is unreachable or locked; retry.
        """
        with self._writing(f"finishing table {target.table.name!r}") as conn:
            return tables.finish(conn, self, self.catalog, target, commit)

    def abort_table(self, target: TableTarget) -> None:
        """Drop a replacing load's staging table; the live table is left as it was."""
        with self._writing(f"aborting table {target.table.name!r}") as conn:
            tables.abort(conn, self, self.catalog, target)

    def loaded_batches(self, run_id: str, table_id: str) -> dict[int, int]:
        """batch_no → rows loaded, for every batch of ``table_id`` that ``run_id`` loaded."""
        with self._reading("reading loaded batches") as conn:
            return self.catalog.loaded_batches(conn, run_id, table_id)

    # -- reading ---------------------------------------------------------------------------

    def table_name_for(self, table: TableRef) -> str | None:
        """The warehouse table ``table`` loads into, or None if it never was prepared."""
        with self._reading("reading the table catalog") as conn:
            entry = self.catalog.table_entry(conn, table)
        return None if entry is None else entry.sql_name

    def sync_state(self, source: str, table: TableRef, change_source: str) -> dict[str, Any] | None:
        """The cursor a change source left for ``table`` of source ``source`` (its identity,
        e.g. ``airtable:app…``), or None: never synced, or its warehouse table is gone."""
        with self._reading("reading the sync state") as conn:
            entry = self.catalog.table_entry(conn, table)
            if entry is None or not ddl.table_exists(conn, self, entry.sql_name):
                return None
            return self.catalog.state(conn, source, table.table_id, change_source)

    def deleted_ids(self, table: TableRef) -> set[str]:
        """The ids of ``table``'s rows whose record was deleted at the source."""
        name = self.table_name_for(table)
        with self._reading(f"reading deleted rows of {table.name!r}") as conn:
            if name is None or not ddl.table_exists(conn, self, name):
                return set()
            data = ddl.data_table(self, name, ())
            query = sa.select(data.c[naming.ID]).where(data.c[naming.DELETED_AT].is_not(None))
            return set(conn.execute(query).scalars())

    def live_ids(self, table: TableRef, ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` have a row in ``table`` that is not marked deleted: the rows a
        field-by-field update can change (a missing or deleted one needs its whole record)."""
        wanted = sorted(set(ids))
        name = self.table_name_for(table)
        with self._reading(f"reading the rows of {table.name!r}") as conn:
            if not wanted or name is None or not ddl.table_exists(conn, self, name):
                return set()
            data = ddl.data_table(self, name, ())
            found: set[str] = set()
            for start in range(0, len(wanted), _IN_CHUNK):
                query = sa.select(data.c[naming.ID]).where(
                    data.c[naming.ID].in_(wanted[start:start + _IN_CHUNK]),
                    data.c[naming.DELETED_AT].is_(None))
                found.update(conn.execute(query).scalars())
            return found

    def retired_columns(self, sql_table: str) -> dict[str, str]:
        """field key → column of the columns whose field the source no longer has."""
        with self._reading("reading the column catalog") as conn:
            return self.catalog.retired_columns(conn, sql_table)

    def columns_for(self, sql_table: str) -> list[Column]:
        """The field→column mapping of a warehouse table, in field order."""
        with self._reading("reading the column catalog") as conn:
            return self.catalog.column_map(conn, sql_table)

    def row_count(self, table: TableRef) -> int:
        """The number of rows of ``table`` in the warehouse (0 if it has no table yet)."""
        name = self.table_name_for(table)
        with self._reading(f"counting rows of {table.name!r}") as conn:
            if name is None or not ddl.table_exists(conn, self, name):
                return 0
            return ddl.count_rows(conn, self, name)

    def read_records(self, table: TableRef) -> Iterator[Record]:
        """The records stored for ``table``, ordered by id, in Airtable's shape.

        Values come back as Python objects (``datetime.date``, aware UTC ``datetime``,
        decoded JSON); values kept in ``__unfit`` come back as they were sent.
        """
        name = self.table_name_for(table)
        if name is None:
            return iter(())
        return self._iter_records(name, self.columns_for(name))

    def created_times(self, table: TableRef) -> list[datetime]:
        """The creation times of the records stored for ``table`` (empty if it has none yet):
        the previous sync's, which split a large table into equal partitions."""
        name = self.table_name_for(table)
        if name is None:
            return []
        columns = self.columns_for(name)
        with self._reading(f"reading creation times of {name}") as conn:
            if not ddl.table_exists(conn, self, name):
                return []
            column = ddl.data_table(self, name, columns).c[naming.CREATED_TIME]
            query = sa.select(column).where(column.is_not(None))
            return [value for (value,) in conn.execute(query)]

    def _iter_records(self, name: str, columns: list[Column]) -> Iterator[Record]:
        with self._reading(f"reading table {name}") as conn:
            if not ddl.table_exists(conn, self, name):
                return
            table = ddl.data_table(self, name, columns)
            query = sa.select(table).order_by(table.c[naming.ID])
            for row in conn.execution_options(yield_per=500).execute(query):
                yield rows.to_record(row._mapping, columns)

    def list_tables(self) -> list[str]:
        """The data tables Conveyor has loaded, sorted by name."""
        with self._reading("listing tables") as conn:
            existing = ddl.table_names(conn, self)
            return sorted(set(self.catalog.sql_names(conn)) & existing)

    # -- run history -----------------------------------------------------------------------

    def record_run(self, run: dict[str, Any]) -> None:
        """Insert or update one row of ``_conveyor_runs``; left-out keys keep their value.

        Args:
            run: ``run_id`` (required), ``workflow``, ``state``, ``options``, ``started_at``,
                ``finished_at`` (datetime or ISO 8601 string), ``error``, ``tables``.

        Raises:
            ValueError: a key is unknown or ``run_id`` is missing.
        """
        with self._writing("recording a run") as conn:
            self.catalog.record_run(conn, run)

    def list_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest ``limit`` runs, newest first, with the keys ``record_run`` takes."""
        with self._reading("listing runs") as conn:
            return self.catalog.list_runs(conn, limit)
