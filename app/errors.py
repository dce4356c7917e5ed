"""The error tree: every failure is either transient (retry it) or terminal (fix something)."""


class ConveyorError(Exception):
    """Root of every error Conveyor raises on purpose."""


class TransientError(ConveyorError):
    """A failure that may go away by itself: retry with backoff."""


class TerminalError(ConveyorError):
    """A failure that retrying cannot fix: the message says what to change."""


class ConfigurationError(TerminalError):
    """A setting is missing or wrong (token, base id, table name, warehouse URL)."""


class SourceError(TerminalError):
    """The source refused a request for a reason that will not change on retry."""


class SourceUnavailableError(TransientError):
    """The source did not answer or answered with a server error or rate limit."""


class WarehouseError(TerminalError):
    """The warehouse refused a write for a reason that will not change on retry."""


class WarehouseUnavailableError(TransientError):
    """The warehouse was unreachable, locked or disconnected."""


class RunCancelledError(TerminalError):
    """The run was cancelled while this step was running."""


class CursorExpiredError(TransientError):
    """The source forgot a listing's cursor (Airtable's 422 LIST_RECORDS_ITERATOR_NOT_AVAILABLE):
    the listing must restart from the beginning."""
