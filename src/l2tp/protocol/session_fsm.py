"""The four session state machines of RFC 2661 sections 7.4.1-7.5.2, as tables.

One table per :class:`~.events.CallKind` (LAC/LNS x incoming/outgoing call),
each a dictionary ``(SessionState, SessionInput) -> Transition``, in the
manner of h2's stream state machine. The :class:`~.session.Session` object
runs the action; :func:`lookup` applies the defaults:

* A peer message not listed for the state is an out-of-sequence message (RFC
  2661 7.1): "Send CDN, Clean up" (the RFC lists most such rows explicitly;
  they are the default here) with Result Code 2 and the session ends.
* A local input not listed raises :class:`~.errors.LocalProtocolError`.
* ``ACCEPT_*``/``CHECK_*`` actions validate the message; when it is not
  acceptable a CDN with the check's Result Code is sent and the session ends
  instead of entering the listed state ("Receive X, not acceptable: Send CDN,
  Clean up").

Deviations, and why:

* ``WAIT_ACCEPT`` is a local decision point the RFC folds into "Receive ICRQ,
  acceptable" (7.4.2) and "Receive OCRQ, acceptable" (7.5.1): the daemon may
  want to authorise the call first. With ``auto_accept`` the tunnel feeds
  ``ACCEPT`` at once and the state is never seen from outside.
* The RFC's "idle" rows for messages with no session (e.g. 7.4.2 "idle,
  Receive ICCN: Clean up") are handled by the tunnel before a session exists
  (:data:`UNKNOWN_SESSION`).
* The RFC's return to "idle" is ``CLOSED`` here: the session object is done
  and its ID released; a new call gets a new session.
* ``WAIT_DATA_PLANE`` splits 7.4.1 "wait-reply, Receive ICRP, acceptable: Send
  ICCN" in two, so that a LAC can create its kernel session and attach the PPP
  channel before the ICCN leaves: the LNS starts its PPP as soon as it has the
  ICCN, and its first LCP Configure-Request, reaching a LAC kernel without the
  session, was lost (LCP then waited out the LNS's 3 s restart timer, RFC 1661
  4.6). RFC 2661 puts no bound on the LAC's time between ICRP and ICCN (the
  bearer answer of 7.4.1 may take any time). A call whose
  :attr:`~.values.CallParams.wait_data_plane` is set stops here and reports
  :class:`~.events.DataPlaneWanted`; ``DATA_PLANE_READY`` sends the ICCN. Any
  other call is given ``DATA_PLANE_READY`` at once by its session table, so
  the ICCN leaves with the ICRP's acknowledgement as before.
* The same state splits 7.4.2 "wait-request (our wait-accept), Receive ICRQ,
  acceptable: Send ICRP" on the LNS, the mirror image: a LAC starts its PPP as
  soon as it has sent its ICCN, and its first LCP Configure-Request, reaching an
  LNS kernel without the session or its PPP channel, was lost the same way. The
  ICRQ carries the LAC's session ID (and on L2TPv3 its cookie), so an LNS can
  create the kernel session and attach the channel before its ICRP leaves. RFC
  2661 puts no bound on the LNS's time between ICRQ and ICRP either (the LAC's
  own set-up timer covers it). ``ACCEPT`` of a call whose
  :attr:`~.values.CallParams.wait_data_plane` is set stops here and reports
  :class:`~.events.DataPlaneWanted`; ``DATA_PLANE_READY`` sends the ICRP. An
  ICCN here is out of sequence (the LAC has no ICRP yet): CDN, as in
  wait-accept.
* WEN (6.12) and SLI (6.13) are only meaningful once established; earlier
  they are ignored rather than fatal, since neither changes call state.

L2TPv3 (RFC 3931 7.3-7.4) keeps these four tables: "ICRQ sender/recipient"
and "OCRQ sender/recipient (LAC)" are the v2 incoming and outgoing tables
with the LAC/LNS names dropped. :data:`V3_SESSION_TABLES` differ in one
thing: an established session reports WEN and SLI from either end, since
RFC 3931 6.14 has SLI "sent by an LCCE" and an LCCE is an LAC for the
sessions whose circuit it holds, which in the LAC-LAC model (RFC 3931 2) is
both ends of every session (see :meth:`~.tunnel.Tunnel.send_wen`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .constants import KeyEnum, MessageType
from .errors import LocalProtocolError
from .events import CallKind


class SessionState(KeyEnum):
    IDLE = "idle"
    WAIT_TUNNEL = "wait-tunnel"
    """Waiting for the control connection to be established."""
    WAIT_REPLY = "wait-reply"
    """ICRQ/OCRQ sent."""
    WAIT_ACCEPT = "wait-accept"
    """ICRQ/OCRQ received, our decision pending."""
    WAIT_CONNECT = "wait-connect"
    """ICRP sent (LNS incoming) or OCRP received (LNS outgoing)."""
    WAIT_CS_ANSWER = "wait-cs-answer"
    """OCRP sent, bearer being connected (LAC outgoing)."""
    WAIT_DATA_PLANE = "wait-data-plane"
    """Our ICCN (LAC incoming: ICRP received) or ICRP (LNS incoming: ICRQ accepted) held
    until the local data plane is ready."""
    ESTABLISHED = "established"
    CLOSED = "closed"


class SessionInput(KeyEnum):
    OPEN = "local open request"
    TUNNEL_OPEN = "tunnel-open"
    ACCEPT = "local accept"
    ANSWER = "bearer answer"
    DATA_PLANE_READY = "local data plane ready"
    CLOSE = "local close request"
    TUNNEL_DOWN = "tunnel down"
    RECV_ICRQ = "receive ICRQ"
    RECV_ICRP = "receive ICRP"
    RECV_ICCN = "receive ICCN"
    RECV_OCRQ = "receive OCRQ"
    RECV_OCRP = "receive OCRP"
    RECV_OCCN = "receive OCCN"
    RECV_CDN = "receive CDN"
    RECV_WEN = "receive WEN"
    RECV_SLI = "receive SLI"
    RECV_BAD = "receive an unacceptable session message"
    """Missing a required AVP or carrying an unknown M-bit AVP (RFC 2661 4.2, 7.1)."""


LOCAL_INPUTS = frozenset(
    {
        SessionInput.OPEN,
        SessionInput.TUNNEL_OPEN,
        SessionInput.ACCEPT,
        SessionInput.ANSWER,
        SessionInput.DATA_PLANE_READY,
        SessionInput.CLOSE,
        SessionInput.TUNNEL_DOWN,
    }
)


class SessionAction(KeyEnum):
    NONE = "nothing to send"
    SEND_ICRQ = "send ICRQ"
    SEND_OCRQ = "send OCRQ"
    CHECK_REQUEST = "check ICRQ/OCRQ, record the call"
    ACCEPT_CALL = "accept the call, ask for the data plane if the call waits for it"
    SEND_ICRP = "send ICRP"
    SEND_OCRP = "send OCRP"
    SEND_OCCN = "send OCCN, established"
    ACCEPT_ICRP = "check ICRP, ask for the data plane if the call waits for it"
    SEND_ICCN = "send ICCN, established"
    ACCEPT_OCRP = "check OCRP"
    ACCEPT_CONNECTED = "check ICCN/OCCN, established"
    SEND_CDN = "send CDN with our reason, clean up"
    CDN_FSM_ERROR = "send CDN (out of sequence), clean up"
    CDN_BAD = "send CDN with the reason the message was refused, clean up"
    PEER_DISCONNECT = "CDN received: clean up"
    DISCARD = "clean up without a CDN"
    TUNNEL_LOST = "tunnel down: clean up, no CDN (the StopCCN covers it)"
    EMIT_WEN = "report WEN"
    EMIT_SLI = "report SLI"
    IGNORE = "nothing"


@dataclass(frozen=True, slots=True)
class Transition:
    action: SessionAction
    next_state: SessionState


S = SessionState
I = SessionInput  # noqa: E741
A = SessionAction
K = CallKind
T = Transition


def _common(
    table: dict[tuple[SessionState, SessionInput], Transition], states: tuple[SessionState, ...]
) -> None:
    """Rows every kind shares for the states after IDLE."""
    for state in states:
        table.setdefault((state, I.RECV_CDN), T(A.PEER_DISCONNECT, S.CLOSED))
        table.setdefault((state, I.RECV_BAD), T(A.CDN_BAD, S.CLOSED))
        table.setdefault((state, I.TUNNEL_DOWN), T(A.TUNNEL_LOST, S.CLOSED))
        table.setdefault((state, I.CLOSE), T(A.SEND_CDN, S.CLOSED))
        table.setdefault((state, I.RECV_WEN), T(A.IGNORE, state))
        table.setdefault((state, I.RECV_SLI), T(A.IGNORE, state))
    for inp in SessionInput:
        table[S.CLOSED, inp] = T(A.IGNORE, S.CLOSED)


def _lac_incoming() -> dict[tuple[SessionState, SessionInput], Transition]:
    """RFC 2661 7.4.1."""
    t = {
        (S.IDLE, I.OPEN): T(A.NONE, S.WAIT_TUNNEL),
        (S.WAIT_TUNNEL, I.TUNNEL_OPEN): T(A.SEND_ICRQ, S.WAIT_REPLY),
        (S.WAIT_TUNNEL, I.CLOSE): T(A.DISCARD, S.CLOSED),
        (S.WAIT_REPLY, I.RECV_ICRP): T(A.ACCEPT_ICRP, S.WAIT_DATA_PLANE),
        (S.WAIT_REPLY, I.RECV_ICCN): T(A.DISCARD, S.CLOSED),
        (S.WAIT_DATA_PLANE, I.DATA_PLANE_READY): T(A.SEND_ICCN, S.ESTABLISHED),
        (S.ESTABLISHED, I.RECV_SLI): T(A.EMIT_SLI, S.ESTABLISHED),
    }
    _common(t, (S.WAIT_TUNNEL, S.WAIT_REPLY, S.WAIT_DATA_PLANE, S.ESTABLISHED))
    return t


def _lns_incoming() -> dict[tuple[SessionState, SessionInput], Transition]:
    """RFC 2661 7.4.2."""
    t = {
        (S.IDLE, I.RECV_ICRQ): T(A.CHECK_REQUEST, S.WAIT_ACCEPT),
        (S.WAIT_ACCEPT, I.ACCEPT): T(A.ACCEPT_CALL, S.WAIT_DATA_PLANE),
        (S.WAIT_DATA_PLANE, I.DATA_PLANE_READY): T(A.SEND_ICRP, S.WAIT_CONNECT),
        (S.WAIT_CONNECT, I.RECV_ICCN): T(A.ACCEPT_CONNECTED, S.ESTABLISHED),
        (S.ESTABLISHED, I.RECV_WEN): T(A.EMIT_WEN, S.ESTABLISHED),
    }
    _common(t, (S.WAIT_ACCEPT, S.WAIT_DATA_PLANE, S.WAIT_CONNECT, S.ESTABLISHED))
    return t


def _lac_outgoing() -> dict[tuple[SessionState, SessionInput], Transition]:
    """RFC 2661 7.5.1."""
    t = {
        (S.IDLE, I.RECV_OCRQ): T(A.CHECK_REQUEST, S.WAIT_ACCEPT),
        (S.WAIT_ACCEPT, I.ACCEPT): T(A.SEND_OCRP, S.WAIT_CS_ANSWER),
        (S.WAIT_CS_ANSWER, I.ANSWER): T(A.SEND_OCCN, S.ESTABLISHED),
        (S.ESTABLISHED, I.RECV_SLI): T(A.EMIT_SLI, S.ESTABLISHED),
    }
    _common(t, (S.WAIT_ACCEPT, S.WAIT_CS_ANSWER, S.ESTABLISHED))
    return t


def _lns_outgoing() -> dict[tuple[SessionState, SessionInput], Transition]:
    """RFC 2661 7.5.2."""
    t = {
        (S.IDLE, I.OPEN): T(A.NONE, S.WAIT_TUNNEL),
        (S.WAIT_TUNNEL, I.TUNNEL_OPEN): T(A.SEND_OCRQ, S.WAIT_REPLY),
        (S.WAIT_TUNNEL, I.CLOSE): T(A.DISCARD, S.CLOSED),
        (S.WAIT_REPLY, I.RECV_OCRP): T(A.ACCEPT_OCRP, S.WAIT_CONNECT),
        (S.WAIT_CONNECT, I.RECV_OCCN): T(A.ACCEPT_CONNECTED, S.ESTABLISHED),
        (S.ESTABLISHED, I.RECV_WEN): T(A.EMIT_WEN, S.ESTABLISHED),
    }
    _common(t, (S.WAIT_TUNNEL, S.WAIT_REPLY, S.WAIT_CONNECT, S.ESTABLISHED))
    return t


SESSION_TABLES: dict[CallKind, dict[tuple[SessionState, SessionInput], Transition]] = {
    K.LAC_INCOMING: _lac_incoming(),
    K.LNS_INCOMING: _lns_incoming(),
    K.LAC_OUTGOING: _lac_outgoing(),
    K.LNS_OUTGOING: _lns_outgoing(),
}


def _v3(
    table: dict[tuple[SessionState, SessionInput], Transition],
) -> dict[tuple[SessionState, SessionInput], Transition]:
    t = dict(table)
    t[S.ESTABLISHED, I.RECV_WEN] = T(A.EMIT_WEN, S.ESTABLISHED)
    t[S.ESTABLISHED, I.RECV_SLI] = T(A.EMIT_SLI, S.ESTABLISHED)
    return t


V3_SESSION_TABLES: dict[CallKind, dict[tuple[SessionState, SessionInput], Transition]] = {
    kind: _v3(table) for kind, table in SESSION_TABLES.items()
}
"""RFC 3931 7.3.1 (ICRQ sender), 7.3.2 (recipient), 7.4.1 (OCRQ sender), 7.4.2 (recipient)."""

STATES_BY_KIND: dict[CallKind, frozenset[SessionState]] = {
    kind: frozenset(state for state, _ in table) for kind, table in SESSION_TABLES.items()
}
"""The states each kind can be in."""


def lookup(kind: CallKind, state: SessionState, inp: SessionInput, version: int = 2) -> Transition:
    """The transition for ``(state, inp)`` in ``kind``'s table, with the module's defaults."""
    tables = V3_SESSION_TABLES if version == 3 else SESSION_TABLES
    transition = tables[kind].get((state, inp))
    if transition is not None:
        return transition
    if inp in LOCAL_INPUTS:
        raise LocalProtocolError(f"cannot {inp.value} a {kind.value} session in {state.value}")
    if state is SessionState.IDLE:
        # Never reached: sessions leave IDLE on their first input (OPEN or the request).
        return Transition(SessionAction.IGNORE, SessionState.CLOSED)
    return Transition(SessionAction.CDN_FSM_ERROR, SessionState.CLOSED)


MESSAGE_INPUTS: dict[int, SessionInput] = {
    MessageType.ICRQ: SessionInput.RECV_ICRQ,
    MessageType.ICRP: SessionInput.RECV_ICRP,
    MessageType.ICCN: SessionInput.RECV_ICCN,
    MessageType.OCRQ: SessionInput.RECV_OCRQ,
    MessageType.OCRP: SessionInput.RECV_OCRP,
    MessageType.OCCN: SessionInput.RECV_OCCN,
    MessageType.CDN: SessionInput.RECV_CDN,
    MessageType.WEN: SessionInput.RECV_WEN,
    MessageType.SLI: SessionInput.RECV_SLI,
}


class UnknownSessionAction(enum.Enum):
    REPLY_CDN = "send CDN"
    DROP = "clean up (nothing to clean)"


UNKNOWN_SESSION: dict[int, UnknownSessionAction] = {
    # 7.4.2 "idle, Receive ICRP: Send CDN"; 7.5.1 "idle, Receive OCRP: Send CDN".
    MessageType.ICRP: UnknownSessionAction.REPLY_CDN,
    MessageType.OCRP: UnknownSessionAction.REPLY_CDN,
    # 7.4.1/7.4.2/7.5.1/7.5.2 "idle, Receive ICCN/OCCN/CDN: Clean up".
    MessageType.ICCN: UnknownSessionAction.DROP,
    MessageType.OCCN: UnknownSessionAction.DROP,
    MessageType.CDN: UnknownSessionAction.DROP,
    MessageType.WEN: UnknownSessionAction.DROP,
    MessageType.SLI: UnknownSessionAction.DROP,
}
"""What to do with a session message (other than ICRQ/OCRQ) naming no session we have."""
