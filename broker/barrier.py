"""Fan-in without polling: which batches of a table are loaded, when its listing ended, and
whether the last step of a table and of a run has been sent — counted in Redis where each
batch is recorded, so the last batch to land triggers the table's finish, and the last table
to finish triggers the run's.

Also kept here, per table: a copy of every batch sent until it is loaded (a batch lost
between the broker and a killed worker is sent again from it, not extracted again), and the
step that resumes the table (the recovery sweep re-sends it when the table stops moving).
"""

from __future__ import annotations

import json
from typing import Any

import redis
from redis.client import NEVER_DECODE

from app import fastjson
from app.sync import rules
from broker import policies
from broker.status import PREFIX

# A table is complete when, for each of its listings (one, or one per partition: the sync
# hash's 'partitions', default 1), the listing has ended ('expected' batches in 'epoch'; ':p<n>'
# suffixed for partition n > 0) and every batch of that epoch is in its loaded set. ARGV[1] is
# the prefix of the table's keys. Returns 1 to exactly one caller: the one that completed it.
_COMPLETE = """
local function complete(sync, prefix)
  local parts = tonumber(redis.call('HGET', sync, 'partitions') or '1')
  for p = 0, parts - 1 do
    local suffix = ''
    if p > 0 then suffix = ':p' .. p end
    local expected = redis.call('HGET', sync, 'expected' .. suffix)
    local epoch = redis.call('HGET', sync, 'epoch' .. suffix)
    if not expected or not epoch then return 0 end
    if redis.call('SCARD', prefix .. 'loaded:' .. epoch .. suffix) < tonumber(expected) then
      return 0
    end
  end
  return redis.call('HSETNX', sync, 'closed', 'finishing')
end

-- Completing the table and recording its finish step as the table's only resume point are
-- one step: a worker killed between the two would leave a table that is closed (its batches
-- redelivered are skipped) with nothing for the recovery sweep to send again.
local function completed(sync, prefix, finish)
  local done = complete(sync, prefix)
  if done == 1 and finish ~= '' then
    local parts = tonumber(redis.call('HGET', sync, 'partitions') or '1')
    for p = 1, parts - 1 do redis.call('HDEL', sync, 'resume:p' .. p) end
    redis.call('HSET', sync, 'resume', finish)
  end
  return done
end
"""

# KEYS: sync hash, loaded set of the batch's listing and epoch, pending hash;
# ARGV: key prefix, batch_no, the finish step ('' for none).
_MARK_LOADED = _COMPLETE + """
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'progress_at', t[1])
return completed(KEYS[1], ARGV[1], ARGV[3])
"""

# KEYS: sync hash; ARGV: key prefix, expected batch count, epoch, field suffix of the listing,
# the finish step ('' for none).
_MARK_EXTRACTED = _COMPLETE + """
redis.call('HSET', KEYS[1], 'expected' .. ARGV[4], ARGV[2], 'epoch' .. ARGV[4], ARGV[3])
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'progress_at', t[1])
return completed(KEYS[1], ARGV[1], ARGV[5])
"""

# KEYS: done set, run hash; ARGV: table id, number of tables. 1 for the last table only.
_TABLE_DONE = """
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return redis.call('HSETNX', KEYS[2], 'finish_sent', '1')
end
return 0
"""


