"""What crosses the broker: Redis MONITOR, with kombu's base64 bodies decoded."""

from __future__ import annotations

import base64
import json
import re
import threading
from typing import Any

import redis


class BrokerTap:
    """Records every command sent to Redis while active (MONITOR), decoding task bodies."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.commands: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()

    def _run(self) -> None:
        with self.client.monitor() as monitor:
            self._ready.set()
            while not self._stop.is_set():
                try:
                    self.commands.append(monitor.next_command()["command"])
                except (redis.RedisError, ValueError):
                    if self._stop.is_set():
                        return
                    continue

    def __enter__(self) -> BrokerTap:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.client.ping()  # wakes the monitor loop up
        self._thread.join(5)

    def payloads(self) -> list[Any]:
        """Every JSON document seen in a command, with kombu message bodies decoded."""
        found = []
        for command in self.commands:
            document = _json_tail(command)
            if document is None:
                continue
            found.append(document)
            if isinstance(document, dict) and "body" in document:
                body = document["body"]
                if document.get("properties", {}).get("body_encoding") == "base64":
                    body = base64.b64decode(body).decode("utf-8")
                try:
                    found.append(json.loads(body))
                except (TypeError, ValueError):
                    found.append(body)
        return found

    def decoded_text(self) -> str:
        """All commands and decoded bodies as one text, for secret scans."""
        return "\n".join(self.commands) + "\n" + "\n".join(json.dumps(p) for p in self.payloads())


#: What MONITOR escapes in an argument besides the quote (which redis-py unescapes): bytes
#: outside printable ASCII as ``\xHH``, a backslash as two, and a few control characters.
_ESCAPED = re.compile(r"\\(x[0-9a-fA-F]{2}|[\\nrtab])")
_CONTROL = {"\\": b"\\", "n": b"\n", "r": b"\r", "t": b"\t", "a": b"\a", "b": b"\b"}


def _unescaped(command: str) -> str:
    """A command as MONITOR printed it, with its arguments' bytes restored (UTF-8 text)."""
    if "\\" not in command:
        return command
    out, pos = bytearray(), 0
    for match in _ESCAPED.finditer(command):
        out += command[pos:match.start()].encode()
        escape = match.group(1)
        out += bytes([int(escape[1:], 16)]) if escape[0] == "x" else _CONTROL[escape]
        pos = match.end()
    out += command[pos:].encode()
    return out.decode("utf-8", "replace")


def _json_tail(command: str) -> Any:
    """The JSON document a command ends with (an object, or an array such as a kept batch
    message), or None."""
    command = _unescaped(command)
    for start in sorted(i for i in (command.find("{"), command.find("[")) if i >= 0):
        try:
            return json.loads(command[start:])
        except ValueError:
            continue
    return None


def most_records(document: Any) -> int:
    """The largest list of records anywhere in ``document`` (lists of dicts with an 'id')."""
    best = 0
    if isinstance(document, list):
        if document and all(isinstance(d, dict) and "id" in d and "fields" in d for d in document):
            best = len(document)
        for item in document:
            best = max(best, most_records(item))
    elif isinstance(document, dict):
        for value in document.values():
            best = max(best, most_records(value))
    return best


def scan_values(url: str) -> str:
    """Every key and value in the Redis database, as text."""
    client = redis.Redis.from_url(url)
    parts = []
    for key in client.scan_iter(count=500):
        kind = client.type(key).decode()
        parts.append(key.decode(errors="replace"))
        if kind == "string":
            parts.append(str(client.get(key)))
        elif kind == "hash":
            parts.append(str(client.hgetall(key)))
        elif kind == "list":
            parts.append(str(client.lrange(key, 0, -1)))
        elif kind == "set":
            parts.append(str(client.smembers(key)))
        elif kind == "zset":
            parts.append(str(client.zrange(key, 0, -1)))
    return "\n".join(parts)
