"""Events and configuration: validation on construction, secrets kept out of repr."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from l2tp.ppp import (
    AuthDecision,
    AuthMethod,
    AuthRequested,
    ChapMd5Request,
    LinkUp,
    MsChapV2Request,
    NetworkUp,
    PapRequest,
    PppConfig,
    Protocol,
    Role,
)

from .pair import PppPair


def test_secrets_are_not_in_reprs() -> None:
    pap = PapRequest(user="alice", password=b"hunter2")
    event = AuthRequested(method=AuthMethod.PAP, user="alice", request=pap)
    config = PppConfig(role=Role.PEER, username="alice", password="hunter2")
    for obj in (pap, event, config):
        assert "hunter2" not in repr(obj) and "alice" in repr(obj)
    chap = ChapMd5Request(user="u", identifier=1, challenge=b"c" * 16, response=b"\xaa" * 16)
    assert "aa" not in repr(chap).replace("user", "")
    decision = AuthDecision(success=True, authenticator_response=b"\x99" * 20)
    assert "\\x99" not in repr(decision)


def test_deferred_request_event_does_not_leak_the_password() -> None:
    pair = PppPair(authenticator=None)
    pair.open()
    (event,) = pair.a.of(AuthRequested)
    assert isinstance(event.request, MsChapV2Request)
    assert event.request.nt_response.hex() not in repr(event)


def test_event_validation() -> None:
    with pytest.raises(ValueError):
        LinkUp(mtu=0, mru=1500, auth=None)
    with pytest.raises(ValueError):
        NetworkUp(protocol=Protocol.IPCP, data_protocol=Protocol.IPV4)
    with pytest.raises(ValueError):
        NetworkUp(
            protocol=Protocol.IPV6CP, data_protocol=Protocol.IPV6, local_interface_id=b"short"
        )
    with pytest.raises(ValueError):
        NetworkUp(protocol=Protocol.LCP, data_protocol=Protocol.IPV4)
    NetworkUp(
        protocol=Protocol.IPCP,
        data_protocol=Protocol.IPV4,
        local_address=IPv4Address("10.0.0.1"),
        peer_address=IPv4Address("10.0.0.2"),
    )
    with pytest.raises(ValueError):
        MsChapV2Request(
            user="u",
            identifier=1,
            authenticator_challenge=bytes(16),
            peer_challenge=bytes(15),
            nt_response=bytes(24),
        )
    with pytest.raises(ValueError):
        AuthDecision(success=True, authenticator_response=bytes(19))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mru": 100},
        {"auth_methods": (AuthMethod.PAP, AuthMethod.PAP)},
        {"echo_interval": 0.0},
        {"echo_failure": 0},
        {"dns": (IPv4Address("1.1.1.1"),) * 3},
        {"interface_id": bytes(8)},
        {"ipv4": False, "ipv6": False},
        {"username": "alice"},
        {"chap_rechallenge": -1.0},
        {"username": "u" * 256, "password": "p"},
        {"hostname": "h" * 256},
    ],
)
def test_config_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        PppConfig(role=Role.AUTHENTICATOR, **kwargs)  # type: ignore[arg-type]


def test_config_roles() -> None:
    peer = PppConfig(role=Role.PEER, username="a", password="b")
    assert peer.requested_auth == () and peer.accepted_auth == peer.auth_methods
    anonymous = PppConfig(role=Role.PEER)
    assert anonymous.accepted_auth == ()
    lns = PppConfig(role=Role.AUTHENTICATOR)
    assert lns.requested_auth == lns.auth_methods and lns.accepted_auth == ()