class Barrier:
    """The fan-in counters of a run's tables, and their resume points and batch copies."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self._mark_loaded = client.register_script(_MARK_LOADED)
        self._mark_extracted = client.register_script(_MARK_EXTRACTED)
        self._table_done = client.register_script(_TABLE_DONE)

    def _key(self, run_id: str, table_id: str, part: str) -> str:
        return f"{PREFIX}:run:{run_id}:table:{table_id}:{part}"

    def _expire(self, *keys: str) -> None:
        pipe = self.r.pipeline()
        for key in keys:
            pipe.expire(key, policies.STATUS_TTL_SECONDS)
        pipe.execute()

    # batches
    def keep_copy(self, run_id: str, table_id: str, batch_no: int,
                  message: list[Any] | str | bytes) -> None:
        """Keep the batch's message (its arguments, or their JSON text, UTF-8 if bytes) until
        it is loaded: the lost-batch recovery sends it again."""
        key = self._key(run_id, table_id, "pending")
        text = message if isinstance(message, str | bytes) else json.dumps(message)
        self.r.hset(key, str(batch_no), text)
        self._expire(key)

    def kept_copy(self, run_id: str, table_id: str, batch_no: int) -> list[Any] | None:
        """The kept message of a batch not loaded yet (None once it is loaded, or its table
        closed): the load message names the batch and its records are read from here, so a
        batch's records cross Redis once instead of twice."""
        # read as bytes: a megabyte of text is not decoded to str only to be encoded again
        raw = self.r.execute_command("HGET", self._key(run_id, table_id, "pending"),  # type: ignore[no-untyped-call]
                                     str(batch_no), **{NEVER_DECODE: True})
        return None if raw is None else fastjson.loads(raw)

    def is_loaded(self, run_id: str, table_id: str, batch_no: int) -> bool:
        """Whether the batch is recorded as loaded (in its listing's epoch)."""
        epoch, part = rules.epoch_of(batch_no), rules.partition_of(batch_no)
        key = self._key(run_id, table_id, f"loaded:{epoch}{_suffix(part)}")
        return bool(self.r.sismember(key, str(batch_no)))

    def claim_partitions(self, run_id: str, table_id: str,
                         windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Record the windows the table is listed in (as JSON), unless a first delivery of
        the same step did already: then those are returned, so a redelivered step can never
        list the table in other windows under the same batch numbers. Once recorded, the table
        is complete only when every window's listing has ended and all its batches are loaded.
        """
        key = self._key(run_id, table_id, "sync")
        pipe = self.r.pipeline()
        pipe.hsetnx(key, "windows", json.dumps(windows))
        pipe.hget(key, "windows")
        _, stored = pipe.execute()
        chosen: list[dict[str, Any]] = json.loads(stored)
        self.r.hset(key, "partitions", max(len(chosen), 1))
        self._expire(key)
        return chosen

    def mark_loaded(self, run_id: str, table_id: str, batch_no: int,
                    finish: dict[str, Any] | None = None) -> bool:
        """Record a loaded batch; True when it was the table's last (send its finish step).
        ``finish`` (``{"task", "args"}``) becomes the table's resume point when it was."""
        epoch, part = rules.epoch_of(batch_no), rules.partition_of(batch_no)
        keys = [self._key(run_id, table_id, "sync"),
                self._key(run_id, table_id, f"loaded:{epoch}{_suffix(part)}"),
                self._key(run_id, table_id, "pending")]
        done = bool(self._mark_loaded(
            keys=keys, args=[self._key(run_id, table_id, ""), batch_no, _step(finish)]))
        self._expire(*keys[:2])
        return done

    def mark_extracted(self, run_id: str, table_id: str, epoch: int, batches: int,
                       partition: int = 0, finish: dict[str, Any] | None = None) -> bool:
        """Record that the listing (of ``partition``) ended with ``batches`` batches in
        ``epoch``; True when that completed the table (send the table's finish step, which
        ``finish`` names: it becomes the table's resume point then)."""
        keys = [self._key(run_id, table_id, "sync")]
        done = bool(self._mark_extracted(keys=keys, args=[
            self._key(run_id, table_id, ""), batches, epoch, _suffix(partition), _step(finish)]))
        self._expire(*keys)
        return done

    def close(self, run_id: str, table_id: str, how: str) -> None:
        """Close the table as ``how`` (failed, cancelled): its batches are no longer loaded."""
        self.r.hset(self._key(run_id, table_id, "sync"), "closed", how)
        self.r.delete(self._key(run_id, table_id, "pending"))

    def is_closed(self, run_id: str, table_id: str) -> bool:
        return bool(self.r.hexists(self._key(run_id, table_id, "sync"), "closed"))

    def table_done(self, run_id: str, table_id: str, tables: int) -> bool:
        """Count a finished table; True for the caller that finished the run's last table."""
        keys = [f"{PREFIX}:run:{run_id}:done", f"{PREFIX}:run:{run_id}"]
        last = bool(self._table_done(keys=keys, args=[table_id, tables]))
        self._expire(keys[0])
        return last

    # recovery
    def set_resume(self, run_id: str, table_id: str, task: str | None, args: list[Any],
                   partition: int = 0) -> None:
        """The step that resumes the table's listing (of ``partition``) from where it is now
        (None: nothing to resume but the batch copies); also a sign of progress."""
        key = self._key(run_id, table_id, "sync")
        value = json.dumps({"task": task, "args": args}) if task else ""
        self.r.hset(key, mapping={f"resume{_suffix(partition)}": value,
                                  "progress_at": self._now()})
        self._expire(key)

    def touch(self, run_id: str, table_id: str) -> None:
        """A sign that the table is moving."""
        self.r.hset(self._key(run_id, table_id, "sync"), "progress_at", self._now())

    def state(self, run_id: str, table_id: str) -> dict[str, Any]:
        """The table's counters: closed, expected, epoch, progress_at, resume, recoveries;
        ``resumes`` holds the resume step of every listing (one per partition)."""
        raw: dict[str, str] = self.r.hgetall(self._key(run_id, table_id, "sync"))  # type: ignore[assignment]
        data: dict[str, Any] = dict(raw)
        data["resume"] = json.loads(raw["resume"]) if raw.get("resume") else None
        data["resumes"] = [json.loads(value) for name, value in sorted(raw.items())
                           if (name == "resume" or name.startswith("resume:p")) and value]
        return data

    def pending(self, run_id: str, table_id: str) -> dict[int, list[Any]]:
        """Copies of the batches sent and not loaded yet."""
        raw = self.r.hgetall(self._key(run_id, table_id, "pending"))
        return {int(k): json.loads(v) for k, v in raw.items()}

    def count_recovery(self, run_id: str, table_id: str, batches: int) -> int:
        """Count one recovery of the table (``batches`` copies re-sent); returns how many."""
        key = self._key(run_id, table_id, "sync")
        self.r.hincrby(key, "recovered_batches", batches)
        self.r.hset(key, "progress_at", self._now())
        return int(self.r.hincrby(key, "recoveries", 1))

    def _now(self) -> int:
        seconds, _ = self.r.time()
        return int(seconds)

    def now(self) -> int:
        """Redis' clock, the one every worker agrees on (seconds)."""
        return self._now()


def _suffix(partition: int) -> str:
    """How the keys and fields of partition ``partition``'s listing end ('' for the first
    partition, so a table listed whole keeps the names it always had)."""
    return f":p{partition}" if partition else ""


def _step(step: dict[str, Any] | None) -> str:
    return json.dumps(step) if step else ""
