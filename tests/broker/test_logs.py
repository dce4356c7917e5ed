"""JSON log lines: one object per record, the run context on each, never a secret."""

from __future__ import annotations

import io
import json
import logging

from broker.logs import JsonFormatter, Redactor, log_context, secrets_of, task_context


def logged(redactor: Redactor, emit) -> list[dict]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter(redactor))
    logger = logging.getLogger("conveyor.test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_records_carry_the_context_of_the_block_they_are_logged_in():
    def emit(log: logging.Logger) -> None:
        with log_context(run_id="r1", table="Orders"):
            with log_context(batch=3):
                log.info("loaded %d", 500)
            log.warning("outside the batch")
        log.info("no run")

    inner, outer, bare = logged(Redactor([]), emit)
    assert inner["message"] == "loaded 500" and inner["level"] == "info"
    assert (inner["run_id"], inner["table"], inner["batch"]) == ("r1", "Orders", 3)
    assert outer["run_id"] == "r1" and "batch" not in outer
    assert "run_id" not in bare


def test_no_secret_reaches_a_line(monkeypatch):
    from app.settings import reload_settings

    monkeypatch.setenv("AIRTABLE_API_KEY", "patSECRETtoken.0123456789")
    monkeypatch.setenv("WAREHOUSE_URL", "postgresql://u:pg-pass-word@db/x")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://:redis%2Fpass@r:6379/0")
    redactor = Redactor(secrets_of(reload_settings()))

    def emit(log: logging.Logger) -> None:
        log.info("token %s", "patSECRETtoken.0123456789")
        log.info("Authorization: Bearer abc.def.ghi")
        log.info("connect postgresql://u:pg-pass-word@db/x and redis://:redis%2Fpass@r:6379/0")
        try:
            raise RuntimeError("boom with redis/pass inside")
        except RuntimeError:
            log.exception("failed")

    lines = logged(redactor, emit)
    text = "\n".join(json.dumps(line) for line in lines)
    for secret in ("patSECRETtoken.0123456789", "abc.def.ghi", "pg-pass-word", "redis%2Fpass", "redis/pass"):
        assert secret not in text, secret
    assert lines[2]["message"] == "connect postgresql://u:***@db/x and redis://:***@r:6379/0"
    assert "exc" in lines[3]


def test_task_context_reads_run_table_and_batch_from_task_arguments():
    table = {"source": "airtable", "table_id": "tbl1", "name": "Orders"}
    payload = {"ctx": {"run_id": "r1", "table": table}, "state": "ok"}
    assert task_context((payload,), {}) == {"run_id": "r1", "table": "Orders"}
    batch = {"run_id": "r2", "table": table, "batch_no": 7, "records": []}
    assert task_context((batch, {"name": "t"}, None), {}) == {"run_id": "r2", "table": "Orders", "batch": 7}
    assert task_context(([{"state": "ok"}],), {"run_id": "r3"}) == {"run_id": "r3"}
    assert task_context(({"run_id": "r4", "workflow": "etl"},), {}) == {"run_id": "r4"}
    assert task_context((None, "r5", "nightly", "extract"), {}) == {"run_id": "r5"}
    sync = {"plan": {"run_id": "r6", "workflow": "etl"}, "table": table, "listing": {}}
    assert task_context((sync, batch | {"run_id": "r6"}), {}) == {"run_id": "r6", "table": "Orders",
                                                                 "batch": 7}
