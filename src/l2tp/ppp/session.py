"""One PPP connection over one L2TP session: the sans-IO facade (:class:`PppConnection`).

It runs the phases of RFC 1661 section 3.2 (Dead, Establish, Authenticate,
Network, Terminate) over LCP, one authentication protocol and the NCPs, and
has the aioquic-style interface of the rest of the project::

    conn = PppConnection(config, random_bytes=os.urandom, authenticator=verifier)
    conn.open(now)                                  # the L2TP session is up
    conn.receive_frame(frame, now)                  # a frame from the channel fd
    for frame in conn.frames_to_send(now): os.write(channel_fd, frame)
    deadline = conn.get_timer(); conn.handle_timer(now)
    while (event := conn.next_event()) is not None: ...

The lower layer of LCP is the L2TP session itself, so :meth:`PppConnection.open`
signals both Open and Up. Time only enters as ``now``, randomness only through
``random_bytes``, and nothing the peer sends can raise out of
:meth:`PppConnection.receive_frame`: it ends up in :attr:`PppConnection.counters`,
a Code-Reject or a Protocol-Reject.

The first Configure-Request (``connect_delay``). Over L2TP the two ends start their PPP
at different moments: the LAC when it has sent its ICCN, the LNS when it has processed
it and created its kernel session; a frame that reaches a kernel with no session (or no
PPPoL2TP socket) yet is dropped. A first Configure-Request sent at once by the LAC was
therefore usually lost, and LCP waited out the 3 s restart timer (RFC 1661 4.6). With
``connect_delay`` the Up event (4.3) is held back until the other end's first LCP packet
arrives, or the delay ends: pppd's ``connect-delay`` (lcp.c's "delayed up", default 1 s
for a link that has just been connected). If the delay ended before the other end said
anything, our request may have gone nowhere, so when the other end's first
Configure-Request then arrives while ours is still unanswered (Req-Sent), ours is sent
again at once, before our reply (:meth:`ControlProtocol.retransmit_request`, a restart
timeout cut short, which 4.6 allows).

``passive``: after Max-Configure unanswered requests LCP stays in Stopped (4.2, the "p"
option) and a later Configure-Request from the other end starts the negotiation again,
instead of ending the link (pppd's ``passive``).

Packet discipline by phase (RFC 1661 3.4-3.5): before LCP is Opened only LCP
is processed; during authentication only LCP and the negotiated
authentication protocol; NCP packets before the network phase are discarded.
Once LCP is Opened any protocol we do not run gets a Protocol-Reject (5.7),
except IPv4/IPv6 datagrams, which belong to the kernel's unit and are only
counted here.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from ipaddress import IPv4Address

from ..protocol.errors import CodecError, LocalProtocolError
from .auth.base import AuthDecision, Authenticator, AuthRequest
from .auth.chap import ChapAuthenticator, ChapPeer
from .auth.pap import PapAuthenticator, PapPeer
from .codec import parse_frame, parse_packet, serialize_frame
from .config import PppConfig
from .constants import AuthMethod, Code, Protocol, RandomSource
from .cp import ControlProtocol
from .events import (
    AuthFailed,
    AuthRequested,
    AuthSucceeded,
    EchoFailed,
    LinkDown,
    LinkUp,
    NetworkDown,
    NetworkFailed,
    NetworkPhase,
    NetworkUp,
    Phase,
    PppEvent,
    Role,
    Terminated,
)
from .fsm import State
from .ipcp import IpcpOptions
from .ipv6cp import Ipv6cpOptions
from .lcp import Lcp, LcpOptions

AuthProtocol = PapAuthenticator | PapPeer | ChapAuthenticator | ChapPeer

_DATA_PROTOCOL = {Protocol.IPCP: Protocol.IPV4, Protocol.IPV6CP: Protocol.IPV6}
_DEAD_NCP_STATES = frozenset({State.INITIAL, State.STARTING, State.CLOSED, State.STOPPED})


@dataclass(slots=True)
class PppCounters:
    """Frames in and out, and why received ones were not processed."""

    frames_in: int = 0
    frames_out: int = 0
    malformed: int = 0
    """Frames or packets that do not parse (RFC 1661 2 and 5: silently discarded)."""
    out_of_phase: int = 0
    """Packets of a protocol not admitted in the current phase (RFC 1661 3.4-3.5)."""
    data_frames: int = 0
    """IPv4/IPv6 datagrams that reached the control channel instead of the unit."""
    protocol_rejects_sent: int = 0
    not_running: int = 0
    """Frames received before :meth:`PppConnection.open` or after :class:`Terminated`."""


class PppConnection:
    """LCP, authentication and NCPs of one link, for one :class:`~.events.Role`."""

    def __init__(
        self,
        config: PppConfig,
        *,
        random_bytes: RandomSource,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.config = config
        self._random = random_bytes
        self._authenticator = authenticator
        self.counters = PppCounters()
        self.phase = Phase.DEAD
        self.user: str | None = None
        """The authenticated name, once authentication succeeded."""
        self._events: deque[PppEvent] = deque()
        self._out: list[bytes] = []
        self._started = False
        self._finished = False
        self._adapter = _Adapter(self)
        options = LcpOptions(
            random_bytes=random_bytes,
            mru=config.mru,
            request_auth=config.requested_auth,
            accept_auth=config.accepted_auth,
        )
        self.lcp = Lcp(
            options,
            self._adapter,
            self._send,
            config.restart,
            on_protocol_reject=self._protocol_rejected,
            on_echo_failure=self._echo_failed,
            echo_interval=config.echo_interval,
            echo_failure=config.echo_failure,
        )
        self.auth: AuthProtocol | None = None
        self.ncps: dict[Protocol, ControlProtocol] = {}
        """The NCPs of the current network phase, by control protocol number."""
        self._ncps_up: set[Protocol] = set()
        self._ncps_ever_up: set[Protocol] = set()
        self._auth_deadline: float | None = None
        self._auth_request: AuthRequest | None = None
        self._decision: AuthDecision | None = None
        self._up_deadline: float | None = None
        """While LCP's Up is held back (``connect_delay``): when it is given anyway."""
        self._blind = False
        """Our Configure-Request went out before the other end had sent us anything."""

    # ------------------------------------------------------------- public API

    def open(self, now: float) -> None:
        """Start: the L2TP session below is up, so LCP gets Open and Up (RFC 1661 4.3)."""
        if self._started:
            raise LocalProtocolError("the PPP connection was already opened")
        self._started = True
        self.phase = Phase.ESTABLISH
        self.lcp.open(now)
        if self.config.connect_delay:
            self._up_deadline = now + self.config.connect_delay
        else:
            self.lcp.up(now)

    def close(self, now: float, reason: str = "administrative close") -> None:
        """End the link: Terminate-Request carrying ``reason`` (RFC 1661 5.5)."""
        if self._finished:
            return
        if not self._started:
            self._started = True
            self._terminate(False, reason)
            return
        waiting = self.lcp.state is State.STOPPED  # passive: no link to terminate
        self.lcp.close(now, reason)
        if waiting and not self._finished:
            # As pppd's lcp_close: Close in Stopped goes to Closed without tlf (RFC 1661
            # 4.1), yet nothing is left to wait for.
            self._terminate(False, reason)

    def receive_frame(self, frame: bytes, now: float) -> None:
        """Process one frame read from the channel; never raises on what the peer sent."""
        self.counters.frames_in += 1
        if self._finished or not self._started:
            self.counters.not_running += 1
            return
        try:
            protocol, information = parse_frame(frame)
            self._dispatch(protocol, information, now)
        except CodecError:
            self.counters.malformed += 1

    def frames_to_send(self, now: float) -> list[bytes]:
        """Frames to write to the channel, in order; the list is handed over, not copied."""
        frames, self._out = self._out, []
        return frames

    def next_event(self) -> PppEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """The earliest moment :meth:`handle_timer` has something to do, or None."""
        if self._finished:
            return None
        deadlines = [self.lcp.get_timer(), self._auth_deadline, self._up_deadline]
        deadlines += [ncp.get_timer() for ncp in self.ncps.values()]
        if self.auth is not None:
            deadlines.append(self.auth.get_timer())
        return min((d for d in deadlines if d is not None), default=None)

    def handle_timer(self, now: float) -> None:
        if self._finished:
            return
        if self._up_deadline is not None and now >= self._up_deadline:
            # The other end said nothing within connect_delay: start without it.
            self._up_deadline = None
            self._blind = True
            self.lcp.up(now)
        self.lcp.handle_timer(now)
        if self.auth is not None:
            self.auth.handle_timer(now)
        if self._auth_deadline is not None and now >= self._auth_deadline:
            self._auth_deadline = None
            method = self.auth.method if self.auth is not None else None
            self._auth_failed(method, self._auth_user(), "authentication timed out", now)
        for ncp in list(self.ncps.values()):
            if self.ncps.get(Protocol(ncp.protocol)) is ncp:
                ncp.handle_timer(now)

    def auth_result(self, request: AuthRequest, decision: AuthDecision, now: float) -> None:
        """Deliver the verifier's decision on ``request`` (from :class:`AuthRequested`).

        A decision for a request that is no longer pending (the link went down,
        or the peer started over) is ignored: verifiers may answer late.
        """
        if self.config.role is not Role.AUTHENTICATOR:
            raise LocalProtocolError("only the authenticator role receives auth results")
        if self._finished or request is not self._auth_request:
            return
        self._apply_decision(decision, now)

    @property
    def terminated(self) -> bool:
        return self._finished

    # ---------------------------------------------------------------- receive

    def _dispatch(self, protocol: int, information: bytes, now: float) -> None:
        if protocol == Protocol.LCP:
            packet = parse_packet(information)
            if self._up_deadline is not None:
                # The other end is listening: Up now (irc, scr), then its packet.
                self._up_deadline = None
                self.lcp.up(now)
            elif self._blind and packet.code == Code.CONFIGURE_REQUEST:
                self.lcp.retransmit_request(now)
            self._blind = False
            self.lcp.receive(packet, now)
            return
        if not self.lcp.is_opened:
            self.counters.out_of_phase += 1  # RFC 1661 3.4: only LCP until Opened
            return
        if protocol in (Protocol.PAP, Protocol.CHAP):
            auth_protocol = None if self.auth is None else _auth_protocol(self.auth.method)
            if auth_protocol == protocol and self.auth is not None:
                self.auth.receive(parse_packet(information), now)
            else:
                self.counters.out_of_phase += 1
            return
        if protocol in (Protocol.IPCP, Protocol.IPV6CP):
            enabled = self.config.ipv4 if protocol == Protocol.IPCP else self.config.ipv6
            if not enabled:
                self._reject_protocol(protocol, information)
                return
            ncp = self.ncps.get(Protocol(protocol))
            if self.phase is not Phase.NETWORK or ncp is None:
                self.counters.out_of_phase += 1  # RFC 1661 3.5: NCPs after authentication
                return
            ncp.receive(parse_packet(information), now)
            return
        if protocol in (Protocol.IPV4, Protocol.IPV6):
            self.counters.data_frames += 1
            return
        self._reject_protocol(protocol, information)

    def _reject_protocol(self, protocol: int, information: bytes) -> None:
        self.counters.protocol_rejects_sent += 1
        self.lcp.send_protocol_reject(protocol, information)

    def _send(self, protocol: int, packet: bytes) -> None:
        self.counters.frames_out += 1
        self._out.append(serialize_frame(protocol, packet))

    # ------------------------------------------------------------ LCP layer

    def _lcp_up(self, now: float) -> None:
        options = self.lcp.options
        for cp in (self.lcp, *self.ncps.values()):
            cp.peer_mru = options.peer_mru
        method = options.auth_required or options.auth_to_perform
        self._events.append(LinkUp(mtu=options.peer_mru, mru=options.local_mru, auth=method))
        self.lcp.start_keepalive(now)
        if options.auth_refused:
            # RFC 1661 6.2 leaves no way to force it: the peer Rejected or Nak'd
            # every method we demand, so the link must not come up.
            self._auth_failed(None, None, "peer refused to authenticate", now)
            return
        if method is None:
            self._network_phase(now)
            return
        self.phase = Phase.AUTHENTICATE
        timeout = self.config.auth_timeout
        self._auth_deadline = None if timeout is None else now + timeout
        self.auth = self._make_auth(method, options.auth_required is not None)
        self.auth.start(now)

    def _make_auth(self, method: AuthMethod, authenticator: bool) -> AuthProtocol:
        cfg = self.config
        if authenticator:
            if method is AuthMethod.PAP:
                return PapAuthenticator(self._send, self._adapter)
            return ChapAuthenticator(
                method,
                self._send,
                self._adapter,
                random_bytes=self._random,
                name=cfg.hostname,
                restart=cfg.auth_restart,
                max_challenges=cfg.auth_max_transmits,
                rechallenge=cfg.chap_rechallenge,
            )
        assert cfg.username is not None and cfg.password is not None
        if method is AuthMethod.PAP:
            return PapPeer(
                self._send,
                self._adapter,
                user=cfg.username,
                password=cfg.password,
                restart=cfg.auth_restart,
                max_requests=cfg.auth_max_transmits,
            )
        return ChapPeer(
            method,
            self._send,
            self._adapter,
            random_bytes=self._random,
            user=cfg.username,
            password=cfg.password,
            restart=cfg.auth_restart,
            max_responses=cfg.auth_max_transmits,
        )

    def _lcp_down(self, now: float) -> None:
        self.lcp.stop_keepalive()
        reason = self.lcp.terminate_reason or "LCP renegotiation"
        for protocol, ncp in list(self.ncps.items()):
            if ncp.state is State.OPENED:
                ncp.terminate_reason = reason
                ncp.down(now)
            del self.ncps[protocol]
        self.auth = None
        self._auth_deadline = None
        self._auth_request = None
        restarting = self.lcp.state in (State.REQ_SENT, State.ACK_SENT)
        self.phase = Phase.ESTABLISH if restarting else Phase.TERMINATE
        self._events.append(LinkDown(reason=reason, by_peer=self.lcp.terminated_by_peer))

    def _lcp_finished(self, now: float) -> None:
        if self.config.passive and self.lcp.gave_up:
            # pppd's passive: stay in Stopped; the other end's Configure-Request restarts.
            self.phase = Phase.ESTABLISH
            self._blind = False
            return
        reason = self.lcp.terminate_reason or "LCP negotiation failed"
        self._terminate(self.lcp.terminated_by_peer, reason)

    def _terminate(self, by_peer: bool, reason: str) -> None:
        self.phase = Phase.DEAD
        self._finished = True
        self.ncps.clear()
        self.auth = None
        self._auth_deadline = None
        self._events.append(Terminated(by_peer=by_peer, reason=reason))

    def _protocol_rejected(self, protocol: int, now: float) -> None:
        ncp = self.ncps.get(Protocol(protocol)) if protocol in _DATA_PROTOCOL else None
        if ncp is not None:
            # RFC 1661 5.7: stop using it; the other NCPs carry on.
            ncp.terminate_reason = "Protocol-Reject from peer"
            if ncp.state not in (State.INITIAL, State.STARTING):
                ncp.down(now)
            ncp.close(now, "Protocol-Reject from peer")
            self._check_network(now)
        elif self.auth is not None and protocol == _auth_protocol(self.auth.method):
            reason = "peer rejected the authentication protocol"
            self._auth_failed(self.auth.method, self._auth_user(), reason, now)

    def _echo_failed(self, now: float) -> None:
        self._events.append(EchoFailed(unanswered=self.lcp.echos_pending))
        # The peer is gone: no Terminate-Request exchange, Down then Close.
        self.lcp.terminate_reason = "peer not responding to LCP Echo-Request"
        self.lcp.down(now)
        self.lcp.close(now, self.lcp.terminate_reason)

    # --------------------------------------------------------- authentication

    def _auth_user(self) -> str | None:
        return self.auth.user if self.auth is not None else None

    def _auth_requested(self, request: AuthRequest, now: float) -> None:
        self._auth_request = request
        decision = None
        if self._authenticator is not None:
            decision = self._authenticator.authenticate(request)
        if decision is None:
            self._events.append(
                AuthRequested(method=request.method, user=request.user, request=request)
            )
            return
        self._apply_decision(decision, now)

    def _apply_decision(self, decision: AuthDecision, now: float) -> None:
        self._auth_request = None
        if isinstance(self.auth, PapAuthenticator | ChapAuthenticator):
            self._decision = decision
            self.auth.decide(decision, now)

    def _auth_done(
        self, method: AuthMethod, success: bool, user: str | None, reason: str, now: float
    ) -> None:
        if not success:
            self._auth_failed(method, user, reason, now)
            return
        if self.phase is not Phase.AUTHENTICATE:
            return
        self._auth_deadline = None
        self.user = user
        self._events.append(AuthSucceeded(method=method, user=user))
        self._network_phase(now)

    def _auth_failed(
        self, method: AuthMethod | None, user: str | None, reason: str, now: float
    ) -> None:
        self._auth_deadline = None
        self._events.append(AuthFailed(method=method, user=user, reason=reason))
        self.lcp.close(now, "authentication failed")

    # ---------------------------------------------------------------- network

    def _network_phase(self, now: float) -> None:
        cfg = self.config
        self.phase = Phase.NETWORK
        options = self.lcp.options
        self._events.append(
            NetworkPhase(user=self.user, mtu=options.peer_mru, mru=options.local_mru)
        )
        if cfg.ipv4:
            handler = IpcpOptions(
                local=cfg.ipv4_local,
                peer=self._peer_address(),
                dns=self._dns(),
                request_dns=cfg.request_dns,
            )
            self._start_ncp(
                ControlProtocol(
                    Protocol.IPCP, "IPCP", handler, self._adapter, self._send, cfg.restart
                ),
                now,
            )
        if cfg.ipv6:
            v6 = Ipv6cpOptions(
                random_bytes=self._random,
                interface_id=cfg.interface_id,
                peer_interface_id=self._decision.peer_interface_id if self._decision else None,
            )
            self._start_ncp(
                ControlProtocol(
                    Protocol.IPV6CP, "IPv6CP", v6, self._adapter, self._send, cfg.restart
                ),
                now,
            )

    def _dns(self) -> tuple[IPv4Address, ...]:
        """The verifier's DNS servers (RADIUS) if it named any, else the configured ones."""
        if self._decision is not None and self._decision.dns is not None:
            return self._decision.dns
        return self.config.dns

    def _peer_address(self) -> IPv4Address | None:
        if self._decision is not None and self._decision.peer_address is not None:
            return self._decision.peer_address
        if self.config.ipv4_peer is not None:
            return self.config.ipv4_peer
        if self.config.ipv4_pool is not None:
            return self.config.ipv4_pool(self.user)
        return None

    def _start_ncp(self, ncp: ControlProtocol, now: float) -> None:
        ncp.peer_mru = self.lcp.options.peer_mru
        self.ncps[Protocol(ncp.protocol)] = ncp
        ncp.open(now)
        ncp.up(now)

    def _ncp_up(self, ncp: ControlProtocol, now: float) -> None:
        protocol = Protocol(ncp.protocol)
        event: NetworkUp
        if isinstance(ncp.handler, IpcpOptions):
            ip = ncp.handler
            if ip.local_address is None or ip.peer_address is None:
                ncp.close(now, "no IPv4 address agreed")
                return
            event = NetworkUp(
                protocol=protocol,
                data_protocol=Protocol.IPV4,
                local_address=ip.local_address,
                peer_address=ip.peer_address,
                dns=ip.dns,
            )
        else:
            assert isinstance(ncp.handler, Ipv6cpOptions)
            event = NetworkUp(
                protocol=protocol,
                data_protocol=Protocol.IPV6,
                local_interface_id=ncp.handler.local_id,
                peer_interface_id=ncp.handler.peer_id,
            )
        self._ncps_up.add(protocol)
        self._ncps_ever_up.add(protocol)
        self._events.append(event)

    def _ncp_down(self, ncp: ControlProtocol, now: float) -> None:
        protocol = Protocol(ncp.protocol)
        if protocol not in self._ncps_up:
            return
        self._ncps_up.discard(protocol)
        peer = ncp.handler.peer_address if isinstance(ncp.handler, IpcpOptions) else None
        self._events.append(
            NetworkDown(
                protocol=protocol,
                data_protocol=_DATA_PROTOCOL[protocol],
                reason=ncp.terminate_reason or "renegotiation",
                peer_address=peer,
            )
        )

    def _ncp_finished(self, ncp: ControlProtocol, now: float) -> None:
        protocol = Protocol(ncp.protocol)
        if protocol not in self._ncps_ever_up:
            reason = ncp.terminate_reason or "no agreement with the peer"
            self._events.append(NetworkFailed(protocol=protocol, reason=reason))
        self._check_network(now)

    def _check_network(self, now: float) -> None:
        """RFC 1661 3.5 leaves it to us; like pppd, a link with no NCP left is closed."""
        if self.phase is not Phase.NETWORK:
            return
        if all(ncp.state in _DEAD_NCP_STATES for ncp in self.ncps.values()):
            self.lcp.close(now, "no network protocols running")


