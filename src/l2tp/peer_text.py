"""Text a peer chose (a PPP user name, a host name), made safe for one log line.

Why not ``%r``: the rule for our logs is no Python reprs (``'alice'`` vs
``b'alice'`` depends on a type, not on what the peer sent). Why not plain ``%s``:
a name with a newline or a terminal escape sequence would forge or garble log
lines. :func:`quoted` writes it in double quotes with JSON's escapes, which every
log pipeline reads.
"""

from __future__ import annotations

import json

__all__ = ["quoted"]


def quoted(text: str | bytes | None) -> str:
    """``text`` in double quotes, control characters, quotes and non-ASCII escaped
    (``"alice smith"``, ``"evil\\n..."``); bytes are read as UTF-8, invalid bytes
    as ``\\\\xNN``; None as ``-``."""
    if text is None:
        return "-"
    if isinstance(text, bytes):
        text = text.decode("utf-8", "backslashreplace")
    return json.dumps(text)
