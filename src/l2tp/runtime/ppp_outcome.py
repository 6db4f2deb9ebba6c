"""How a built-in PPP link ends and what the control plane is told (:func:`map_ending`),
and the counters of the built-in PPP backend (:class:`BuiltinPppCounters`).

RFC 2661 4.4.2 (and RFC 3931 5.4.2) leave it to the LAC/LNS which Result Code a
disconnect carries; this table follows what the project's pppd backend reports for the
same event (:data:`l2tp.runtime.ppp.EXIT_TABLE`), so that a peer sees the same CDN
whichever PPP runs a session. docs/builtin-ppp.md has the table and the reasons.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from l2tp.protocol.constants import CdnResult, ErrorCode
from l2tp.runtime.errors import LOCAL_FAILURE


class Ending(enum.Enum):
    """Why a built-in PPP link ended (what :func:`map_ending` turns into a CDN)."""

    AUTH_FAILED = "authentication of the peer failed"
    AUTH_TO_PEER_FAILED = "authentication to the peer failed"
    ECHO_FAILED = "peer not answering LCP Echo-Requests"
    PEER_TERMINATED = "terminated by the peer"
    NEGOTIATION_FAILED = "negotiation failed"
    HANGUP = "channel hung up"
    IDLE_TIMEOUT = "idle time limit reached"
    """No data crossed the interface for the verifier's Idle-Timeout (RFC 2865 5.28)."""
    LOCAL_FAILURE = "local failure"
    """The kernel refused what the link needs (unit, interface, address)."""
    INTERNAL_ERROR = "internal error"
    """A bug in this process (logged with its traceback)."""
    SESSION_TIMEOUT = "session time limit reached"
    """The session's time limit ran out (``PppLink.set_session_timeout``: a RADIUS
    Session-Timeout, RFC 2865 5.27, from an Access-Accept or a CoA-Request)."""


R = CdnResult
ENDINGS: dict[Ending, tuple[CdnResult, ErrorCode | None, str]] = {
    Ending.AUTH_FAILED: (R.GENERAL_ERROR, ErrorCode.VENDOR_SPECIFIC, "PPP authentication failed"),
    Ending.AUTH_TO_PEER_FAILED: (
        R.GENERAL_ERROR,
        ErrorCode.VENDOR_SPECIFIC,
        "PPP authentication to the peer failed",
    ),
    Ending.ECHO_FAILED: (R.LOST_CARRIER, None, "PPP peer not answering LCP echo requests"),
    Ending.PEER_TERMINATED: (R.LOST_CARRIER, None, "PPP link terminated by the peer"),
    Ending.NEGOTIATION_FAILED: (R.NO_FRAMING, None, "PPP negotiation failed"),
    Ending.HANGUP: (R.LOST_CARRIER, None, "PPP channel hung up"),
    Ending.IDLE_TIMEOUT: (R.ADMINISTRATIVE, None, "PPP idle timeout"),
    Ending.LOCAL_FAILURE: (R.TEMPORARY_NO_FACILITIES, None, LOCAL_FAILURE),
    Ending.INTERNAL_ERROR: (R.GENERAL_ERROR, None, LOCAL_FAILURE),
    Ending.SESSION_TIMEOUT: (R.ADMINISTRATIVE, None, "PPP connect time limit reached"),
}
"""Ending -> (CDN Result Code, Error Code, Error Message to the peer); docs/builtin-ppp.md.

The same Result Codes as the pppd backend gives for the same event (pppd's exit statuses
11/19, 15, 0, 10, 13 (``maxconnect``, which pppd's RADIUS plugin sets from
Session-Timeout), 12 (``idle``, from Idle-Timeout) and 16 in
:data:`l2tp.runtime.ppp.EXIT_TABLE`), so a peer sees the same CDN whichever PPP runs
the session. The message never names the user.
"""

_V2_ONLY_RESULTS = frozenset(range(6, 12))


def map_ending(ending: Ending, *, version: int = 2) -> tuple[int, int | None, str]:
    """``(result, error, message)`` of the CDN for a link that ended with ``ending``.

    RFC 3931 5.4.2 has no Result Codes 6-11: on L2TPv3 they become 2 (general error)
    with Error Code 6 (vendor-specific) and the same message, as for pppd.
    """
    result, error, message = ENDINGS[ending]
    if version == 3 and result in _V2_ONLY_RESULTS:
        return int(R.GENERAL_ERROR), int(ErrorCode.VENDOR_SPECIFIC), message
    return int(result), None if error is None else int(error), message


@dataclass(slots=True)
class BuiltinPppCounters:
    """What the built-in PPP backend counts, across sessions."""

    started: int = 0
    network_up: int = 0
    """NCPs that reached Opened (IPCP and IPv6CP count one each)."""
    auth_succeeded: int = 0
    auth_failed: int = 0
    auth_hook_errors: int = 0
    """Authentication hooks that raised (the peer was denied)."""
    echo_failed: int = 0
    peer_terminated: int = 0
    negotiation_failed: int = 0
    hangups: int = 0
    idle_timeouts: int = 0
    """Sessions ended by the verifier's Idle-Timeout (RADIUS)."""
    local_failures: int = 0
    session_timeouts: int = 0
    """Sessions ended by their Session-Timeout (RADIUS Access-Accept or CoA)."""
    stopped: int = 0
    """Links ended by :meth:`stop` (the control plane closed the session)."""
    pool_exhausted: int = 0
    frames_in: int = 0
    frames_out: int = 0
    write_errors: int = 0
    malformed: int = 0
    """Frames the core could not parse (summed from each link's counters when it ends)."""
    interface_errors: int = 0
    """Interface requests (rename, MTU, up, addresses) the kernel refused."""
    routes_added: int = 0
    """Routes granted by the verifier (RADIUS Framed-Route) installed."""
    route_errors: int = 0
    """Granted routes the kernel refused (an equal route exists, ...): not installed."""


ENDING_COUNTER = {
    Ending.AUTH_FAILED: "auth_failed",
    Ending.AUTH_TO_PEER_FAILED: "auth_failed",
    Ending.ECHO_FAILED: "echo_failed",
    Ending.PEER_TERMINATED: "peer_terminated",
    Ending.NEGOTIATION_FAILED: "negotiation_failed",
    Ending.HANGUP: "hangups",
    Ending.IDLE_TIMEOUT: "idle_timeouts",
    Ending.LOCAL_FAILURE: "local_failures",
    Ending.INTERNAL_ERROR: "local_failures",
    Ending.SESSION_TIMEOUT: "session_timeouts",
}
