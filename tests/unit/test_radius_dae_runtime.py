"""What the built-in PPP gives the Dynamic Authorization directory: the authenticated user,
the peer's IPCP address and a per-session deadline (RADIUS Session-Timeout) that ends
the session with the documented CDN. Two backends over a socket pair
(builtin_ppp_fakes.py), on a real event loop."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

from l2tp.protocol.constants import CdnResult
from l2tp.runtime.builtin_ppp import Ending, map_ending
from tests.helpers import until
from tests.unit.test_builtin_ppp_backend import (
    ipcp_up,
    lac_options,
    lns_options,
    make_pair,
    run,
)

TIME_LIMIT = (int(CdnResult.ADMINISTRATIVE), None, "PPP connect time limit reached")


def test_session_timeout_maps_to_the_pppd_connect_time_cdn() -> None:
    assert map_ending(Ending.SESSION_TIMEOUT) == TIME_LIMIT
    assert map_ending(Ending.SESSION_TIMEOUT, version=3) == TIME_LIMIT  # 3 exists in v3


def test_link_knows_its_user_and_address_and_ends_at_its_deadline(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = make_pair()
        try:
            await pair.start(lns_options(tmp_path), lac_options())
            key = pair.sessions["lns"].key
            link = pair.lns.links[key]
            assert link.user is None and link.peer_ipv4 is None
            await until(lambda: ipcp_up(pair.lns_kernel), "IPCP up")
            assert link.user == "alice"
            assert link.peer_ipv4 == IPv4Address("10.0.0.2")
            assert pair.lac.links[pair.sessions["lac"].key].user is None  # peer role

            loop = link.loop
            link.set_session_timeout(3600)
            assert link.session_deadline is not None
            assert 3599 < link.session_deadline - loop.time() <= 3600
            link.set_session_timeout(None)  # CoA Session-Timeout 0: the limit goes
            assert link.session_deadline is None
            assert link._session_timer is None
            assert pair.lns_reported.downs == []

            link.set_session_timeout(0)  # due now
            await until(lambda: pair.lns_reported.downs, "the time limit reported")
            assert pair.lns_reported.downs == [TIME_LIMIT]
            assert pair.lns.counters.session_timeouts == 1
            await pair.lns.stop(pair.sessions["lns"])  # what the control plane does next
            assert pair.lns.endings[key] is Ending.SESSION_TIMEOUT
            link.set_session_timeout(5)  # on a released link: nothing is armed
            assert link.session_deadline is None
        finally:
            await pair.close()
        assert pair.lns_reported.downs == [TIME_LIMIT]  # reported once
        assert not pair.lns_kernel.open_fds

    run(scenario)


def test_release_cancels_the_deadline(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = make_pair()
        try:
            await pair.start(lns_options(tmp_path), lac_options())
            link = pair.lns.links[pair.sessions["lns"].key]
            link.set_session_timeout(3600)
            timer = link._session_timer
            assert timer is not None
        finally:
            await pair.close()
        assert timer.cancelled()
        assert pair.lns_reported.downs == []

    run(scenario)
