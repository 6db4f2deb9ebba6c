"""The control connection state machine of RFC 2661 section 7.2.1, as a table.

Following h2's ``H2ConnectionStateMachine``, the machine is the dictionary
:data:`TUNNEL_TABLE` mapping ``(TunnelState, TunnelInput)`` to a
:class:`Transition` (the side effect to run, the state to enter). The
:class:`~.tunnel.Tunnel` object classifies what happened into a
:class:`TunnelInput`, looks it up with :func:`lookup` and runs the action.

Conventions that keep the table short and every path defined:

* The RFC's "acceptable / not acceptable" rows share one input: the action
  (``ACCEPT_*``) validates the message, and when it is not acceptable the
  tunnel sends a StopCCN with the Result Code the check produced and enters
  ``CLOSING`` instead of the listed state (RFC 2661 7.2.1 "Send StopCCN, Clean
  up"). ``STOP_*`` actions always end in ``CLOSING``.
* A pair missing from the table is, for a peer input, a message "received in an
  improper sequence" (RFC 2661 7.1): StopCCN with Result Code 7 (FSM error)
  and ``CLOSING``. For a local input it is API misuse and raises
  :class:`~.errors.LocalProtocolError` at the call site.
* "Clean up" after a StopCCN means close-wait, not forgetting: RFC 2661 5.7 and
  5.8 keep acknowledging (and retransmitting our StopCCN) for a full
  retransmission cycle. That is ``CLOSING``; ``CLOSED`` is after it, or at once
  when nothing was ever sent or the transport failed.
"""

from __future__ import annotations

from dataclasses import dataclass

from .constants import KeyEnum, MessageType
from .errors import LocalProtocolError


class TunnelState(KeyEnum):
    """RFC 2661 7.2.1 states, plus the close-wait the RFC describes in prose (5.7)."""

    IDLE = "idle"
    WAIT_CTL_REPLY = "wait-ctl-reply"
    """Initiator: SCCRQ sent."""
    WAIT_CTL_CONN = "wait-ctl-conn"
    """Recipient: SCCRP sent."""
    ESTABLISHED = "established"
    CLOSING = "closing"
    """StopCCN sent or received: acknowledging retransmissions for a full cycle."""
    CLOSED = "closed"
    """Terminal: nothing more is sent or accepted."""


class TunnelInput(KeyEnum):
    """What can happen to a tunnel. ``RECV_*`` come from the peer, the rest are local."""

    OPEN = "local open request"
    CLOSE = "admin tunnel close"
    RECV_SCCRQ = "receive SCCRQ"
    RECV_SCCRP = "receive SCCRP"
    RECV_SCCCN = "receive SCCCN"
    RECV_STOPCCN = "receive StopCCN"
    RECV_HELLO = "receive HELLO"
    RECV_SESSION = "receive a session message"
    RECV_UNKNOWN = "receive an unknown message type without the M bit"
    RECV_BAD = "receive an unacceptable message"
    """Malformed, missing a required AVP, an unknown M-bit AVP or message type
    (RFC 2661 4.2, 4.4.1, 7.1), or hidden AVPs that do not unhide."""
    LOSE_TIE = "receive SCCRQ, lose tie-breaker"
    TRANSPORT_FAILED = "retransmissions exhausted"
    TRANSPORT_CLOSED = "close-wait elapsed"


LOCAL_INPUTS = frozenset({TunnelInput.OPEN, TunnelInput.CLOSE, TunnelInput.LOSE_TIE})
"""Inputs that come from our own API: a missing pair raises instead of sending StopCCN."""


class TunnelAction(KeyEnum):
    SEND_SCCRQ = "send SCCRQ"
    ACCEPT_SCCRQ = "check SCCRQ, send SCCRP"
    ACCEPT_SCCRP = "check SCCRP, send SCCCN, tunnel-open to waiting sessions"
    ACCEPT_SCCCN = "check SCCCN, tunnel-open to waiting sessions"
    DISPATCH = "hand the message to its session"
    STOP = "send StopCCN with our reason, clean up"
    STOP_FSM_ERROR = "send StopCCN (Result 7, FSM error), clean up"
    STOP_BAD = "send StopCCN with the reason the message was refused, clean up"
    PEER_STOPPED = "peer sent StopCCN: sessions down, acknowledge through close-wait"
    ABANDON = "clean up silently"
    DISCARD_LOSER = "tie breaker lost: clean up without StopCCN (v3: acknowledge in close-wait)"
    FAIL = "transport failed: sessions down, no StopCCN possible"
    RELEASE = "close-wait over: free the state"
    IGNORE = "nothing"


@dataclass(frozen=True, slots=True)
class Transition:
    action: TunnelAction
    next_state: TunnelState


S = TunnelState
I = TunnelInput  # noqa: E741
A = TunnelAction

_LIVE = (S.IDLE, S.WAIT_CTL_REPLY, S.WAIT_CTL_CONN, S.ESTABLISHED)


