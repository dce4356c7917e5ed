"""SQLite stores a timestamp as the text SQLAlchemy's own DateTime would write for its UTC time."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from app.warehouses.sqlite import UTCDateTime


def sqlalchemys_text(value: datetime) -> str:
    """What UTCDateTime's conversion then SQLAlchemy's DateTime processor write."""
    dialect = sqlite.dialect()
    naive_utc = UTCDateTime().process_bind_param(value, dialect)
    return sa.DateTime().dialect_impl(dialect).bind_processor(dialect)(naive_utc)


def test_the_text_bound_is_what_sqlalchemy_writes_for_any_time_and_zone():
    process = UTCDateTime().bind_processor(sqlite.dialect())
    rng = random.Random(3)
    values = [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999),
              datetime(2024, 2, 29, 0, 0, 0, 1, tzinfo=timezone(timedelta(hours=-3)))]
    for _ in range(2000):
        moment = datetime(1970, 1, 1) + timedelta(microseconds=rng.randrange(2**62 // 1000))
        zone = rng.choice([None, UTC, timezone(timedelta(minutes=rng.randrange(-720, 840)))])
        values.append(moment.replace(microsecond=rng.choice([0, 64000, moment.microsecond]),
                                     tzinfo=zone))
    for value in values:
        assert process(value) == sqlalchemys_text(value), value
    assert process(None) is None


def test_a_timestamp_reads_back_as_the_same_instant(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 't.db'}")
    table = sa.Table("t", sa.MetaData(), sa.Column("at", UTCDateTime()))
    table.create(engine)
    written = datetime(2022, 7, 4, 22, 0, 6, 64000, tzinfo=timezone(timedelta(hours=2)))
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"at": written}])
        stored = conn.exec_driver_sql("SELECT at FROM t").scalar_one()
        read = conn.execute(sa.select(table.c.at)).scalar_one()
    assert stored == "2022-07-04 20:00:06.064000"
    assert read == written and read.tzinfo is UTC
    engine.dispose()
