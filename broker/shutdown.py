"""Warm shutdown that cannot strand a pool process on a half-written task.

The prefork pool hands a task to a pool process through a pipe, writing from the worker's
event loop as the pipe drains: a task message larger than the pipe takes at once (a load
batch of 100 wide records is about 300 KB; a pipe takes 64 KiB) needs several writes. When
SIGTERM stops the event loop between two of them, Celery's warm shutdown never writes the
rest (its consumer's close forgets the task and the writes begun), so the pool process waits
for the rest forever, before the task has started (no time limit applies), and the worker
waits for that process until it is killed (docker compose's 330 s grace period).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import bootsteps
from celery.concurrency import asynpool

log = logging.getLogger(__name__)

#: How long the pool processes may take, in all, to acknowledge the tasks handed to them
#: (each does so at once; this only bounds a process that is stuck).
ACCEPT_WAIT_SECONDS = 10.0


class FinishPoolWrites(bootsteps.StartStopStep):  # Celery is untyped: Any to mypy
    """On warm shutdown, finish handing over the tasks the pool had begun to write.

    The worker closes its steps in start order: this one after the pool it requires (which
    then writes nothing new) and before the consumer, whose close forgets every task whose
    pool process's acknowledgement has not been read, and with it the rest of a message
    begun. So here each begun message is written to the end, and the acknowledgement of
    every task handed over is read: such a task runs to its end like any task already
    running, its result is read (a pool process whose result is never read waits 30 s before
    it exits), and the pool process exits.
    """

    requires = {"celery.worker.components:Pool"}

    def close(self, worker: Any) -> None:
        pool = getattr(worker.pool, "_pool", None)
        if isinstance(pool, asynpool.AsynPool):
            finish_handing_over(pool)


def finish_handing_over(pool: Any, accept_wait: float = ACCEPT_WAIT_SECONDS) -> None:
    """Write the rest of each task message ``pool`` has begun to write to a pool process, and
    read the acknowledgements of the tasks handed over; messages not begun stay unwritten
    (the consumer forgets their tasks, and the broker delivers them again)."""
    deadline = time.monotonic() + accept_wait
    for job in list(pool._cache.values()):
        writer = asynpool._get_job_writer(job)
        if writer is not None and writer in pool._active_writers:
            if asynpool.gen_not_started(writer):
                continue
            pool._flush_writer(job._write_to, writer)
            log.info("warm shutdown: finished writing a task to pool process %s",
                     job._write_to.pid)
        process = getattr(job, "_write_to", None)
        while (process is not None and not job._accepted and process._is_alive()
               and time.monotonic() < deadline):
            pool.process_flush_queues(process)
