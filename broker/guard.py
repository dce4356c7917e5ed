"""No two runs write the same tables at once: a guard key in Redis per table written — keyed by
(warehouse identity, schema, source, table id), whatever names a run was enqueued with — with
an expiry renewed while the run is alive, so a crashed run blocks the next one only until its
guards expire."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import redis

from broker.status import PREFIX

# Takes every key for ARGV[1] or none; returns the run holding one of them (nil: ours now).
_ACQUIRE = """
for _, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder and holder ~= ARGV[1] then return holder end
end
for _, key in ipairs(KEYS) do redis.call('SET', key, ARGV[1], 'EX', tonumber(ARGV[2])) end
return false
"""
# Renews or releases only the keys this run still holds.
_RENEW = """
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then n = n + redis.call('EXPIRE', key, tonumber(ARGV[2])) end
end
return n
"""
_RELEASE = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 1
"""


def table_guards(warehouse_identity: str, source_identity: str, table_ids: Sequence[str]) -> list[str]:
    """The guard names of the tables a run writes (the warehouse identity is hashed: it holds
    a database URL, without password)."""
    where = hashlib.sha256(warehouse_identity.encode()).hexdigest()[:16]
    return [f"write:{where}:{source_identity}:{table_id}" for table_id in sorted(set(table_ids))]


class OverlapGuard:
    """One live run per guarded name."""

    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self.r = client
        self.ttl = ttl_seconds
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    @staticmethod
    def _keys(names: str | Sequence[str]) -> list[str]:
        names = [names] if isinstance(names, str) else list(names)
        return [f"{PREFIX}:guard:{name}" for name in names]

    def acquire(self, names: str | Sequence[str], run_id: str) -> str | None:
        """Take every guard in ``names`` for ``run_id``; return the run that holds one of them
        instead (taking none), or None if all are ours."""
        keys = self._keys(names)
        if not keys:
            return None
        holder = self._acquire(keys=keys, args=[run_id, self.ttl])
        if holder is None:
            return None
        return holder.decode() if isinstance(holder, bytes) else str(holder)

    def renew(self, names: str | Sequence[str], run_id: str) -> int:
        """Extend the guards while the run is alive; returns how many it still held."""
        keys = self._keys(names)
        return int(self._renew(keys=keys, args=[run_id, self.ttl])) if keys else 0

    def release(self, names: str | Sequence[str], run_id: str) -> None:
        keys = self._keys(names)
        if keys:
            self._release(keys=keys, args=[run_id])

    def holder(self, name: str) -> str | None:
        value = self.r.get(self._keys(name)[0])
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    # runs waiting their turn (overlap="queue")
    def wait_behind(self, holder: str, run_id: str) -> None:
        """``run_id`` starts again when ``holder`` releases its guards."""
        key = f"{PREFIX}:guard:waiters:{holder}"
        self.r.rpush(key, run_id)
        self.r.expire(key, 7 * 24 * 3600)

    def take_waiters(self, holder: str) -> list[str]:
        """The runs that waited behind ``holder`` (forgotten once taken)."""
        key = f"{PREFIX}:guard:waiters:{holder}"
        pipe = self.r.pipeline()
        pipe.lrange(key, 0, -1)
        pipe.delete(key)
        waiters, _ = pipe.execute()
        return [w.decode() if isinstance(w, bytes) else str(w) for w in waiters]
