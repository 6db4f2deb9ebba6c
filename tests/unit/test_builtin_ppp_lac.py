"""The LAC (peer) side of the built-in PPP backend: its password from a secrets file, the
DNS servers it learns (RFC 1877) written to ``resolv_file``, and how soon LCP opens.

Same rig as test_builtin_ppp_backend.py: two backends on a real event loop over a
SEQPACKET pair, the kernel a recording fake.
"""

from __future__ import annotations

import logging
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from l2tp.ppp import AuthMethod
from l2tp.runtime.builtin_ppp import BuiltinPppBackend
from tests.helpers import until
from tests.unit.builtin_ppp_fakes import FakePppKernel, backend_session, socket_pair
from tests.unit.test_builtin_ppp_backend import (
    ipcp_up,
    lac_options,
    lns_options,
    make_pair,
    run,
)

DNS = (IPv4Address("192.0.2.53"), IPv4Address("192.0.2.54"))


@pytest.mark.parametrize(
    ("remote_name", "line"),
    [("lns", "bob  lns  hunter2"), (None, "bob  *  hunter2"), ("lns", "bob  *  hunter2")],
)
def test_peer_password_from_the_secrets_file(
    tmp_path: Path, remote_name: str | None, line: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="l2tp.runtime")
    lac_secrets = tmp_path / "lac-secrets"
    lac_secrets.write_text(f"# ours\nother  lns  nope\n{line}\n")

    async def scenario() -> None:
        pair = make_pair()
        try:
            await pair.start(
                lns_options(tmp_path, auth=(AuthMethod.CHAP_MD5,)),
                lac_options(
                    user="bob",
                    password=None,
                    secrets=str(lac_secrets),
                    remote_name=remote_name,
                    auth=(AuthMethod.CHAP_MD5,),
                ),
            )
            await until(lambda: ipcp_up(pair.lac_kernel) and ipcp_up(pair.lns_kernel), "IPCP")
        finally:
            await pair.close()

    run(scenario)
    assert 'chap-md5 authentication as user "bob" succeeded' in caplog.text
    assert "hunter2" not in caplog.text


@pytest.mark.parametrize(
    ("remote_name", "text"),
    [
        (None, "bob  lns  hunter2\n"),  # without remote_name only '*' servers match
        ("lns", "alice  lns  hunter2\n"),
    ],
)
def test_no_secrets_line_refuses_the_session(
    tmp_path: Path, remote_name: str | None, text: str
) -> None:
    lac_secrets = tmp_path / "lac-secrets"
    lac_secrets.write_text(text)

    async def scenario() -> None:
        backend = BuiltinPppBackend(kernel=FakePppKernel(), hostname="lac")
        a, b = socket_pair()
        options = lac_options(
            user="bob", password=None, secrets=str(lac_secrets), remote_name=remote_name
        )
        session, dataplane = backend_session(b, lns=False, options=options)
        with pytest.raises(ValueError, match="no secret for user 'bob'"):
            await backend.start(session)
        assert dataplane.opened == 0 and not backend.links
        a.close()
        b.close()

    run(scenario)


def test_user_without_password_or_secrets_is_refused() -> None:
    with pytest.raises(ValueError, match="password, or a secrets file"):
        lac_options(user="bob", password=None)


def test_learned_dns_servers_are_written_and_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="l2tp.runtime")
    resolv = tmp_path / "resolv.conf"

    async def scenario() -> None:
        pair = make_pair()
        try:
            await pair.start(lns_options(tmp_path, dns=DNS), lac_options(resolv_file=str(resolv)))
            await until(lambda: resolv.exists(), "the resolv file")
            (link,) = pair.lac.links.values()
            assert link.peer_dns == DNS
            assert resolv.read_text() == "nameserver 192.0.2.53\nnameserver 192.0.2.54\n"
            # Both ends started together over a socket pair: LCP opens at once, not
            # after a restart interval (3 s) or the connect delay (1 s).
            assert link.lcp_up_after is not None and link.lcp_up_after < 0.5
            (lns_link,) = pair.lns.links.values()
            assert lns_link.peer_dns == ()  # the authenticator learns none
        finally:
            await pair.close()
        assert not resolv.exists()  # gone with the session

    run(scenario)
    assert "DNS 192.0.2.53, 192.0.2.54" in caplog.text


def test_no_dns_offered_writes_nothing(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"

    async def scenario() -> None:
        pair = make_pair()
        try:
            await pair.start(lns_options(tmp_path), lac_options(resolv_file=str(resolv)))
            await until(lambda: ipcp_up(pair.lac_kernel), "IPCP")
            (link,) = pair.lac.links.values()
            assert link.peer_dns == ()
        finally:
            await pair.close()
        assert not resolv.exists()

    run(scenario)
