"""Both roles against each other in memory: authentication, NCPs, loss, failures."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from l2tp.ppp import (
    AuthDecision,
    AuthFailed,
    AuthMethod,
    AuthRequest,
    AuthRequested,
    AuthSucceeded,
    LinkDown,
    LinkUp,
    NetworkDown,
    NetworkFailed,
    NetworkPhase,
    NetworkUp,
    Phase,
    PppConnection,
    Protocol,
    Terminated,
)
from l2tp.ppp.codec import (
    Option,
    Packet,
    parse_frame,
    parse_packet,
    serialize_frame,
    serialize_packet,
)
from l2tp.ppp.constants import LcpOption

from .pair import (
    DNS,
    FAST,
    LNS_ADDRESS,
    LOSSY,
    POOL_ADDRESS,
    PppPair,
    authenticator_config,
    peer_config,
)

METHODS = [AuthMethod.PAP, AuthMethod.CHAP_MD5, AuthMethod.MSCHAP_V2]


def up(pair: PppPair, *protocols: Protocol) -> bool:
    wanted = set(protocols)
    return all({e.protocol for e in end.of(NetworkUp)} >= wanted for end in pair.ends())


@pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "dual"])
@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.value)
def test_both_roles_come_up(method: AuthMethod, ipv6: bool) -> None:
    pair = PppPair(authenticator_config(auth_methods=(method,), ipv6=ipv6), peer_config(ipv6=ipv6))
    pair.open()
    for end in pair.ends():
        kinds = end.kinds()
        assert kinds[:3] == ["LinkUp", "AuthSucceeded", "NetworkPhase"]
        assert sorted(kinds[3:]) == ["NetworkUp"] * (2 if ipv6 else 1)
        assert end.of(LinkUp)[0].auth is method
        assert end.of(AuthSucceeded)[0].user == "alice"
        assert end.conn.phase is Phase.NETWORK
    (a_v4,) = [e for e in pair.a.of(NetworkUp) if e.protocol is Protocol.IPCP]
    (p_v4,) = [e for e in pair.p.of(NetworkUp) if e.protocol is Protocol.IPCP]
    assert (a_v4.local_address, a_v4.peer_address) == (LNS_ADDRESS, POOL_ADDRESS)
    assert (p_v4.local_address, p_v4.peer_address) == (POOL_ADDRESS, LNS_ADDRESS)
    assert p_v4.dns == DNS and a_v4.dns == ()
    assert a_v4.data_protocol is Protocol.IPV4
    if ipv6:
        (a_v6,) = [e for e in pair.a.of(NetworkUp) if e.protocol is Protocol.IPV6CP]
        (p_v6,) = [e for e in pair.p.of(NetworkUp) if e.protocol is Protocol.IPV6CP]
        assert a_v6.local_interface_id == p_v6.peer_interface_id
        assert a_v6.peer_interface_id == p_v6.local_interface_id
        assert a_v6.local_interface_id != a_v6.peer_interface_id
        assert a_v6.local_interface_id != bytes(8) and a_v6.peer_interface_id != bytes(8)
    else:
        assert Protocol.IPV6CP not in pair.protocols("a")
    # Nothing else is pending: no retransmission was needed on a perfect wire.
    assert pair.next_deadline() is None


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.value)
def test_wrong_password_fails_on_both_sides(method: AuthMethod) -> None:
    pair = PppPair(
        authenticator_config(auth_methods=(method,)), peer_config(password="wrong horse")
    )
    pair.open()
    assert pair.run_until(lambda: all(e.conn.terminated for e in pair.ends()), until=30)
    for end in pair.ends():
        assert end.kinds() == ["LinkUp", "AuthFailed", "LinkDown", "Terminated"]
        (failed,) = end.of(AuthFailed)
        assert failed.method is method and failed.user == "alice"
        assert not end.of(NetworkUp)
    assert pair.a.of(Terminated)[0].reason == "authentication failed"
    if method is AuthMethod.MSCHAP_V2:
        assert "error 691" in pair.p.of(AuthFailed)[0].reason


def test_unknown_user_fails() -> None:
    pair = PppPair(authenticator_config(), peer_config(username="mallory", password="x"))
    pair.open()
    pair.run_until(lambda: pair.a.conn.terminated)
    assert pair.a.of(AuthFailed)[0].user == "mallory"


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.value)
def test_comes_up_despite_frame_loss(method: AuthMethod, seed: int) -> None:
    pair = PppPair(
        authenticator_config(auth_methods=(method,), ipv6=True, restart=LOSSY, auth_restart=1.0),
        peer_config(ipv6=True, restart=LOSSY, auth_restart=1.0),
        seed=seed,
        loss=0.25,
    )
    pair.open()
    assert pair.run_until(lambda: up(pair, Protocol.IPCP, Protocol.IPV6CP), until=60)
    assert pair.dropped > 0
    for end in pair.ends():
        assert not end.of(AuthFailed) and not end.of(Terminated)
        assert len(end.of(AuthSucceeded)) == 1
        assert len(end.of(NetworkPhase)) == 1


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.value)
def test_duplicated_frames_change_nothing(method: AuthMethod) -> None:
    pair = PppPair(
        authenticator_config(auth_methods=(method,), ipv6=True),
        peer_config(ipv6=True),
        duplicate=True,
    )
    pair.open()
    pair.run_until(lambda: False, until=30)
    for end in pair.ends():
        assert end.kinds() == ["LinkUp", "AuthSucceeded", "NetworkPhase", "NetworkUp", "NetworkUp"]
    assert pair.a.conn.lcp.counters.stale_replies > 0  # the repeated Acks were seen and dropped


def test_deferred_decision_through_auth_result() -> None:
    pair = PppPair(authenticator=None)
    pair.open()
    (requested,) = pair.a.of(AuthRequested)
    assert requested.method is AuthMethod.MSCHAP_V2 and requested.user == "alice"
    assert not pair.a.of(NetworkPhase)
    # The verifier (a RADIUS server, say) answers two seconds later.
    pair.now = 2.0
    from l2tp.ppp import SecretsAuthenticator

    from .pair import SECRETS

    decision = SecretsAuthenticator.from_text(SECRETS, server="lns").authenticate(requested.request)
    assert decision.success and decision.authenticator_response is not None
    pair.a.conn.auth_result(requested.request, decision, pair.now)
    pair.pump()
    assert up(pair, Protocol.IPCP)
    # A second answer for the same request is ignored.
    pair.a.conn.auth_result(requested.request, AuthDecision(success=False), pair.now)
    pair.pump()
    assert not pair.a.of(AuthFailed)


def test_deferred_decision_times_out() -> None:
    pair = PppPair(authenticator_config(auth_timeout=10.0), authenticator=None)
    pair.open()
    assert pair.a.of(AuthRequested)
    pair.run_until(lambda: bool(pair.a.of(AuthFailed)))
    assert pair.now == 10.0
    assert pair.a.of(AuthFailed)[0].reason == "authentication timed out"


def test_auth_result_is_for_the_authenticator_only() -> None:
    from l2tp.protocol.errors import LocalProtocolError

    pair = PppPair()
    request: AuthRequest | None = None
    with pytest.raises(LocalProtocolError):
        pair.p.conn.auth_result(request, AuthDecision(success=True), 0.0)  # type: ignore[arg-type]


def test_framed_address_from_the_verifier_wins() -> None:
    # bob's secrets entry lists 10.9.9.9: it beats the configured peer address.
    pair = PppPair(p=peer_config(username="bob", password="hunter2"))
    pair.open()
    (event,) = pair.p.of(NetworkUp)
    assert event.local_address == IPv4Address("10.9.9.9")


def test_pool_is_asked_with_the_authenticated_user() -> None:
    asked: list[str | None] = []

    def pool(user: str | None) -> IPv4Address:
        asked.append(user)
        return IPv4Address("10.1.2.3")

    pair = PppPair(authenticator_config(ipv4_peer=None, ipv4_pool=pool))
    pair.open()
    assert asked == ["alice"]
    assert pair.p.of(NetworkUp)[0].local_address == IPv4Address("10.1.2.3")
    pair.p.conn.close(pair.now, "bye")
    pair.run_until(lambda: pair.a.conn.terminated)
    (down,) = pair.a.of(NetworkDown)
    assert down.peer_address == IPv4Address("10.1.2.3")  # for the pool to take back


def test_peer_terminate() -> None:
    pair = PppPair(authenticator_config(ipv6=True), peer_config(ipv6=True))
    pair.open()
    start = pair.now
    pair.p.conn.close(pair.now, "user hung up")
    pair.run_until(lambda: all(e.conn.terminated for e in pair.ends()))
    a_kinds = pair.a.kinds()
    tail = a_kinds[a_kinds.index("NetworkUp") + 2 :]
    assert tail == ["NetworkDown", "NetworkDown", "LinkDown", "Terminated"]
    assert pair.a.of(Terminated)[0] == Terminated(by_peer=True, reason="user hung up")
    assert pair.p.of(Terminated)[0] == Terminated(by_peer=False, reason="user hung up")
    # LinkDown already says whose choice it was: the Terminated of the end that was
    # asked comes a restart period later, if the session is not cleared before.
    assert pair.a.of(LinkDown) == [LinkDown(reason="user hung up", by_peer=True)]
    assert pair.p.of(LinkDown) == [LinkDown(reason="user hung up", by_peer=False)]
    # The closer finishes on the Terminate-Ack; the other end waits one restart
    # period in Stopping first (RFC 1661 4.3 RTR in Opened: tld, zrc, sta/5).
    assert pair.now == start + 3.0
    assert pair.a.conn.get_timer() is None and pair.p.conn.get_timer() is None


def test_ipv6cp_protocol_reject_leaves_ipv4_up() -> None:
    pair = PppPair(authenticator_config(ipv6=True), peer_config(ipv6=False))
    pair.open()
    pair.run_until(lambda: False, until=40)
    assert [e.protocol for e in pair.a.of(NetworkUp)] == [Protocol.IPCP]
    assert pair.a.of(NetworkFailed) == [
        NetworkFailed(protocol=Protocol.IPV6CP, reason="Protocol-Reject from peer")
    ]
    assert not pair.a.conn.terminated and not pair.p.conn.terminated
    assert pair.p.conn.counters.protocol_rejects_sent == 1
    assert Protocol.IPV6CP in pair.protocols("a")  # it tried once, then stopped
    assert pair.protocols("a").count(Protocol.IPV6CP) == 1


def test_link_closes_when_no_ncp_is_left() -> None:
    # The peer's IPCP never gets through, so the authenticator's IPCP gives up after
    # Max-Configure and, with no other NCP, the link is closed (as pppd does).
    pair = PppPair(authenticator_config(restart=FAST))
    pair.drop_if = lambda src, frame: src == "p" and parse_frame(frame)[0] == Protocol.IPCP
    pair.open()
    pair.run_until(lambda: pair.a.conn.terminated)
    assert pair.a.of(NetworkFailed) == [
        NetworkFailed(protocol=Protocol.IPCP, reason="no agreement with the peer")
    ]
    assert pair.a.of(Terminated)[0].reason == "no network protocols running"
    assert pair.now == 10.0  # ten Configure-Requests, one a second


def test_peer_refusing_to_authenticate() -> None:
    pair = PppPair(authenticator_config(), peer_config(username=None, password=None))
    pair.open()
    pair.run_until(lambda: pair.a.conn.terminated)
    (failed,) = pair.a.of(AuthFailed)
    assert failed.reason == "peer refused to authenticate"
    assert not pair.a.of(NetworkPhase)


def test_auth_method_falls_back_on_nak() -> None:
    pair = PppPair(
        authenticator_config(auth_methods=(AuthMethod.MSCHAP_V2, AuthMethod.CHAP_MD5)),
        peer_config(auth_methods=(AuthMethod.CHAP_MD5,)),
    )
    pair.open()
    assert pair.a.of(LinkUp)[0].auth is AuthMethod.CHAP_MD5
    assert up(pair, Protocol.IPCP)


def test_no_common_auth_method() -> None:
    pair = PppPair(
        authenticator_config(auth_methods=(AuthMethod.MSCHAP_V2,)),
        peer_config(auth_methods=(AuthMethod.PAP,)),
    )
    pair.open()
    pair.run_until(lambda: pair.a.conn.terminated)
    assert pair.a.of(AuthFailed)[0].reason == "peer refused to authenticate"


@pytest.mark.parametrize(
    ("timeout", "when", "reason"),
    [(20.0, 20.0, "authentication timed out"), (100.0, 30.0, "no Response to Challenge")],
)
def test_authenticator_gives_up_on_a_silent_peer(timeout: float, when: float, reason: str) -> None:
    pair = PppPair(
        authenticator_config(auth_timeout=timeout),
        peer_config(auth_timeout=100.0, auth_max_transmits=100),
    )
    pair.drop_if = lambda src, frame: src == "p" and parse_frame(frame)[0] == Protocol.CHAP
    pair.open()
    pair.run_until(lambda: bool(pair.a.of(AuthFailed)))
    # Challenges go out every 3 s, ten in all (Max-Configure's default, reused).
    (failed,) = pair.a.of(AuthFailed)
    assert (failed.reason, pair.now) == (reason, when)
    challenges = [f for src, f in pair.wire if src == "a" and parse_frame(f)[0] == Protocol.CHAP]
    assert len(challenges) == min(10, int(when // 3) + 1)
    pair.run_until(lambda: pair.a.conn.terminated)
    assert pair.a.of(Terminated)[0].reason == "authentication failed"


def test_peer_gives_up_without_success_or_failure() -> None:
    pair = PppPair(authenticator_config(auth_timeout=100.0))
    pair.drop_if = lambda src, frame: src == "a" and parse_frame(frame)[1][:1] == b"\x03"
    pair.open()
    pair.run_until(lambda: pair.p.conn.terminated)
    assert pair.p.of(AuthFailed)[0].reason == "no Success or Failure"


def test_mru_is_negotiated() -> None:
    pair = PppPair(authenticator_config(mru=1400))
    pair.open()
    assert pair.p.of(LinkUp)[0].mtu == 1400
    assert pair.a.of(LinkUp)[0].mru == 1400
    assert pair.a.of(LinkUp)[0].mtu == 1500


def test_rechallenge_failure_ends_the_link() -> None:
    class Flaky:
        def __init__(self) -> None:
            self.calls = 0
            from l2tp.ppp import SecretsAuthenticator

            from .pair import SECRETS

            self.inner = SecretsAuthenticator.from_text(SECRETS, server="lns")

        def authenticate(self, request: AuthRequest) -> AuthDecision:
            self.calls += 1
            if self.calls > 2:
                return AuthDecision(success=False, message="revoked")
            return self.inner.authenticate(request)

    verifier = Flaky()
    pair = PppPair(
        authenticator_config(auth_methods=(AuthMethod.CHAP_MD5,), chap_rechallenge=60.0),
        authenticator=verifier,
    )
    pair.open()
    assert up(pair, Protocol.IPCP)
    pair.run_until(lambda: verifier.calls == 2, until=61)
    assert pair.now == 60.0 and not pair.a.of(AuthFailed)
    assert len(pair.a.of(AuthSucceeded)) == 1  # a passed re-challenge is silent
    pair.run_until(lambda: pair.a.conn.terminated, until=200)
    assert pair.now >= 120.0
    assert pair.a.of(AuthFailed)[0].reason == "revoked"
    assert pair.p.of(AuthFailed)[0].reason == "revoked"
    assert pair.a.kinds()[-4:] == ["AuthFailed", "NetworkDown", "LinkDown", "Terminated"]


def test_mschapv2_peer_refuses_a_forged_success() -> None:
    class Impostor:
        def authenticate(self, request: AuthRequest) -> AuthDecision:
            return AuthDecision(success=True, authenticator_response=bytes(20))

    pair = PppPair(authenticator=Impostor())
    pair.open()
    pair.run_until(lambda: pair.p.conn.terminated)
    (failed,) = pair.p.of(AuthFailed)
    assert failed.reason == "bad authenticator response in Success"
    assert not pair.p.of(NetworkPhase)


def test_lcp_echo_keeps_a_live_link_up() -> None:
    pair = PppPair(
        authenticator_config(echo_interval=10.0, echo_failure=3),
        peer_config(echo_interval=10.0, echo_failure=3),
    )
    pair.open()
    pair.run_until(lambda: False, until=300)
    assert not pair.a.conn.terminated and not pair.p.conn.terminated
    assert pair.a.conn.lcp.echo_replies >= 29


def test_echo_failure_after_interval_times_failures() -> None:
    pair = PppPair(authenticator_config(echo_interval=5.0, echo_failure=4))
    pair.open()
    opened = pair.now
    # The peer vanishes: nothing of it reaches the authenticator any more.
    pair.drop_if = lambda src, frame: src == "p"
    pair.run_until(lambda: pair.a.conn.terminated)
    kinds = pair.a.kinds()
    assert kinds[-4:] == ["EchoFailed", "NetworkDown", "LinkDown", "Terminated"]
    assert pair.a.of(Terminated)[0].reason == "peer not responding to LCP Echo-Request"
    assert pair.now == opened + 5.0 * 4
    sent_echoes = [
        parse_packet(parse_frame(f)[1]).code
        for s, f in pair.wire
        if s == "a" and parse_frame(f)[0] == Protocol.LCP
    ].count(9)
    assert sent_echoes == 4


def phase_of(conn: PppConnection) -> Phase:
    """The phase now (a call, so that mypy does not keep an earlier narrowing)."""
    return conn.phase


def test_link_down_reports_every_network_down_first() -> None:
    pair = PppPair(authenticator_config(ipv6=True), peer_config(ipv6=True))
    pair.open()
    pair.a.conn.close(pair.now, "maintenance")
    assert pair.a.conn.phase is Phase.TERMINATE
    pair.pump()
    kinds = pair.a.kinds()
    assert kinds[-4:] == ["NetworkDown", "NetworkDown", "LinkDown", "Terminated"]
    assert {e.data_protocol for e in pair.a.of(NetworkDown)} == {Protocol.IPV4, Protocol.IPV6}
    assert all(e.reason == "maintenance" for e in pair.a.of(NetworkDown))
    assert phase_of(pair.a.conn) is Phase.DEAD
    assert pair.a.of(LinkDown)[0] == LinkDown(reason="maintenance", by_peer=False)


def test_lcp_renegotiation_reruns_authentication_and_ncps() -> None:
    pair = PppPair(authenticator_config(ipv6=True), peer_config(ipv6=True))
    pair.open()
    # The peer restarts LCP negotiation (RFC 1661 4.3: RCR in Opened is tld, scr, sca).
    magic = pair.p.conn.lcp.options.magic.to_bytes(4, "big")
    request = serialize_packet(
        Packet(code=1, identifier=0x99, data=Option(LcpOption.MAGIC_NUMBER, magic).to_bytes())
    )
    pair.a.conn.receive_frame(serialize_frame(Protocol.LCP, request), pair.now)
    pair.run_until(lambda: False, until=30)
    for end in pair.ends():
        kinds = end.kinds()
        first = kinds.index("LinkDown")
        assert kinds[first - 2 : first + 1] == ["NetworkDown", "NetworkDown", "LinkDown"]
        assert kinds[first + 1 : first + 4] == ["LinkUp", "AuthSucceeded", "NetworkPhase"]
        assert sorted(kinds[first + 4 :]) == ["NetworkUp", "NetworkUp"]
        assert end.conn.phase is Phase.NETWORK and not end.conn.terminated


def test_close_while_the_peer_terminates_keeps_the_peers_reason() -> None:
    pair = PppPair()
    pair.open()
    pair.p.conn.close(pair.now, "peer leaves")
    pair.pump()
    pair.a.conn.close(pair.now, "too late")
    pair.run_until(lambda: pair.a.conn.terminated)
    assert pair.a.of(Terminated) == [Terminated(by_peer=True, reason="peer leaves")]
