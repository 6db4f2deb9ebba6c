"""Error types of the sans-IO protocol core.

Following h11, there are two directions of failure: our own misuse of the API
(:class:`LocalProtocolError`, raised at the call site) and faults in what the
peer sent (:class:`CodecError` from the parsers, turned into events and counters
by the receive path so that bad input never escapes as an exception there).
"""

from __future__ import annotations


class L2tpError(Exception):
    """Base class of every exception this package raises on purpose."""


class CodecError(L2tpError, ValueError):
    """Bytes from the wire could not be decoded.

    ``offset`` is the byte position in the datagram where decoding failed and
    ``reason`` a short human explanation; both are kept separately so that
    counters and the ``l2tp decode`` tool can report them.
    """

    def __init__(self, reason: str, offset: int = 0) -> None:
        super().__init__(f"{reason} (at byte {offset})")
        self.reason = reason
        self.offset = offset


class LocalProtocolError(L2tpError):
    """The caller asked the protocol core to do something invalid."""
