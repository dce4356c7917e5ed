"""``conveyor check``: each part of a deployment tried once, with one line saying what to fix."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

OK, WARNING, ERROR = "ok", "warning", "error"


@dataclass(frozen=True)
class Check:
    """The outcome of one check: ``ok``, ``warning`` or ``error``, and what was seen or to fix."""

    name: str
    level: str
    message: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def check_settings() -> Check:
    from pydantic import ValidationError

    from app.settings import reload_settings

    try:
        settings = reload_settings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        return Check("settings", ERROR, f"invalid settings: {problems}")
    return Check("settings", OK, f"parsed (log format {settings.conveyor_log_format})")


def check_airtable() -> Check:
    """The token is accepted and sees its base: one metadata request."""
    from app.errors import ConveyorError
    from app.extractors import AirtableExtractor

    try:
        extractor = AirtableExtractor()
        tables = extractor.list_tables()
    except ConveyorError as exc:
        return Check("airtable", ERROR, str(exc))
    return Check("airtable", OK, f"token accepted; {extractor.describe()} has {len(tables)} tables")


def check_warehouse() -> Check:
    """The warehouse answers and is writable: a throwaway table in a transaction rolled back."""
    import sqlalchemy as sa

    from app.errors import ConveyorError
    from app.warehouses import warehouse_for_url

    try:
        warehouse = warehouse_for_url()
        warehouse.check()
        schema = warehouse.schema if warehouse.url.get_backend_name() == "postgresql" else None
        probe = sa.Table(f"_conveyor_check_{uuid.uuid4().hex[:8]}", sa.MetaData(schema=schema),
                         sa.Column("x", sa.Integer))
        with warehouse.engine.connect() as conn:
            transaction = conn.begin()
            probe.create(conn)
            conn.execute(probe.insert().values(x=1))
            transaction.rollback()
    except ConveyorError as exc:
        return Check("warehouse", ERROR, str(exc))
    except sa.exc.SQLAlchemyError as exc:
        return Check("warehouse", ERROR, f"WAREHOUSE_URL {warehouse.display_url} is not writable: "
                     f"{' '.join(str(exc.orig if hasattr(exc, 'orig') else exc).split())[:200]}")
    finally:
        if "warehouse" in locals():
            warehouse.dispose()
    return Check("warehouse", OK, f"{warehouse.display_url} reachable and writable")


def check_redis() -> Iterator[Check]:
    """The broker answers, and keeps what it is given (noeviction, AOF)."""
    import redis

    from app.redact import mask_url
    from app.settings import get_settings
    from broker.status import redis_client

    url = mask_url(get_settings().celery_broker_url)
    client = redis_client()
    try:
        client.ping()
    except redis.RedisError as exc:
        yield Check("redis", ERROR, f"CELERY_BROKER_URL {url} does not answer: {exc}")
        return
    try:
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy")
        aof = client.config_get("appendonly").get("appendonly")
    except redis.ResponseError:
        yield Check("redis", WARNING, f"{url} answers, but CONFIG is disabled: make sure it runs "
                    "with maxmemory-policy noeviction and appendonly yes")
        return
    yield Check("redis", OK, f"{url} answers")
    if policy != "noeviction":
        yield Check("redis-eviction", WARNING, f"maxmemory-policy is {policy}: a full Redis would evict "
                    "queued tasks and run status; set maxmemory-policy noeviction")
    if aof != "yes":
        yield Check("redis-persistence", WARNING, "appendonly is no: a Redis restart loses queued "
                    "tasks; set appendonly yes")


def check_workers(timeout: float = 2.0) -> Iterator[Check]:
    """Someone consumes each queue, and every worker runs this Conveyor version."""
    from broker.celery_app import celery_app
    from broker.queues import QUEUES
    from broker.worker_info import conveyor_version

    try:
        active = celery_app.control.inspect(timeout=timeout).active_queues() or {}
        replies = celery_app.control.broadcast("conveyor_version_info", reply=True, timeout=timeout)
    except Exception as exc:  # kombu raises several types for a broker that does not answer
        yield Check("workers", ERROR, f"cannot ask the workers: {type(exc).__name__}: {exc}")
        return
    for queue in QUEUES:
        consumers = sorted(host for host, queues in active.items()
                           if any(q.get("name") == queue.name for q in queues))
        if consumers:
            yield Check(f"queue {queue.name}", OK, f"consumed by {', '.join(consumers)}")
        else:
            yield Check(f"queue {queue.name}", ERROR,
                        f"no worker consumes the {queue.name} queue: start "
                        f"`celery -A workers worker -Q {queue.name} -n {queue.name}@%h`")
    mine = conveyor_version()
    versions: dict[str, str] = {}
    for reply in replies or []:
        for host, answer in reply.items():
            versions[host] = answer.get("version", "unknown") if isinstance(answer, dict) else "unknown"
    for host in sorted(set(active) - set(versions)):
        versions[host] = "unknown (no conveyor_version_info)"
    odd = {h: v for h, v in versions.items() if v != mine}
    if odd:
        listed = ", ".join(f"{h} runs {v}" for h, v in sorted(odd.items()))
        yield Check("versions", ERROR, f"this is Conveyor {mine} but {listed}: deploy one version")
    elif versions:
        yield Check("versions", OK, f"every worker runs Conveyor {mine}")


def check_schedules() -> Check:
    from app.settings import get_settings
    from broker.scheduling import load_schedules

    spec = get_settings().conveyor_schedules
    try:
        entries = load_schedules()
        for entry in entries:
            entry.celery_schedule  # noqa: B018  (parses the cron or interval)
    except Exception as exc:  # a user's schedule module may raise anything on import
        return Check("schedules", ERROR, f"CONVEYOR_SCHEDULES {spec}: {type(exc).__name__}: {exc}")
    return Check("schedules", OK, f"{len(entries)} schedules parse ({spec})")


def run_checks() -> list[Check]:
    """Every check, in order; a check that crashes is reported as an error, never skipped."""
    steps: list[Callable[[], Any]] = [check_settings, check_airtable, check_warehouse, check_redis,
                                      check_workers, check_schedules]
    found: list[Check] = []
    for step in steps:
        name = step.__name__.removeprefix("check_")
        try:
            result = step()
            found.extend([result] if isinstance(result, Check) else list(result))
        except Exception as exc:  # one broken check must not hide the others' lines
            found.append(Check(name, ERROR, f"{type(exc).__name__}: {' '.join(str(exc).split())}"))
        if name == "settings" and found[-1].level == ERROR:
            break
    return found
