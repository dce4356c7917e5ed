"""Retry and time policies, in one place: backoff, jitter, attempts, limits.

Every time limit derives from the broker's visibility timeout: Redis redelivers a message
whose task has not been acknowledged within it, so each task (plus its retry countdown) must
finish well inside it, and a killed worker's messages come back after it.
"""

import sys

from app.errors import TransientError
from app.settings import get_settings

#: What a task retries by itself: anything that may go away (network, 429/5xx, locks).
RETRY_ON = (TransientError,)
MAX_RETRIES = 8
#: Polls and continuations re-send a task without using up its retry budget.
UNBOUNDED = sys.maxsize

VISIBILITY_TIMEOUT = get_settings().conveyor_visibility_timeout_seconds
#: A task must be acknowledged long before the broker would hand it to someone else.
HARD_TIME_LIMIT = max(VISIBILITY_TIMEOUT // 2, 10)
SOFT_TIME_LIMIT = HARD_TIME_LIMIT - max(HARD_TIME_LIMIT // 4, 5)
#: An extraction task hands over to a follow-up task after this long, so no task is long.
EXTRACT_SLICE_SECONDS = max(SOFT_TIME_LIMIT // 3, 3)

#: Exponential backoff (seconds), capped well inside the visibility timeout, fully jittered so
#: retries of many tasks spread out.
RETRY_BACKOFF = 2
RETRY_BACKOFF_MAX = max(VISIBILITY_TIMEOUT // 4, 5)
RETRY_JITTER = True

#: How long finish_table waits (polling) for the load workers to finish a table's batches.
FINISH_POLL_SECONDS = 1.0
FINISH_MAX_WAIT_SECONDS = 3600
#: A batch still missing after this long with no batch loaded at all was lost on its way:
#: kombu's Redis transport pops a message before it records it as unacknowledged, so a worker
#: killed in between loses it for good. The table is then extracted again in a new epoch.
LOST_BATCH_SECONDS = 2 * VISIBILITY_TIMEOUT + 20
MAX_REEXTRACTS = 3

#: How often a run queued behind another run of the same workflow checks whether it may start.
QUEUED_RUN_POLL_SECONDS = 5

#: The watchdog fails a running run with no sign of life for this long (a lost chord callback,
#: workers gone), and a queued run its producer never sent after UNSENT_RUN_SECONDS.
STALLED_RUN_SECONDS = get_settings().conveyor_stalled_run_seconds
UNSENT_RUN_SECONDS = 60
WATCHDOG_EVERY_SECONDS = 30

#: Run status and results are kept this long in Redis.
STATUS_TTL_SECONDS = 7 * 24 * 3600
RESULT_EXPIRES_SECONDS = 24 * 3600
