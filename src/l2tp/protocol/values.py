"""Values that describe control connections and calls: roles, call kinds, Result Codes,
call parameters, what a peer told us about itself and about a call.

They are what the events of :mod:`.events` carry and what the API takes, not events
themselves (``events`` re-exports them for code written before they moved here).
"""

from __future__ import annotations

from dataclasses import dataclass

from .avps import ResultCode
from .constants import BearerBits, FramingBits, KeyEnum


class Role(KeyEnum):
    """Which end of the tunnel we are, for the direction of calls (RFC 2661 section 1.2).

    The LAC sends ICRQ (incoming calls, 7.4.1) and answers OCRQ (7.5.1); the
    LNS answers ICRQ (7.4.2) and sends OCRQ (7.5.2). Control connection setup
    does not depend on it (7.2: originator and receiver, not LAC and LNS).
    """

    LAC = "lac"
    LNS = "lns"


class CallKind(KeyEnum):
    """One per RFC 2661 session state table."""

    LAC_INCOMING = "lac-incoming"
    """7.4.1: we sent the ICRQ."""
    LNS_INCOMING = "lns-incoming"
    """7.4.2: we received the ICRQ."""
    LAC_OUTGOING = "lac-outgoing"
    """7.5.1: we received the OCRQ."""
    LNS_OUTGOING = "lns-outgoing"
    """7.5.2: we sent the OCRQ."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reason:
    """A Result Code with its optional Error Code and Error Message (RFC 2661 4.4.2).

    Used both for what we send (StopCCN / CDN) and for what the peer told us.
    """

    result: int
    error: int | None = None
    message: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.result <= 0xFFFF:
            raise ValueError(f"result code {self.result} out of range")
        if self.error is not None and not 0 <= self.error <= 0xFFFF:
            raise ValueError(f"error code {self.error} out of range")

    def __str__(self) -> str:
        """For log lines: ``result 6, error 0: closed by operator`` (not the repr)."""
        text = f"result {int(self.result)}"
        if self.error is not None:
            text += f", error {int(self.error)}"
        return f"{text}: {self.message}" if self.message else text

    def to_avp_value(self) -> ResultCode:
        return ResultCode(result=self.result, error=self.error, message=self.message or None)

    @classmethod
    def from_avp_value(cls, value: ResultCode | None) -> Reason | None:
        if value is None:
            return None
        return cls(result=value.result, error=value.error, message=value.message or "")


_U32 = 0xFFFFFFFF
NO_FRAMING = FramingBits(0)
NO_BEARER = BearerBits(0)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallParams:
    """Parameters of a call we place (ICRQ/ICCN, OCRQ) or answer (OCCN); RFC 2661 4.4.4-5.

    Defaults suit a software LAC/LNS: synchronous framing, no bearer, 100 Mbit/s.
    """

    call_serial: int | None = None
    """None: the tunnel's next serial number."""
    bearer_type: BearerBits | None = None
    framing_type: FramingBits = FramingBits.SYNC
    tx_connect_speed: int = 100_000_000
    rx_connect_speed: int | None = None
    minimum_bps: int = 0
    maximum_bps: int = 100_000_000
    calling_number: str | None = None
    called_number: str | None = None
    sub_address: str | None = None
    physical_channel_id: int | None = None
    sequencing_required: bool = False
    # L2TPv3 (RFC 3931 5.4.4); ignored by L2TPv2 sessions.
    pseudowire_type: int = 0x0005
    """Pseudowire Type AVP of the ICRQ we send (default Ethernet, RFC 4719)."""
    cookie_length: int = 0
    """0, 4 or 8: size of the random Assigned Cookie we draw for each session."""
    l2_specific_sublayer: int | None = None
    data_sequencing: int | None = None
    """Data Sequencing AVP: what we require the peer to sequence (RFC 3931 5.4.4)."""
    remote_end_id: str = "python-l2tp"
    """Remote End ID AVP of the ICRQ/OCRQ: names the circuit at the peer (RFC 3931 5.4.4)."""
    outgoing: bool | None = None
    """Place an outgoing call (OCRQ/OCRP/OCCN, RFC 3931 3.4.2 and 7.4) rather than an
    incoming one (ICRQ/ICRP/ICCN, 3.4.1 and 7.3). None: the version's default, an
    incoming call on L2TPv3, where either LCCE may send either request; on L2TPv2 the
    tunnel's role decides (a LAC sends ICRQ, an LNS OCRQ, RFC 2661 7.4-7.5) and a
    contrary True/False is refused with :class:`~.errors.LocalProtocolError`."""
    wait_data_plane: bool = False
    """An incoming call holds its next message until the local data plane is ready: one
    we place (ICRQ) its ICCN, after the ICRP; one we answer (``accept_call`` with these
    parameters) its ICRP. The session reports :class:`~.events.DataPlaneWanted` and waits
    in wait-data-plane for :meth:`~.tunnel.Tunnel.data_plane_ready` (see
    :mod:`.session_fsm`). Never sent to the peer; outgoing calls ignore it."""
    circuit_active: bool = True
    """L2TPv3 Circuit Status we advertise in the ICRQ/ICRP/OCRQ/OCRP (RFC 3931 5.4.5):
    False creates the session with the circuit not yet ready to pass traffic."""

    def __post_init__(self) -> None:
        if self.cookie_length not in (0, 4, 8):
            raise ValueError("cookie_length must be 0, 4 or 8 (RFC 3931 5.4.4)")
        if not 0 <= self.pseudowire_type <= 0xFFFF:
            raise ValueError("pseudowire_type is a 16-bit number")
        for name in ("tx_connect_speed", "minimum_bps", "maximum_bps"):
            if not 0 <= getattr(self, name) <= _U32:
                raise ValueError(f"{name} must fit in 32 bits")
        for name in ("call_serial", "rx_connect_speed", "physical_channel_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= _U32:
                raise ValueError(f"{name} must fit in 32 bits")
        if self.minimum_bps > self.maximum_bps:
            raise ValueError("minimum_bps exceeds maximum_bps")


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerInfo:
    """What the peer told us about itself in its SCCRQ or SCCRP (RFC 2661 4.4.3)."""

    tunnel_id: int
    host_name: str
    protocol_version: tuple[int, int] = (1, 0)
    framing_capabilities: FramingBits = NO_FRAMING
    bearer_capabilities: BearerBits = NO_BEARER
    receive_window: int = 4
    """The peer's Receive Window Size AVP, 4 when absent (RFC 2661 5.8)."""
    vendor_name: str | None = None
    firmware_revision: int | None = None
    router_id: int | None = None
    """L2TPv3 Router ID AVP (RFC 3931 5.4.3)."""
    pseudowire_capabilities: tuple[int, ...] = ()
    """L2TPv3 Pseudowire Capabilities List (RFC 3931 5.4.3)."""

    def __post_init__(self) -> None:
        if not 1 <= self.tunnel_id <= 0xFFFFFFFF:
            raise ValueError("the peer's tunnel ID must be non-zero")
        if not 1 <= self.receive_window <= 0xFFFF:
            raise ValueError("receive window must be 1-65535")


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionInfo:
    """A session's identity and the call parameters exchanged for it (RFC 2661 4.4.4-4.4.5)."""

    tunnel_id: int
    peer_tunnel_id: int
    session_id: int
    peer_session_id: int
    kind: CallKind
    call_serial: int
    bearer_type: BearerBits | None = None
    framing_type: FramingBits | None = None
    tx_connect_speed: int | None = None
    rx_connect_speed: int | None = None
    minimum_bps: int | None = None
    maximum_bps: int | None = None
    calling_number: str | None = None
    called_number: str | None = None
    sub_address: str | None = None
    physical_channel_id: int | None = None
    sequencing_required: bool = False
    """The peer asked for sequence numbers on the data channel (RFC 2661 5.4)."""
    # L2TPv3 (RFC 3931 5.4.4): what the data plane needs to create the kernel session.
    pseudowire_type: int | None = None
    cookie: bytes = b""
    """Our Assigned Cookie: the peer puts it on every data packet it sends us."""
    peer_cookie: bytes = b""
    """The peer's Assigned Cookie: we put it on every data packet we send."""
    l2_specific_sublayer: int | None = None
    """The peer's L2-Specific Sublayer AVP: the sublayer it requires on what we send."""
    data_sequencing: int | None = None
    """The peer's Data Sequencing AVP: how we must sequence what we send."""
    remote_end_id: str | None = None
    """The call's Remote End ID AVP (RFC 3931 5.4.4), the one we sent or received."""
    circuit_active: bool | None = None
    """The A bit of the peer's latest Circuit Status AVP (RFC 3931 5.4.5), None before
    any. While False, no data may be sent towards the peer."""

    def __post_init__(self) -> None:
        if not 1 <= self.session_id <= 0xFFFFFFFF:
            raise ValueError("the local session ID must be non-zero")
        if not 0 <= self.peer_session_id <= 0xFFFFFFFF:
            raise ValueError("peer session ID out of range")
