"""Retry and time policies, in one place: backoff, jitter, attempts, limits."""

from app.errors import TransientError

#: What a task retries by itself: anything that may go away (network, 429/5xx, locks).
RETRY_ON = (TransientError,)
MAX_RETRIES = 8
#: Exponential backoff (seconds), capped, with full jitter so retries of many tasks spread out.
RETRY_BACKOFF = 2
RETRY_BACKOFF_MAX = 60
RETRY_JITTER = True

#: Tasks are kept short; the limits catch a stuck one. Visibility must exceed the hard limit.
SOFT_TIME_LIMIT = 240
HARD_TIME_LIMIT = 300
VISIBILITY_TIMEOUT = 600

#: How long finish_table waits (polling) for the load workers to finish a table's batches.
FINISH_POLL_SECONDS = 1.0
FINISH_MAX_WAIT_SECONDS = 3600

#: How often a run queued behind another run of the same workflow checks whether it may start.
QUEUED_RUN_POLL_SECONDS = 5

#: Run status and results are kept this long in Redis.
STATUS_TTL_SECONDS = 7 * 24 * 3600
RESULT_EXPIRES_SECONDS = 24 * 3600
