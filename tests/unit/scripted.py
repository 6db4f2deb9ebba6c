"""One real sans-IO :class:`Tunnel` and a scripted L2TPv2 peer that talks to it on the wire.

The peer builds every message with the codec (:func:`serialize_message`), keeps its own
Ns/Nr like a real peer would, and decodes what the tunnel sends with :func:`parse_message`.
Time is a plain float that only :meth:`ScriptedPeer.run_timers` moves. The state-walk
tests use it to put a tunnel (and its sessions) in each state through the public API and
the wire only, then feed one input and record what the tunnel did.
"""

from __future__ import annotations

import random
from typing import Any

from l2tp.protocol.avp import Avp
from l2tp.protocol.avps import Accm, CallErrors, ProtocolVersion, ResultCode
from l2tp.protocol.constants import FramingBits, MessageType, StopCcnResult
from l2tp.protocol.events import (
    ControlEvent,
    Role,
    SessionClosed,
    TunnelClosed,
)
from l2tp.protocol.listener import TunnelListener
from l2tp.protocol.message import ControlMessage, parse_message, serialize_message
from l2tp.protocol.transport import TransportConfig
from l2tp.protocol.tunnel import Tunnel, TunnelConfig

LOCAL_ID = 7
"""Our Assigned Tunnel ID (the header Tunnel ID of everything the peer sends)."""
PEER_TUNNEL_ID = 4242
PEER_ADDRESS = "peer"
"""The peer's address, for a tunnel inside a :class:`TunnelListener`."""
PEER_SID = 777
"""The peer's Assigned Session ID for the one call it places or answers."""

QUIET = TransportConfig(ack_delay=0.0, hello_interval=None)
"""Immediate acknowledgements and no HELLO: a tunnel only sends what an input makes it send."""


def walk_config(role: Role, **kw: Any) -> TunnelConfig:
    """A tunnel whose setup never times out during a walk (the walk drives time itself)."""
    kw.setdefault("transport", QUIET)
    kw.setdefault("setup_timeout", 1000.0)
    return TunnelConfig(role=role, host_name="us", **kw)


def describe_message(message: ControlMessage) -> str:
    """``"SCCRP"``, or ``"STOPCCN/7"`` / ``"CDN/2/8"`` with the Result and Error Codes."""
    code = message.result_code
    if code is None:
        return message.name
    error = f"/{int(code.error)}" if code.error else ""
    return f"{message.name}/{int(code.result)}{error}"


def describe_event(event: ControlEvent) -> str:
    """The event's class name; closes add the Result/Error Code ("-" for none) and "/peer"."""
    name = type(event).__name__
    if isinstance(event, TunnelClosed | SessionClosed):
        reason = event.reason
        if reason is None:
            name += "/-"
        else:
            name += f"/{int(reason.result)}" + (f"/{int(reason.error)}" if reason.error else "")
        if event.by_peer:
            name += "/peer"
    return name


