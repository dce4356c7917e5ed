"""When a request's bytes reached the host: the kernel's receive time, not the handler's.

Airtable counts a request against the base's limit as it arrives at its edge. The sandbox is
one Python process: a handler thread woken by a request may wait tens of milliseconds for
the GIL while other threads run (presumably encoding pages; not profiled).
``bench/bases.py`` at 4 bases × 4 partitions saw the oldest request of each of 9 window 429s
counted 16-59 ms after the client had written it, 1-7 ms between the client's admission and
its write. Counted that late, two requests the clients sent a full second apart are counted
less than a second apart, a refusal Airtable would not give. Linux stamps every received
segment (``SO_TIMESTAMPNS``); reading through ``StampedReader`` keeps the stamp of the data
each request came in, so the limiter counts it at its arrival. Elsewhere the handler's own
clock is used, as before.
"""

from __future__ import annotations

import socket
import struct
import sys
import time
from typing import Any

# Linux values (asm-generic/socket.h); Python's socket module does not name them.
_SO_TIMESTAMPNS = 35
_SCM_TIMESTAMPNS = _SO_TIMESTAMPNS
_STAMP = struct.Struct("@qq")  # struct timespec: seconds, nanoseconds
_ANCILLARY_SPACE = socket.CMSG_SPACE(_STAMP.size) if hasattr(socket, "CMSG_SPACE") else 0


class StampedReader(socket.SocketIO):
    """A socket's raw reader that keeps the kernel's receive time of what it reads.

    ``request_arrival`` is the arrival (on ``time.monotonic``'s clock) of the first data read
    since ``start_request()``, or of the last data read when nothing was read since (the
    request came in with that data, already buffered); None when a read came unstamped.
    """

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock, "rb")
        self._connection = sock
        self._last: float | None = None
        self._first: float | None = None
        self._read = False

    def start_request(self) -> None:
        """A new request is about to be read."""
        self._first = None
        self._read = False

    @property
    def request_arrival(self) -> float | None:
        return self._first if self._read else self._last

    def readinto(self, buffer: Any) -> int | None:
        self._checkClosed()
        self._checkReadable()  # type: ignore[attr-defined]
        try:
            size, ancillary, _, _ = self._connection.recvmsg_into([buffer], _ANCILLARY_SPACE)
        except TimeoutError:
            self._timeout_occurred = True  # as SocketIO does: the stream is unusable now
            raise
        except BlockingIOError:
            return None
        stamp = None
        for level, kind, data in ancillary:
            # A 32-bit timespec (another layout) is left alone: the handler's clock counts.
            if level == socket.SOL_SOCKET and kind == _SCM_TIMESTAMPNS \
                    and len(data) == _STAMP.size:
                seconds, nanoseconds = _STAMP.unpack(data)
                # The stamp is on the wall clock; carried over to the monotonic one now, so a
                # clock step between two requests does not shift one against the other.
                stamp = time.monotonic() - (time.time() - (seconds + nanoseconds / 1e9))
        if not self._read:
            self._read, self._first = True, stamp
        self._last = stamp
        return size


def stamp_arrivals(sock: socket.socket) -> bool:
    """Have the kernel stamp the data ``sock`` receives (Linux); whether it will.

    Set on a listening socket, the connections it accepts inherit it, so even a request that
    arrives before its connection is accepted is stamped.
    """
    if not sys.platform.startswith("linux") or not _ANCILLARY_SPACE:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def stamped_reader(sock: socket.socket) -> StampedReader | None:
    """A ``StampedReader`` over ``sock`` when the kernel stamps its data, else None."""
    return StampedReader(sock) if stamp_arrivals(sock) else None
