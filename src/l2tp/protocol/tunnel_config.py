"""Tunnel configuration, counters and the v2/v3 version profiles (split from :mod:`.tunnel`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .avps import ProtocolVersion
from .constants import AvpType, BearerBits, FramingBits
from .events import NO_BEARER, CallParams, Role
from .transport import TransportConfig

PROTOCOL_VERSION = ProtocolVersion(version=1, revision=0)
"""RFC 2661 4.4.3: L2TPv2 says "version 1, revision 0" in its Protocol Version AVP."""


HIDE_WHEN_ENABLED = frozenset(
    {
        AvpType.CHALLENGE,
        AvpType.CHALLENGE_RESPONSE,
        AvpType.ASSIGNED_SESSION_ID,
        AvpType.CALL_SERIAL_NUMBER,
        AvpType.CALLING_NUMBER,
        AvpType.CALLED_NUMBER,
        AvpType.SUB_ADDRESS,
        AvpType.TX_CONNECT_SPEED,
        AvpType.RX_CONNECT_SPEED,
        AvpType.FRAMING_TYPE,
        AvpType.BEARER_TYPE,
        AvpType.MINIMUM_BPS,
        AvpType.MAXIMUM_BPS,
        AvpType.PHYSICAL_CHANNEL_ID,
    }
)
"""AVPs we hide when the tunnel has a secret and hiding is enabled (RFC 2661 4.3).

Only AVPs the RFC says "may be hidden" and that say something about the user
or the call; the Assigned Tunnel ID stays visible so that a listener with
several secrets can still demultiplex an SCCRQ before it knows which to use.
"""


@dataclass(frozen=True, slots=True)
class VersionProfile:
    """What differs between L2TPv2 and L2TPv3 control connections (RFC 3931 5.4.3, 5.4.4).

    The v3 messages themselves are built in :mod:`.v3`.
    """

    version: int
    id_bits: int
    tunnel_id_avp: AvpType
    session_ids_in_header: bool


VERSION_PROFILES = {
    2: VersionProfile(2, 16, AvpType.ASSIGNED_TUNNEL_ID, True),
    3: VersionProfile(3, 32, AvpType.ASSIGNED_CONTROL_CONNECTION_ID, False),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class TunnelConfig:
    """Local policy for one tunnel (and, through the listener, for every accepted tunnel).

    ``secret`` enables tunnel authentication (RFC 2661 5.1.1) when
    ``challenge`` is set, and AVP hiding (4.3) when ``hide_avps`` is set.
    ``transport`` holds the timers, our Receive Window Size and the HELLO
    interval. ``auto_accept`` answers ICRQ (LNS) and OCRQ (LAC) at once;
    otherwise :class:`~.events.CallRequested` is reported and the daemon calls
    :meth:`Tunnel.accept_call` or :meth:`Tunnel.close_session`.
    """

    role: Role = Role.LNS
    version: int = 2
    host_name: str = "python-l2tp"
    vendor_name: str | None = "python-l2tp"
    firmware_revision: int | None = None
    secret: bytes | None = None
    challenge: bool = True
    hide_avps: bool = False
    framing_capabilities: FramingBits = FramingBits.SYNC | FramingBits.ASYNC
    bearer_capabilities: BearerBits = NO_BEARER
    tie_breaker: bool = False
    """Send a Tie Breaker AVP in our SCCRQ (RFC 2661 4.4.3): one tunnel per peer pair."""
    max_sessions: int = 0xFFFF
    auto_accept: bool = True
    call_params: CallParams = field(default_factory=CallParams)
    """Used to answer calls (OCCN speeds, framing) and as the default for calls we place."""
    transport: TransportConfig = field(default_factory=lambda: TransportConfig(hello_interval=60.0))
    router_id: int = 1
    """L2TPv3 Router ID AVP (RFC 3931 5.4.3), e.g. an IPv4 address as a number."""
    pseudowire_capabilities: tuple[int, ...] = (0x0005, 0x0004)
    """L2TPv3 pseudowire types we accept (default Ethernet, Ethernet VLAN)."""
    digest_type: int | None = None
    """L2TPv3: with ``secret``, Control Message Authentication with this Digest Type
    (0 HMAC-MD5, 1 HMAC-SHA-1; RFC 3931 4.3, 5.4.1). None: no authentication."""
    setup_timeout: float = 60.0
    """Longest stay in wait-ctl-reply / wait-ctl-conn. The transport only notices a
    peer that stops *acknowledging*; one that acknowledges our SCCRQ/SCCRP but never
    answers would hold the tunnel forever, so it gets a StopCCN (General error)."""

    def __post_init__(self) -> None:
        if self.version not in VERSION_PROFILES:
            raise ValueError(f"L2TP version must be 2 or 3, not {self.version}")
        if not self.host_name:
            raise ValueError("host_name must not be empty (RFC 2661 4.4.3)")
        if self.hide_avps and not self.secret:
            raise ValueError("hide_avps needs a secret (RFC 2661 4.3)")
        if not 1 <= self.max_sessions <= 0xFFFF:
            raise ValueError("max_sessions must be 1-65535")
        if not self.setup_timeout > 0:
            raise ValueError("setup_timeout must be positive")
        if self.firmware_revision is not None and not 0 <= self.firmware_revision <= 0xFFFF:
            raise ValueError("firmware_revision is a 16-bit number")
        if self.digest_type is not None:
            if self.version != 3 or not self.secret:
                raise ValueError("digest_type needs version=3 and a secret (RFC 3931 4.3)")
            if self.digest_type not in (0, 1):
                raise ValueError("digest_type must be 0 (HMAC-MD5) or 1 (HMAC-SHA-1)")
        if not 0 <= self.router_id <= 0xFFFFFFFF:
            raise ValueError("router_id is a 32-bit number")


@dataclass(slots=True)
class TunnelCounters:
    """Peer faults and their outcome; monotonic."""

    messages: int = 0
    """Control messages (not ZLBs) handed up by the transport."""
    undecodable: int = 0
    invalid: int = 0
    """Messages missing a required AVP."""
    unknown_mandatory: int = 0
    unknown_ignored: int = 0
    fsm_errors: int = 0
    auth_failures: int = 0
    bad_digest: int = 0
    """L2TPv3 datagrams dropped before the transport: Message Digest missing or wrong."""
    sends_dropped: int = 0
    """Messages not sent because the transport was already closing."""
    setup_timeouts: int = 0
    """Setups abandoned after :attr:`TunnelConfig.setup_timeout`."""
    by_type: dict[int, int] = field(default_factory=dict)
    """Control messages by Message Type: key ``t`` received (handed up by the transport
    and decoded; unknown types included), key ``-t`` sent (queued, retransmissions not
    counted: :attr:`TransportCounters.retransmitted`; HELLOs the transport sends on its
    own are :attr:`TransportCounters.hello_sent`). One small dict rather than two: a
    half-open tunnel must stay cheap. Read it through :attr:`received_by_type` and
    :attr:`sent_by_type`."""

    @property
    def received_by_type(self) -> dict[int, int]:
        return {t: n for t, n in self.by_type.items() if t >= 0}

    @property
    def sent_by_type(self) -> dict[int, int]:
        return {-t: n for t, n in self.by_type.items() if t < 0}
