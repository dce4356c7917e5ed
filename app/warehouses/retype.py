"""Retyping columns without a reload: every stored value is placed again by the load rules.

When a field's type changes between two runs that keep the table (no ``drop_tables``), its
column changes kind in place, in the transaction that prepares the table:

1. the column's values (with ``__id`` and ``__unfit``) are copied to a scratch table;
2. the warehouse gives the column its new SQL type, leaving it NULL
   (``Warehouse.change_column_types``: ``ALTER … TYPE … USING NULL`` on PostgreSQL, a table
   rebuild by default);
3. each row's value (the original kept in ``__unfit`` if there is one, else what the column
   held) is placed again by ``rows.place``, exactly as loading that value would place it.

So a migrated row is the row a load of the same record would write, and nothing is lost: a
value the new column cannot hold goes to ``__unfit`` under the record's id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final

import sqlalchemy as sa

from app.contracts import Column
from app.errors import WarehouseError
from app.warehouses import ddl, kinds, naming, rows
from app.warehouses.ddl import Flavor

#: Rows read from the scratch table (and written back) per statement.
CHUNK_ROWS: Final = 1000
#: Bind names of the write-back; no column name starts with ``__b``, so none is taken.
_ID_PARAM: Final = "__b_id"
_UNFIT_PARAM: Final = "__b_unfit"


def migrate(
    conn: sa.Connection,
    flavor: Flavor,
    name: str,
    changes: Sequence[tuple[Column, Column]],
    layout: Sequence[Column],
) -> None:
    """Give each changed column of table ``name`` its new kind, losing no value.

    Runs in the caller's transaction: if anything fails, the table is left as it was.

    Args:
        conn: A connection inside a write transaction, holding the catalog lock.
        flavor: The warehouse.
        name: The data table (it must exist and have every changed column).
        changes: ``(old column, new column)`` pairs: the same SQL column, another kind.
        layout: Every field column the table has, with the kinds it must have, in order.
    """
    if not changes:
        return
    olds = [old for old, _ in changes]
    scratch_name = naming.scratch_name("retype", name)
    ddl.drop_table(conn, flavor, scratch_name)
    scratch = ddl.data_table(flavor, scratch_name, olds)
    scratch.create(conn)
    live = ddl.data_table(flavor, name, olds)
    copied = [naming.ID, naming.UNFIT, *(col.column for col in olds)]
    present = sa.or_(*(live.c[column].is_not(None) for column in copied[1:]))
    query = sa.select(*(live.c[column] for column in copied)).where(present)
    conn.execute(scratch.insert().from_select(copied, query))
    flavor.change_column_types(conn, name, layout, [new for _, new in changes])
    _write_back(conn, flavor, scratch, name, changes)
    ddl.drop_table(conn, flavor, scratch_name)


def rebuild_with_types(
    conn: sa.Connection,
    flavor: Flavor,
    name: str,
    layout: Sequence[Column],
    retyped: Sequence[Column],
) -> None:
    """Rebuild table ``name`` as ``layout`` says, the ``retyped`` columns NULL in every row.

    Conveyor's columns and every other column of ``layout`` are copied as they are, in
    that order. The default of ``Warehouse.change_column_types``, for databases without
    ``ALTER COLUMN … TYPE``; it reads no database catalog but ``ddl.column_names``.

    Raises:
        WarehouseError: the table has a column the catalog does not map (added by hand):
            a rebuild would drop it.
    """
    rebuilt_name = naming.scratch_name("rebuild", name)
    rebuilt = ddl.data_table(flavor, rebuilt_name, layout)
    unmapped = ddl.column_names(conn, flavor, name) - set(rebuilt.c.keys())
    if unmapped:
        raise WarehouseError(
            f"table {name} has columns Conveyor does not map ({', '.join(sorted(unmapped))}):"
            " retyping a column rebuilds the table, which would drop them; move them elsewhere"
            " or load with drop_tables"
        )
    ddl.drop_table(conn, flavor, rebuilt_name)
    rebuilt.create(conn)
    emptied = {col.column for col in retyped}
    kept = [column for column in rebuilt.c.keys() if column not in emptied]
    old = ddl.data_table(flavor, name, [col for col in layout if col.column not in emptied])
    conn.execute(rebuilt.insert().from_select(kept, sa.select(*(old.c[c] for c in kept))))
    ddl.drop_table(conn, flavor, name)
    ddl.rename_table(conn, flavor, rebuilt_name, name)


def source_form(column: Column, stored: Any) -> Any:
    """The source value a column value stands for (None: the field was absent).

    Dates and timestamps come back as Airtable writes them (``2024-03-01``,
    ``2024-03-01T10:20:30.000Z``), and an unticked checkbox as absent.
    """
    value = kinds.from_column(column.kind, stored)
    if value is False and column.source_type == kinds.CHECKBOX:
        return None
    if isinstance(value, datetime):
        return kinds.format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _write_back(
    conn: sa.Connection,
    flavor: Flavor,
    scratch: sa.Table,
    name: str,
    changes: Sequence[tuple[Column, Column]],
) -> None:
    """Place every saved value in its retyped column (or ``__unfit``), chunk by chunk."""
    news = [new for _, new in changes]
    live = ddl.data_table(flavor, name, news)
    for new in news:
        if _is_checkbox(new):
            # As a load writes it: an absent checkbox is unticked (rows with a value follow).
            column = live.c[new.column]
            conn.execute(sa.update(live).where(column.is_(None)).values({column: False}))
    update = (
        sa.update(live)
        .where(live.c[naming.ID] == sa.bindparam(_ID_PARAM))
        .values(
            {live.c[naming.UNFIT]: sa.bindparam(_UNFIT_PARAM)}
            | {live.c[new.column]: sa.bindparam(_param(i)) for i, new in enumerate(news)}
        )
    )
    last: str | None = None
    while True:
        query = sa.select(scratch).order_by(scratch.c[naming.ID]).limit(CHUNK_ROWS)
        if last is not None:
            query = query.where(scratch.c[naming.ID] > last)
        chunk = conn.execute(query).mappings().all()
        if not chunk:
            return
        params = [_replaced(row, changes, flavor.exact_floats) for row in chunk]
        conn.execute(update, params)
        last = chunk[-1][naming.ID]


def _replaced(
    row: Mapping[Any, Any], changes: Sequence[tuple[Column, Column]], exact_floats: bool
) -> dict[str, Any]:
    """The write-back parameters of one saved row: its retyped columns and ``__unfit``."""
    unfit = dict(row[naming.UNFIT] or {})
    params: dict[str, Any] = {_ID_PARAM: row[naming.ID]}
    for i, (old, new) in enumerate(changes):
        # The original is under the name the field had when the row was written.
        if old.field_name in unfit:
            value = unfit.pop(old.field_name)
        elif new.field_name in unfit:
            value = unfit.pop(new.field_name)
        else:
            value = source_form(old, row[old.column])
        if value is None:
            params[_param(i)] = False if _is_checkbox(new) else None
            continue
        params[_param(i)], keep = rows.place(new, value, exact_floats=exact_floats)
        if keep:
            unfit[new.field_name] = value
    params[_UNFIT_PARAM] = unfit or None
    return params


def _is_checkbox(column: Column) -> bool:
    return column.source_type == kinds.CHECKBOX and column.kind == kinds.BOOLEAN


def _param(index: int) -> str:
    return f"__b_{index}"