def _build() -> dict[tuple[TunnelState, TunnelInput], Transition]:
    t: dict[tuple[TunnelState, TunnelInput], Transition] = {
        # RFC 2661 7.2.1, row by row.
        (S.IDLE, I.OPEN): Transition(A.SEND_SCCRQ, S.WAIT_CTL_REPLY),
        (S.IDLE, I.RECV_SCCRQ): Transition(A.ACCEPT_SCCRQ, S.WAIT_CTL_CONN),
        (S.IDLE, I.RECV_SCCRP): Transition(A.STOP_FSM_ERROR, S.CLOSING),
        (S.IDLE, I.RECV_SCCCN): Transition(A.ABANDON, S.CLOSED),
        (S.IDLE, I.CLOSE): Transition(A.ABANDON, S.CLOSED),
        (S.WAIT_CTL_REPLY, I.RECV_SCCRP): Transition(A.ACCEPT_SCCRP, S.ESTABLISHED),
        # RFC 2661 4.4.3 "silently discard" (ends CLOSED at once); RFC 3931 7.2 "Clean up
        # losing connection" after 7.1's reliable delivery has run (the winner's StopCCN).
        (S.WAIT_CTL_REPLY, I.LOSE_TIE): Transition(A.DISCARD_LOSER, S.CLOSING),
        (S.WAIT_CTL_REPLY, I.RECV_SCCCN): Transition(A.STOP_FSM_ERROR, S.CLOSING),
        (S.WAIT_CTL_CONN, I.RECV_SCCCN): Transition(A.ACCEPT_SCCCN, S.ESTABLISHED),
        (S.WAIT_CTL_CONN, I.RECV_SCCRP): Transition(A.STOP_FSM_ERROR, S.CLOSING),
        (S.WAIT_CTL_CONN, I.RECV_SCCRQ): Transition(A.STOP_FSM_ERROR, S.CLOSING),
        (S.ESTABLISHED, I.RECV_SCCRQ): Transition(A.STOP_FSM_ERROR, S.CLOSING),
        (S.ESTABLISHED, I.RECV_SCCRP): Transition(A.STOP_FSM_ERROR, S.CLOSING),
        (S.ESTABLISHED, I.RECV_SCCCN): Transition(A.STOP_FSM_ERROR, S.CLOSING),
        (S.ESTABLISHED, I.RECV_SESSION): Transition(A.DISPATCH, S.ESTABLISHED),
    }
    for state in (S.WAIT_CTL_REPLY, S.WAIT_CTL_CONN, S.ESTABLISHED):
        t[state, I.CLOSE] = Transition(A.STOP, S.CLOSING)
    for state in _LIVE:
        # "idle, wait-ctl-reply, wait-ctl-conn, established: Receive StopCCN -> Clean up".
        t[state, I.RECV_STOPCCN] = Transition(A.PEER_STOPPED, S.CLOSING)
        # HELLO only resets the peer's idle timer, which the transport did (6.5).
        t[state, I.RECV_HELLO] = Transition(A.IGNORE, state)
        # 4.4.1: an unknown message type without the M bit may be ignored.
        t[state, I.RECV_UNKNOWN] = Transition(A.IGNORE, state)
        t[state, I.RECV_BAD] = Transition(A.STOP_BAD, S.CLOSING)
        t[state, I.TRANSPORT_FAILED] = Transition(A.FAIL, S.CLOSED)
        # Only reachable after begin_close; treated like a failure should it ever occur.
        t[state, I.TRANSPORT_CLOSED] = Transition(A.FAIL, S.CLOSED)
    for inp in TunnelInput:
        if inp is I.OPEN:
            continue
        # Close-wait: the transport still acknowledges; nothing else happens.
        t[S.CLOSING, inp] = Transition(A.IGNORE, S.CLOSING)
        t[S.CLOSED, inp] = Transition(A.IGNORE, S.CLOSED)
    t[S.CLOSING, I.TRANSPORT_CLOSED] = Transition(A.RELEASE, S.CLOSED)
    t[S.CLOSING, I.TRANSPORT_FAILED] = Transition(A.RELEASE, S.CLOSED)
    return t


TUNNEL_TABLE: dict[tuple[TunnelState, TunnelInput], Transition] = _build()
"""The whole machine. Pairs not listed: see :func:`lookup`."""


def lookup(state: TunnelState, inp: TunnelInput) -> Transition:
    """The transition for ``(state, inp)``, applying the module's default rules."""
    transition = TUNNEL_TABLE.get((state, inp))
    if transition is not None:
        return transition
    if inp in LOCAL_INPUTS:
        raise LocalProtocolError(f"cannot {inp.value} in tunnel state {state.value}")
    return Transition(TunnelAction.STOP_FSM_ERROR, TunnelState.CLOSING)


_MESSAGE_INPUTS: dict[int, TunnelInput] = {
    MessageType.SCCRQ: TunnelInput.RECV_SCCRQ,
    MessageType.SCCRP: TunnelInput.RECV_SCCRP,
    MessageType.SCCCN: TunnelInput.RECV_SCCCN,
    MessageType.STOPCCN: TunnelInput.RECV_STOPCCN,
    MessageType.HELLO: TunnelInput.RECV_HELLO,
}


def tunnel_input_for(message_type: int, *, session_message: bool) -> TunnelInput | None:
    """Map an IETF message type to its input; None for types unknown in this version."""
    if session_message:
        return TunnelInput.RECV_SESSION
    return _MESSAGE_INPUTS.get(message_type)
