"""What a verifier grants a built-in PPP session beyond its address (l2tp.runtime.ppp_grants):
Framed-Route installed on the interface while IPCP is up, Idle-Timeout from the unit's
idle times. Two backends over socket pairs (tests/unit/builtin_ppp_fakes.py); the fake
kernel records the route requests and answers ``PPPIOCGIDLE`` with what the test sets."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from l2tp.ppp import AuthDecision, AuthMethod, AuthRequest, PapRequest, PeerRoute
from l2tp.ppp.constants import Protocol as PppProtocol
from l2tp.protocol.constants import CdnResult
from l2tp.runtime.builtin_ppp import AuthContext, Ending
from tests.helpers import until
from tests.unit.test_builtin_ppp_backend import ipcp_up, lac_options, lns_options, make_pair, run

PEER = IPv4Address("10.0.0.6")


class Granting:
    """A verifier accepting alice's PAP password with ``decision``'s grants."""

    def __init__(self, **grants: object) -> None:
        self.grants = grants

    def authenticate(self, request: AuthRequest, context: AuthContext) -> AuthDecision:
        ok = isinstance(request, PapRequest) and request.password == b"correct horse"
        if not ok:
            return AuthDecision(success=False, message="Access denied")
        return AuthDecision(success=True, peer_address=PEER, **self.grants)  # type: ignore[arg-type]


def route(text: str, gateway: str | None = None, metric: int | None = None) -> PeerRoute:
    return PeerRoute(
        destination=IPv4Network(text),
        gateway=IPv4Address(gateway) if gateway else None,
        metric=metric,
    )


def test_routes_are_added_after_the_address_and_refusals_are_counted(tmp_path: Path) -> None:
    grants = (
        route("10.79.1.0/24", metric=7),
        route("10.79.2.0/24", gateway=str(PEER)),  # the peer's own address: a plain route
        route("10.79.3.0/24", gateway="10.0.0.99", metric=2),
        route("10.79.4.0/24"),
    )

    async def scenario() -> None:
        pair = make_pair(authenticator=Granting(routes=grants))
        try:
            await pair.start(
                lns_options(tmp_path, auth=(AuthMethod.PAP,), secrets=None),
                lac_options(auth=(AuthMethod.PAP,)),
            )
            await until(lambda: pair.lns.counters.routes_added == 4, "routes added")
            calls = pair.lns_kernel.interfaces_.calls
            names = [c[0] for c in calls]
            # After the peer's address (the /32 a gateway route needs), in the grant's order.
            assert names.index("add_address") < names.index("add_route")
            assert [c for c in calls if c[0] == "add_route"] == [
                ("add_route", 40, IPv4Network("10.79.1.0/24"), None, 7),
                ("add_route", 40, IPv4Network("10.79.2.0/24"), None, None),
                ("add_route", 40, IPv4Network("10.79.3.0/24"), IPv4Address("10.0.0.99"), 2),
                ("add_route", 40, IPv4Network("10.79.4.0/24"), None, None),
            ]
            link = pair.lns.links[pair.sessions["lns"].key]
            assert len(link.routes_installed) == 4
            assert pair.lns_reported.downs == []
        finally:
            await pair.close()

    run(scenario)


def test_a_refused_route_is_counted_and_the_session_goes_on(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = make_pair(authenticator=Granting(routes=(route("10.79.1.0/24"),)))
        pair.lns_kernel.interfaces_.fail = {"add_route"}
        try:
            await pair.start(
                lns_options(tmp_path, auth=(AuthMethod.PAP,), secrets=None),
                lac_options(auth=(AuthMethod.PAP,)),
            )
            await until(lambda: pair.lns.counters.route_errors == 1, "the refusal counted")
            assert ipcp_up(pair.lns_kernel) and ipcp_up(pair.lac_kernel)
            assert pair.lns.counters.routes_added == 0
            assert pair.lns.counters.interface_errors == 0  # not an interface failure
            assert pair.lns_reported.downs == []
        finally:
            await pair.close()

    run(scenario)


def test_routes_are_deleted_when_ipcp_goes_down(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = make_pair(authenticator=Granting(routes=(route("10.79.1.0/24", metric=3),)))
        try:
            await pair.start(
                lns_options(tmp_path, auth=(AuthMethod.PAP,), secrets=None),
                lac_options(auth=(AuthMethod.PAP,)),
            )
            await until(lambda: pair.lns.counters.routes_added == 1, "route added")
            link = pair.lns.links[pair.sessions["lns"].key]
            link._granted_down(PppProtocol.IPCP)  # what NetworkDown(IPCP) calls
            await until(
                lambda: any(c[0] == "delete_route" for c in pair.lns_kernel.interfaces_.calls),
                "route deleted",
            )
            assert ("delete_route", 40, IPv4Network("10.79.1.0/24"), None, 3) in (
                pair.lns_kernel.interfaces_.calls
            )
            assert link.routes_installed == []
        finally:
            await pair.close()

    run(scenario)


def test_idle_timeout_ends_the_session_only_once_both_directions_are_idle(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        pair = make_pair(authenticator=Granting(idle_timeout=1.0))
        pair.lns_kernel.idle = (0, 30)  # we sent data just now: not idle
        try:
            await pair.start(
                lns_options(tmp_path, auth=(AuthMethod.PAP,), secrets=None),
                lac_options(auth=(AuthMethod.PAP,)),
            )
            await until(lambda: ipcp_up(pair.lns_kernel), "IPCP")
            await until(lambda: pair.lns_kernel.idle_reads >= 1, "the first idle check", timeout=5)
            assert pair.lns_reported.downs == []
            pair.lns_kernel.idle = (30, 30)  # the kernel's stamps: nothing for 30 s
            await until(lambda: pair.lns_reported.downs, "the idle time limit", timeout=5)
            assert pair.lns_reported.downs == [(CdnResult.ADMINISTRATIVE, None, "PPP idle timeout")]
            assert pair.lns.counters.idle_timeouts == 1
            # One check per second at most: the first at the limit, the next a second later.
            assert pair.lns_kernel.idle_reads == 2
            await until(lambda: not pair.lns_kernel.open_fds, "LNS released")
            await pair.lns.stop(pair.sessions["lns"])
            assert pair.lns.endings[pair.sessions["lns"].key] is Ending.IDLE_TIMEOUT
        finally:
            await pair.close()

    run(scenario)
