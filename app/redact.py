"""Masking of secrets before anything reaches a log, a message or a status line."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

#: Query parameters that carry a secret (redis-py and libpq both accept ``?password=``).
_SECRET_QUERY = re.compile(
    r"(?P<name>(?:^|&)[^&=]*(?:password|passwd|pwd|secret|token)[^&=]*)=[^&]*", re.IGNORECASE
)


def mask_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (``redis://:***@host/0``).

    Masks the password of the user part, however it is spelled (``:`` or ``@`` inside it,
    percent-encoded or not), and the value of query parameters such as ``?password=``. A
    password holding an unencoded ``/``, ``?`` or ``#`` confuses URL parsers; then everything
    up to the last ``@`` is masked: when in doubt, more is hidden, never less.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc
    if parts.password is not None:
        # Rebuild from the raw netloc: .port raises on a non-numeric port, which bad input may have.
        userinfo, _, hostport = netloc.rpartition("@")
        netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{hostport}"
    elif "@" not in netloc:
        stray = _stray_userinfo(url, parts.scheme)
        if stray is not None:
            return stray
    query = _SECRET_QUERY.sub(lambda m: f"{m['name']}={MASK}", parts.query)
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _stray_userinfo(url: str, scheme: str) -> str | None:
    """``url`` masked up to its last ``@`` if what precedes it looks like ``user:password``.

    Needed when the password holds a character that ends the authority for URL parsers
    (``redis://:pa/ss@host/0`` parses as host ``:pa``), so ``urlsplit`` finds no password.
    """
    prefix = f"{scheme}://" if scheme else "//"
    if not url.startswith(prefix):
        return None
    rest = url[len(prefix):]
    userinfo, at, after = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return None
    user = userinfo.split(":", 1)[0]
    if any(c in user for c in "/?#"):
        return None
    return f"{prefix}{user}:{MASK}@{after}"
