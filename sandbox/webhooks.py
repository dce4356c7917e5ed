"""The webhooks API: hooks polled for payloads, with Airtable's lifetimes and limits.

- ``POST /v0/bases/{base}/webhooks`` (``notificationUrl`` may be null or absent: the hook is
  only polled; the sandbox never sends pings), list, ``POST …/{id}/refresh``, ``DELETE …/{id}``,
  ``GET …/{id}/payloads?cursor=&limit=`` (at most 50 a page; ``cursor`` is the number of the
  payload after the last one returned; ``mightHaveMore``).
- Payload numbers (cursors) start at 1 per hook and never reset.
- A hook expires 7 days after it was created, refreshed or its payloads were listed:
  ``isHookEnabled`` is then false and it records nothing more; its metadata and payloads stay
  readable for 7 more days, then the hook is gone (404).
- Payloads are kept 7 days. Asked for a cursor older than that, the answer starts at the
  oldest payload still kept, so a client sees the loss: the first payload returned is number
  ``cursor - len(payloads)`` of the answer, later than the cursor it asked for (or, with no
  payload left, the hook's ``cursorForNextPayload`` is past the cursor it holds).
- At most 10 hooks per base; ``SandboxConfig.webhooks_allowed=False`` answers every webhooks
  route 403, as for a token without the ``webhook:manage`` scope.
"""

from __future__ import annotations

import base64
import random
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox import errors
from sandbox.base import SandboxBase, Transaction
from sandbox.clock import iso_from_ms, make_id, now_ms
from sandbox.payloads import DATA_TYPES, payload

DAY_MS = 86_400_000
LIFETIME_MS = 7 * DAY_MS
RETENTION_MS = 7 * DAY_MS
MAX_HOOKS_PER_BASE = 10
MAX_PAGE = 50


@dataclass
class Hook:
    """One webhook and the payloads it has recorded: (number, time in ms, payload)."""

    id: str
    specification: dict[str, Any]
    notification_url: str | None
    expires_ms: int
    next_cursor: int = 1
    notifications: bool = True
    payloads: deque[tuple[int, int, dict[str, Any]]] = field(default_factory=deque)

    def enabled(self, now: int) -> bool:
        """Whether the hook is alive (not expired)."""
        return now < self.expires_ms

    def forget_old(self, now: int) -> None:
        """Drop payloads past retention."""
        while self.payloads and self.payloads[0][1] <= now - RETENTION_MS:
            self.payloads.popleft()

    def to_json(self, now: int) -> dict[str, Any]:
        """The hook as ``GET /v0/bases/{base}/webhooks`` lists it."""
        return {
            "id": self.id,
            "areNotificationsEnabled": self.notifications and self.notification_url is not None,
            "cursorForNextPayload": self.next_cursor,
            "isHookEnabled": self.enabled(now),
            "lastSuccessfulNotificationTime": None,
            "notificationUrl": self.notification_url,
            "lastNotificationResult": None,
            "expirationTime": iso_from_ms(self.expires_ms),
            "specification": self.specification,
        }


def _not_found() -> errors.ApiError:
    return errors.typed(404, "NOT_FOUND", "Could not find a webhook with this id")


def _check_spec(spec: Any) -> dict[str, Any]:
    options = spec.get("options") if isinstance(spec, Mapping) else None
    filters = options.get("filters") if isinstance(options, Mapping) else None
    kinds = filters.get("dataTypes") if isinstance(filters, Mapping) else None
    if not isinstance(kinds, list) or not kinds or not set(kinds) <= DATA_TYPES:
        raise errors.invalid_request(
            "Invalid request: specification.options.filters.dataTypes must be a non-empty "
            f"list of {', '.join(sorted(DATA_TYPES))}")
    return dict(spec)


