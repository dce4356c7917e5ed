"""Retry and time policies, in one place: backoff, jitter, attempts, limits.

Every time limit derives from the broker's visibility timeout: Redis redelivers a message
whose task has not been acknowledged within it, so each task (plus its retry countdown) must
finish well inside it, and a killed worker's messages come back after it.
"""

from celery.exceptions import SoftTimeLimitExceeded

from app.errors import TransientError
from app.settings import get_settings

#: What a task retries by itself: anything that may go away (network, 429/5xx, locks), and a
#: step that ran past its soft time limit (a slow warehouse or a busy host): every step is
#: idempotent, so running it again is safe, and MAX_RETRIES bounds a step that is always slow.
RETRY_ON: tuple[type[BaseException], ...] = (TransientError, SoftTimeLimitExceeded)
MAX_RETRIES = 8

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

#: A running run with no sign of life for this long lost a message (to a worker killed between
#: kombu's pop and its bookkeeping, or to a Redis restart): the recovery sweep sends each
#: unfinished table's resume step and unloaded batches again. Longer than a task may run, and
#: than kombu takes to restore a dead worker's unacknowledged messages.
RECOVER_AFTER_SECONDS = VISIBILITY_TIMEOUT + 30
#: How often each worker's timer runs the recovery sweep (one worker per tick does it).
RECOVERY_SWEEP_SECONDS = max(VISIBILITY_TIMEOUT // 8, 5)

#: The sweep fails a running run with no sign of life for this long despite recovery (no live
#: workers), and a queued run its producer never sent after UNSENT_RUN_SECONDS.
STALLED_RUN_SECONDS = get_settings().conveyor_stalled_run_seconds
UNSENT_RUN_SECONDS = 60
WATCHDOG_EVERY_SECONDS = 30

#: Run status and results are kept this long in Redis.
STATUS_TTL_SECONDS = 7 * 24 * 3600
RESULT_EXPIRES_SECONDS = 24 * 3600
