"""Secret scans: does a secret appear anywhere, plainly, URL-encoded or inside base64?"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from urllib.parse import quote


def spellings(secret: str) -> set[str]:
    """The ways ``secret`` can show up in text: as is, percent-encoded, or inside base64.

    kombu stores message bodies base64-encoded, so a secret in a body is only visible as one
    of three base64 fragments (one per alignment of its first byte in a 3-byte group).
    """
    raw = secret.encode()
    found = {secret, quote(secret, safe="")}
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode()
        # Characters mixing padding or trailing bytes with the secret are unstable: drop them.
        start = 4 if shift else 0
        whole_groups = (len(raw) - (3 - shift) % 3) // 3
        fragment = encoded[start:start + 4 * whole_groups]
        if len(fragment) >= 8:
            found.add(fragment)
    return found


def leaks(sources: Mapping[str, str], secrets: Iterable[str]) -> list[str]:
    """Every (secret, source) pair where the secret shows up, with a little context."""
    problems = []
    for secret in secrets:
        for spelling in spellings(secret):
            for name, text in sources.items():
                at = text.find(spelling)
                if at >= 0:
                    context = text[max(0, at - 80):at + len(spelling) + 40].replace("\n", "⏎")
                    problems.append(f"{secret!r} (as {spelling!r}) in {name}: …{context}…")
    return problems
