"""What the runtime raises to the application, and the one text a peer gets for our faults."""

from __future__ import annotations

from l2tp.protocol.events import SessionClosed, TunnelClosed

INTERNAL_ERROR = "l2tp_internal_error"
"""Set (True) on the log record of an unexpected exception caught by the runtime: a bug.
The project's test suite fails any test during which such a record is logged."""

LOCAL_FAILURE = "local failure"
"""The only text a peer gets when something fails on our side (a kernel or socket
error, a backend that would not start): the Result Code says what it may know, and
the details, which may name paths, users or privileges, stay in our log."""


class TunnelFailed(Exception):
    """The tunnel closed before it was established (or while awaited); carries the event."""

    def __init__(self, event: TunnelClosed) -> None:
        reason = event.reason
        what = f"result {reason.result}" if reason else "no result code"
        detail = (reason.message if reason else "") or event.description
        side = "peer" if event.by_peer else "local"
        super().__init__(f"tunnel {event.tunnel_id} closed ({side}, {what}): {detail}")
        self.event = event


class SessionFailed(Exception):
    """The session closed before it was established; carries the event."""

    def __init__(self, event: SessionClosed) -> None:
        reason = event.reason
        what = f"result {reason.result}" if reason else "no result code"
        detail = (reason.message if reason else "") or event.description
        side = "peer" if event.by_peer else "local"
        super().__init__(f"session {event.session_id} closed ({side}, {what}): {detail}")
        self.event = event
