"""Logging for workers, beat and the CLI: Celery's text lines, or JSON lines with run context.

``CONVEYOR_LOG_FORMAT=json`` makes every record one JSON object on one line, carrying the run
id, table and batch of whatever is being done (``log_context``), and never a secret: URLs are
masked and the configured token and passwords are replaced before a line is written.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from app.redact import MASK, mask_url
from app.settings import Settings, get_settings

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "conveyor_log_context", default={})  # noqa: B039 (never mutated: replaced by log_context)

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\"]+")


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (run_id=, table=, batch=…) to every record logged inside the block."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def set_context(**fields: Any) -> contextvars.Token[dict[str, Any]]:
    """Like ``log_context`` for code that cannot wrap a block (Celery's prerun/postrun signals)."""
    return _context.set({k: v for k, v in fields.items() if v is not None})


def reset_context(token: contextvars.Token[dict[str, Any]]) -> None:
    _context.reset(token)


def current_context() -> dict[str, Any]:
    return dict(_context.get())


def secrets_of(settings: Settings) -> list[str]:
    """The secret values this process knows: the Airtable token and any URL password."""
    found = []
    if settings.airtable_api_key:
        found.append(settings.airtable_api_key.get_secret_value())
    for url in (settings.warehouse_url, settings.celery_broker_url, settings.celery_result_backend):
        try:
            password = urlsplit(url).password if url else None
        except ValueError:
            password = None
        if password:
            found += [password, unquote(password)]
    return [s for s in found if len(s) >= 4]


class Redactor:
    """Masks URLs' passwords, bearer tokens and every known secret value in a line."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = sorted(set(secrets), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        text = _URL.sub(lambda m: mask_url(m.group(0)), text)
        text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, run context, exception."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self.redact(record.getMessage()),
        }
        entry.update({k: v for k, v in _context.get().items() if k not in entry})
        for key in ("process", "processName"):
            entry.setdefault(key, getattr(record, key, None))
        if record.exc_info:
            entry["exc"] = self.redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


class RedactingFormatter(logging.Formatter):
    """The text format, with secrets masked too."""

    def __init__(self, fmt: str, redact: Redactor) -> None:
        super().__init__(fmt)
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


def configure(level: int | str = logging.WARNING, fmt: str | None = None) -> None:
    """Send every log record to standard error in ``fmt`` (default CONVEYOR_LOG_FORMAT)."""
    settings = get_settings()
    redact = Redactor(secrets_of(settings))
    handler = logging.StreamHandler(sys.stderr)
    if (fmt or settings.conveyor_log_format) == "json":
        handler.setFormatter(JsonFormatter(redact))
    else:
        handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s", redact))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)


def task_context(args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Run id, table and batch from a Conveyor task's arguments (a table payload, a batch or a
    finish_run call), so every record a task logs carries them."""
    fields: dict[str, Any] = {}
    for arg in list(args) + list(kwargs.values()):
        if not isinstance(arg, dict):
            continue
        ctx = arg.get("ctx")
        if isinstance(ctx, dict):
            fields.setdefault("run_id", ctx.get("run_id"))
            table = ctx.get("table")
            if isinstance(table, dict):
                fields.setdefault("table", table.get("name"))
        if "batch_no" in arg and "run_id" in arg:
            fields.setdefault("run_id", arg.get("run_id"))
            fields.setdefault("batch", arg.get("batch_no"))
            table = arg.get("table")
            if isinstance(table, dict):
                fields.setdefault("table", table.get("name"))
        plan = arg.get("plan")
        if isinstance(plan, dict) and isinstance(arg.get("table"), dict):  # a TableSync
            fields.setdefault("run_id", plan.get("run_id"))
            fields.setdefault("table", arg["table"].get("name"))
        if "run_id" in arg and "workflow" in arg:  # a run spec (plan_run)
            fields.setdefault("run_id", arg.get("run_id"))
    if "run_id" not in fields and isinstance(kwargs.get("run_id"), str):
        fields["run_id"] = kwargs["run_id"]
    if "run_id" not in fields and len(args) > 1 and isinstance(args[1], str):
        fields["run_id"] = args[1]  # run_step(previous, run_id, workflow, step)
    return {k: v for k, v in fields.items() if v is not None}


_tokens: dict[str, contextvars.Token[dict[str, Any]]] = {}


def connect_celery(app: Any) -> None:
    """Hook Conveyor's logging into Celery's worker and beat when CONVEYOR_LOG_FORMAT=json,
    and put each task's run id, table and batch on the records it logs."""
    from celery import signals

    if get_settings().conveyor_log_format != "json":
        return
    # Before Celery sets up logging, warnings (e.g. the superuser warning) are already JSON.
    configure(logging.INFO, "json")

    def _setup(loglevel: Any = None, **_: Any) -> None:
        configure(loglevel or logging.INFO, "json")

    class QuietBeat(app.Beat):  # type: ignore[misc]
        """``celery beat`` without its banner, printed before logging starts."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "quiet": True})

    app.Beat = QuietBeat

    def _no_banner(sender: str = "", instance: Any = None, **_: Any) -> None:
        # The banner is printed, not logged: it would be the only non-JSON output.
        if instance is not None:
            instance.quiet = True
        logging.getLogger("conveyor.worker").info("worker %s starting", sender)

    def _prerun(task_id: str = "", task: Any = None, args: Any = (), kwargs: Any = None,
                **_: Any) -> None:
        fields = task_context(args or (), kwargs or {})
        fields.update(task=getattr(task, "name", None), task_id=task_id)
        _tokens[task_id] = set_context(**fields)

    def _postrun(task_id: str = "", **_: Any) -> None:
        token = _tokens.pop(task_id, None)
        if token is not None:
            with contextlib.suppress(ValueError):
                reset_context(token)

    signals.setup_logging.connect(_setup, weak=False)
    signals.celeryd_after_setup.connect(_no_banner, weak=False)
    signals.task_prerun.connect(_prerun, weak=False)
    signals.task_postrun.connect(_postrun, weak=False)