class ScriptedPeer:
    """The peer side of one :class:`Tunnel`; ``sent`` and ``events`` accumulate until taken.

    ``ScriptedPeer(config)`` makes a lone tunnel; ``ScriptedPeer(tunnel, listener)`` talks
    to a tunnel of a :class:`TunnelListener` (datagrams go in through the listener).
    """

    def __init__(
        self, tunnel: TunnelConfig | Tunnel, listener: TunnelListener | None = None
    ) -> None:
        if isinstance(tunnel, TunnelConfig):
            tunnel = Tunnel(tunnel, local_id=LOCAL_ID, random_bytes=random.Random(5).randbytes)
        self.tunnel = tunnel
        self.listener = listener
        self.now = 0.0
        self.ns = 0
        """The Ns of the next message we send."""
        self.nr = 0
        """The Ns we expect next from the tunnel (what our messages acknowledge)."""
        self.sent: list[tuple[int, ControlMessage]] = []
        """(header Session ID, message) of each new message the tunnel sent, in order."""
        self.events: list[ControlEvent] = []

    # ---------------------------------------------------------------- the wire

    def send(self, message: ControlMessage, *, session_id: int = 0) -> None:
        """Deliver one message in sequence (an SCCRQ goes to Tunnel ID 0, as on the wire)."""
        tunnel_id = 0 if message.message_type == MessageType.SCCRQ else self.tunnel.tunnel_id
        data = serialize_message(
            message, version=2, tunnel_id=tunnel_id, session_id=session_id, ns=self.ns, nr=self.nr
        )
        self.ns = (self.ns + 1) & 0xFFFF
        self._deliver(data)

    def _deliver(self, data: bytes) -> None:
        if self.listener is not None:
            self.listener.receive(data, PEER_ADDRESS, self.now)
        else:
            self.tunnel.receive_datagram(data, self.now)
        self.collect()

    def ack(self) -> None:
        """A ZLB acknowledging everything received so far."""
        data = serialize_message(
            None, version=2, tunnel_id=self.tunnel.tunnel_id, ns=self.ns, nr=self.nr
        )
        self._deliver(data)

    def collect(self) -> None:
        """Take what the tunnel sends (new messages only: not ZLBs or retransmissions)."""
        for data in self.tunnel.datagrams_to_send(self.now):
            header, message = parse_message(data)
            if message is not None and header.ns == self.nr:
                self.nr = (self.nr + 1) & 0xFFFF
                self.sent.append((header.session_id, message))
        self.events.extend(self.tunnel.events())

    def run_timers(self, until: float, *, acknowledge: bool) -> None:
        """Fire each of the tunnel's deadlines up to ``until``, as the event loop would.

        ``acknowledge``: the peer acknowledges every message (else it is silent).
        """
        self.collect()
        while (deadline := self.tunnel.get_timer()) is not None and deadline <= until:
            self.now = max(self.now, deadline)
            if self.listener is not None:
                self.listener.handle_timer(self.now)
            else:
                self.tunnel.handle_timer(self.now)
            self.collect()
            if acknowledge and self.tunnel.unacknowledged:
                self.ack()
        self.now = max(self.now, until)

    def acknowledge_all(self) -> None:
        """Acknowledge until the tunnel has nothing left in flight or held back by its window."""
        self.collect()
        for _ in range(8):
            if not self.tunnel.unacknowledged:
                return
            self.ack()

    def take(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """What the tunnel sent and reported since the last call, described; then forget it."""
        self.collect()
        sent = tuple(describe_message(m) for _, m in self.sent)
        events = tuple(describe_event(e) for e in self.events)
        self.sent.clear()
        self.events.clear()
        return sent, events

    def last_sent(self, name: str) -> tuple[int, ControlMessage]:
        """The last message of that name the tunnel sent (header Session ID, message)."""
        return next((sid, m) for sid, m in reversed(self.sent) if m.name == name)

    # ---------------------------------------------------------------- messages

    @staticmethod
    def scc(
        message_type: MessageType, *extra: Avp, tunnel_id: int = PEER_TUNNEL_ID
    ) -> ControlMessage:
        """An acceptable SCCRQ or SCCRP from the peer (RFC 2661 6.1, 6.2)."""
        return ControlMessage.of(
            message_type,
            *extra,
            protocol_version=ProtocolVersion(version=1, revision=0),
            host_name="peer",
            framing_capabilities=FramingBits.SYNC | FramingBits.ASYNC,
            assigned_tunnel_id=tunnel_id,
            receive_window_size=8,
        )

    @staticmethod
    def stopccn(result: int = StopCcnResult.GENERAL_REQUEST) -> ControlMessage:
        return ControlMessage.of(
            MessageType.STOPCCN,
            assigned_tunnel_id=PEER_TUNNEL_ID,
            result_code=ResultCode(result=result),
        )

    # ------------------------------------------------------------- tunnel setup

    def accept_sccrq(self) -> None:
        """The peer initiates: our tunnel answers its SCCRQ (wait-ctl-conn)."""
        self.send(self.scc(MessageType.SCCRQ))

    def establish(self) -> None:
        """The peer initiates and confirms: SCCRQ, our SCCRP, SCCCN (established)."""
        self.accept_sccrq()
        self.send(ControlMessage(message_type=MessageType.SCCCN))


def session_messages() -> dict[str, ControlMessage]:
    """One acceptable message of each session type from the peer, built with the codec."""
    sync = FramingBits.SYNC
    return {
        "ICRQ": ControlMessage.of(
            MessageType.ICRQ, assigned_session_id=PEER_SID, call_serial_number=9
        ),
        "ICRP": ControlMessage.of(MessageType.ICRP, assigned_session_id=PEER_SID),
        "ICCN": ControlMessage.of(MessageType.ICCN, tx_connect_speed=1000, framing_type=sync),
        "OCRQ": ControlMessage.of(
            MessageType.OCRQ,
            assigned_session_id=PEER_SID,
            call_serial_number=9,
            minimum_bps=0,
            maximum_bps=10,
            bearer_type=0,
            framing_type=sync,
            called_number="123",
        ),
        "OCRP": ControlMessage.of(MessageType.OCRP, assigned_session_id=PEER_SID),
        "OCCN": ControlMessage.of(MessageType.OCCN, tx_connect_speed=2000, framing_type=sync),
        "CDN": ControlMessage.of(
            MessageType.CDN, result_code=ResultCode(result=3), assigned_session_id=PEER_SID
        ),
        "WEN": ControlMessage.of(MessageType.WEN, call_errors=CallErrors(crc_errors=1)),
        "SLI": ControlMessage.of(MessageType.SLI, accm=Accm(send=1, receive=2)),
    }