def _auth_protocol(method: AuthMethod) -> Protocol:
    return Protocol.PAP if method is AuthMethod.PAP else Protocol.CHAP


class _Adapter:
    """Routes layer and authentication callbacks to the connection's private methods."""

    def __init__(self, conn: PppConnection) -> None:
        self._conn = conn

    def this_layer_up(self, cp: ControlProtocol, now: float) -> None:
        if cp is self._conn.lcp:
            self._conn._lcp_up(now)
        else:
            self._conn._ncp_up(cp, now)

    def this_layer_down(self, cp: ControlProtocol, now: float) -> None:
        if cp is self._conn.lcp:
            self._conn._lcp_down(now)
        else:
            self._conn._ncp_down(cp, now)

    def this_layer_started(self, cp: ControlProtocol, now: float) -> None:
        return None  # our lower layer (the L2TP session) is already up when we open

    def this_layer_finished(self, cp: ControlProtocol, now: float) -> None:
        if cp is self._conn.lcp:
            self._conn._lcp_finished(now)
        else:
            self._conn._ncp_finished(cp, now)

    def auth_requested(self, request: AuthRequest, now: float) -> None:
        self._conn._auth_requested(request, now)

    def auth_done(
        self, method: AuthMethod, success: bool, user: str | None, reason: str, now: float
    ) -> None:
        self._conn._auth_done(method, success, user, reason, now)