class Webhooks:
    """Every base's hooks; ``record`` is attached to each base as a transaction listener."""

    def __init__(self, seed: int = 1) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(f"{seed}:webhooks")
        self._hooks: dict[str, dict[str, Hook]] = {}

    def attach(self, base: SandboxBase) -> None:
        """Record ``base``'s transactions from now on."""
        base.listeners.append(self.record)

    def record(self, base: SandboxBase, transaction: Transaction) -> None:
        """Append the payload each live hook of ``base`` wants for ``transaction``."""
        now = now_ms()
        with self._lock:
            for hook in self._live(base.id, now).values():
                if not hook.enabled(now):
                    continue
                body = payload(base, transaction, hook.specification)
                if body is not None:
                    hook.payloads.append((hook.next_cursor, transaction.timestamp_ms, body))
                    hook.next_cursor += 1
                hook.forget_old(now)

    def _live(self, base_id: str, now: int) -> dict[str, Hook]:
        hooks = self._hooks.setdefault(base_id, {})
        for hook_id in [i for i, h in hooks.items() if now >= h.expires_ms + RETENTION_MS]:
            del hooks[hook_id]
        return hooks

    def _hook(self, base_id: str, hook_id: str, now: int) -> Hook:
        hook = self._live(base_id, now).get(hook_id)
        if hook is None:
            raise _not_found()
        return hook

    def create(self, base: SandboxBase, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v0/bases/{base}/webhooks``."""
        spec = _check_spec(body.get("specification"))
        url = body.get("notificationUrl")
        if url is not None and not isinstance(url, str):
            raise errors.invalid_request("Invalid request: notificationUrl must be a string")
        now = now_ms()
        with self._lock:
            hooks = self._live(base.id, now)
            if len(hooks) >= MAX_HOOKS_PER_BASE:
                raise errors.typed(422, "TOO_MANY_WEBHOOKS",
                                   f"A base can have at most {MAX_HOOKS_PER_BASE} webhooks")
            hook_id = make_id("ach", self._rng)
            hook = Hook(hook_id, spec, url, now + LIFETIME_MS)
            hooks[hook_id] = hook
            secret = base64.b64encode(self._rng.randbytes(32)).decode("ascii")
        return {"id": hook_id, "macSecretBase64": secret,
                "expirationTime": iso_from_ms(hook.expires_ms)}

    def listing(self, base: SandboxBase) -> dict[str, Any]:
        """``GET /v0/bases/{base}/webhooks``."""
        now = now_ms()
        with self._lock:
            return {"webhooks": [h.to_json(now) for h in self._live(base.id, now).values()]}

    def refresh(self, base: SandboxBase, hook_id: str) -> dict[str, Any]:
        """``POST …/webhooks/{id}/refresh``: 7 more days from now, for a hook still alive."""
        now = now_ms()
        with self._lock:
            hook = self._hook(base.id, hook_id, now)
            if not hook.enabled(now):
                raise errors.typed(422, "CANNOT_REFRESH_DISABLED_WEBHOOK",
                                   "This webhook has expired and cannot be refreshed")
            hook.expires_ms = now + LIFETIME_MS
            return {"expirationTime": iso_from_ms(hook.expires_ms)}

    def delete(self, base: SandboxBase, hook_id: str) -> dict[str, Any]:
        """``DELETE …/webhooks/{id}``."""
        now = now_ms()
        with self._lock:
            self._hook(base.id, hook_id, now)
            del self._hooks[base.id][hook_id]
        return {}

    def enable_notifications(self, base: SandboxBase, hook_id: str,
                             body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST …/webhooks/{id}/enableNotifications`` with ``{"enable": bool}``."""
        now = now_ms()
        with self._lock:
            self._hook(base.id, hook_id, now).notifications = bool(body.get("enable"))
        return {}

    def payloads(self, base: SandboxBase, hook_id: str,
                 params: Mapping[str, list[str]]) -> dict[str, Any]:
        """``GET …/webhooks/{id}/payloads?cursor=N&limit=M``; extends a live hook's life."""
        cursor = _number(params, "cursor", 1, 1)
        limit = _number(params, "limit", MAX_PAGE, 1, MAX_PAGE)
        now = now_ms()
        with self._lock:
            hook = self._hook(base.id, hook_id, now)
            hook.forget_old(now)
            if hook.enabled(now):
                hook.expires_ms = now + LIFETIME_MS
            after = [p for p in hook.payloads if p[0] >= cursor]
            page = after[:limit]
            next_cursor = page[-1][0] + 1 if page else cursor
            return {"payloads": [p[2] for p in page], "cursor": next_cursor,
                    "mightHaveMore": len(after) > len(page)}


def _number(params: Mapping[str, list[str]], name: str, default: int, low: int,
            high: int | None = None) -> int:
    raw = params.get(name)
    if not raw:
        return default
    try:
        value = int(raw[-1])
    except ValueError:
        raise errors.invalid_request(f"Invalid request: {name} must be an integer") from None
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise errors.invalid_request(f"Invalid request: {name} must be {bounds}")
    return value
