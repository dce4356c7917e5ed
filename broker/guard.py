"""No overlapping runs of the same workflow: a guard key in Redis, with an expiry renewed while
the run is alive, so a crashed run blocks the next one only until the guard expires."""

from __future__ import annotations

import redis

from broker.status import PREFIX

# Renews or releases only if this run still holds the guard.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class OverlapGuard:
    """One live run per workflow key."""

    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self.r = client
        self.ttl = ttl_seconds
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    @staticmethod
    def _key(workflow_key: str) -> str:
        return f"{PREFIX}:guard:{workflow_key}"

    def acquire(self, workflow_key: str, run_id: str) -> str | None:
        """Take the guard for ``run_id``; return the run that holds it instead, or None if ours."""
        key = self._key(workflow_key)
        if self.r.set(key, run_id, nx=True, ex=self.ttl):
            return None
        holder = self.r.get(key)
        if holder is None:  # expired between the two calls
            return self.acquire(workflow_key, run_id)
        holder = holder.decode() if isinstance(holder, bytes) else str(holder)
        if holder == run_id:
            self.renew(workflow_key, run_id)
            return None
        return holder

    def renew(self, workflow_key: str, run_id: str) -> bool:
        """Extend the guard while the run is alive; False if it no longer holds it."""
        return bool(self._renew(keys=[self._key(workflow_key)], args=[run_id, self.ttl]))

    def release(self, workflow_key: str, run_id: str) -> None:
        self._release(keys=[self._key(workflow_key)], args=[run_id])

    def holder(self, workflow_key: str) -> str | None:
        value = self.r.get(self._key(workflow_key))
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)
