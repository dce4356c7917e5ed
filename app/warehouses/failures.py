"""Warehouse URLs and failures: parsing and masking WAREHOUSE_URL, translating driver errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from app.errors import ConfigurationError, WarehouseError, WarehouseUnavailableError
from app.redact import mask_url


def parse_url(url: str) -> sa.URL:
    """``url`` as a SQLAlchemy URL.

    Raises:
        ConfigurationError: ``url`` is not a database URL.
    """
    try:
        return sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        pass
    try:
        shown = repr(mask_url(url))
    except ValueError:  # mask_url reads the port too; never echo a URL it cannot mask
        shown = "<unparseable url>"
    raise ConfigurationError(
        f"WAREHOUSE_URL {shown} is not a database URL: use"
        " sqlite:///path/to/file.db or postgresql://user:password@host:5432/database"
    )


def masked_url(url: sa.URL) -> str:
    """``url`` as text with any password masked."""
    return mask_url(url.render_as_string(hide_password=False))


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines too) made one space."""
    return " ".join(text.split())


def scrub(text: str, secret: str | None) -> str:
    """``text`` without ``secret``, should a driver ever echo the password back."""
    return text.replace(secret, "***") if secret else text


@contextmanager
def translated(
    prefix: str, is_transient: Callable[[sa.exc.DBAPIError], bool], secret: str | None
) -> Iterator[None]:
    """Turn SQLAlchemy errors into Conveyor's: transient ones can be retried.

    Args:
        prefix: What failed, e.g. ``warehouse sqlite:///w.db failed loading batch 3``.
        is_transient: Whether a driver error may go away on retry (dialect-specific).
        secret: The password, removed from every message.

    Raises:
        WarehouseUnavailableError: for transient errors and an exhausted connection pool.
        WarehouseError: for every other SQLAlchemy error.
    """
    try:
        yield
    except sa.exc.DBAPIError as exc:
        message = scrub(f"{prefix}: {one_line(str(exc.orig))}", secret)
        if is_transient(exc):
            raise WarehouseUnavailableError(message) from exc
        raise WarehouseError(message) from exc
    except sa.exc.TimeoutError as exc:
        message = scrub(f"{prefix}: no free connection in the pool ({exc})", secret)
        raise WarehouseUnavailableError(message) from exc
    except sa.exc.SQLAlchemyError as exc:
        raise WarehouseError(scrub(f"{prefix}: {one_line(str(exc))}", secret)) from exc
