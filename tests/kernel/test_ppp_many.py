"""Forty PPP sessions in one tunnel: our kl2tpd (LAC) to our l2tp-lns, real pppd on both sides.

The LAC places all its calls at once when the tunnel comes up, a burst of 40
ICRQs. Each LAC session starts its pppd as soon as its ICCN is queued; the LNS
creates its kernel session and starts its pppd only once that ICCN has
arrived, behind every earlier message of the burst (the control channel
carries 4 unacknowledged messages at a time) and the LNS's own work for the
earlier sessions. pppd gives up after ``lcp-max-configure`` unanswered LCP
Configure-Requests (10 x 3 s by default) and exits 16: on a busy host the lag
passed 30 s and 6 of 40 sessions never came up (issue 13, item 13). To meet
that race in this VM the test gives pppd a shorter patience (3 x 3 s); the
backend must make pppd wait for its peer (``passive``), so every session comes
up however late its LNS side starts.

Every session must get a ppp interface with its own address pair on both
sides and carry traffic; the kernel must hold exactly 40 sessions on each side;
and a SIGTERM must tear all of it down in bounded time.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import require_tool
from tests.kernel.conftest import VethPair, wait_until
from tests.kernel.daemons import DaemonProcess

pytestmark = pytest.mark.kernel

SESSIONS = 40
UP_WITHIN = 150.0
"""Seconds for every session to have its ppp interfaces on both sides. In the emulated
VM: 35-45 s on a quiet host, up to 96 s measured with the host's 2 cores overloaded."""
STOP_WITHIN = 60.0
"""Seconds from SIGTERM to a daemon's exit with its 40 pppd to stop: 8-10 s measured on a
quiet host, up to 29 s with the host overloaded (80 pppd and their interfaces go away)."""

# pppd on both sides: no authentication; no LCP echoes (a slow VM must not time them
# out); a short LCP patience (see the module docstring); and no ip-up/ip-down scripts
# (a missing script is skipped without a fork; 80 script runs would cost more VM time
# than the sessions themselves).
COMMON = [
    "noauth",
    "nodefaultroute",
    "lcp-echo-interval",
    "0",
    "lcp-max-configure",
    "3",
    "ip-up-script",
    "/nonexistent",
    "ip-down-script",
    "/nonexistent",
]


def lac_addr(n: int) -> str:
    return f"10.60.{n}.2"


def lns_addr(n: int) -> str:
    return f"10.60.{n}.1"


class Lns(DaemonProcess):
    MODULE = "l2tp.daemons.lns"
    FORK = True


class Lac(DaemonProcess):
    MODULE = "l2tp.daemons.kl2tpd"
    FORK = True


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def _ppp_links(ns: str) -> dict[str, str]:
    """``{local address: peer address}`` of the ppp interfaces that are up in ``ns``."""
    text = subprocess.run(
        ["ip", "-n", ns, "-j", "addr", "show"], capture_output=True, text=True
    ).stdout
    links: dict[str, str] = {}
    for link in json.loads(text or "[]"):
        if link.get("link_type") != "ppp" or "UP" not in link.get("flags", []):
            continue
        for addr in link.get("addr_info", []):
            if addr.get("family") == "inet":
                links[str(addr["local"])] = str(addr.get("address"))
    return links


def _l2tp(ns: str, what: str) -> list[Any]:
    text = subprocess.run(
        ["ip", "-n", ns, "-j", "l2tp", "show", what], capture_output=True, text=True
    ).stdout
    result: list[Any] = json.loads(text or "[]")
    return result


def _pppd_count() -> int:
    out = subprocess.run(["pgrep", "-c", "-f", "pppol2tp"], capture_output=True, text=True)
    return int(out.stdout.strip() or 0)


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for d in started:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
    deadline = time.monotonic() + 15
    while _pppd_count() and time.monotonic() < deadline:
        time.sleep(0.2)


def _tail(d: DaemonProcess, lines: int = 40) -> str:
    text = "\n".join(d.output().splitlines()[-lines:])
    return f"--- {d.program} (last {lines} lines)\n{text}"


def _stop(d: DaemonProcess) -> float:
    """SIGTERM; the seconds until the daemon exited 0 (TimeoutExpired past STOP_WITHIN)."""
    t0 = time.monotonic()
    assert d.stop(timeout=STOP_WITHIN) == 0, _tail(d)
    return time.monotonic() - t0


def test_forty_ppp_sessions_in_one_tunnel_all_come_up_carry_traffic_and_stop(
    veth_pair: VethPair, daemons: list[DaemonProcess], tmp_path: Path
) -> None:
    require_tool("pppd")
    require_tool("ping")
    pair = veth_pair
    # The LNS's pppd learns both addresses from the LAC's (IPCP Nak and Request), so
    # each session has its own pair on both sides with one listener-wide option list.
    lns = Lns(
        pair.ns_a,
        f"""
[listener.main]
listen = "{pair.a4}:1701"
version = "l2tpv2"
pppd_options = {_toml_list([*COMMON, "noipdefault"])}
""",
        tmp_path,
        "lns",
    )
    lac_conf = f"""
[tunnel.t1]
peer = "{pair.a4}:1701"
version = "l2tpv2"
encap = "udp"
"""
    for n in range(SESSIONS):
        lac_conf += f"""
[tunnel.t1.session.s{n}]
pseudowire = "ppp"
pppd_options = {_toml_list([*COMMON, f"{lac_addr(n)}:{lns_addr(n)}"])}
"""
    lac = Lac(pair.ns_b, lac_conf, tmp_path, "lac")
    daemons += [lns, lac]
    lns.start()
    started = time.monotonic()
    lac.start()

    want_lac = {lac_addr(n): lns_addr(n) for n in range(SESSIONS)}
    want_lns = {lns_addr(n): lac_addr(n) for n in range(SESSIONS)}
    try:
        wait_until(
            lambda: _ppp_links(pair.ns_a) == want_lns and _ppp_links(pair.ns_b) == want_lac,
            timeout=UP_WITHIN,
            what=f"{SESSIONS} ppp links up on each side",
        )
    except AssertionError as exc:
        a, b = _ppp_links(pair.ns_a), _ppp_links(pair.ns_b)
        missing = sorted(set(want_lac) - set(b), key=lambda x: int(x.split(".")[2]))
        raise AssertionError(
            f"{exc}: LNS has {len(a)}, LAC has {len(b)}; LAC sessions missing: {missing}\n"
            f"{_tail(lns)}\n{_tail(lac)}"
        ) from None
    up_after = time.monotonic() - started
    # No session was lost on the way: no pppd ended by itself (PppdBackend logs
    # "pppd[PID] exited (STATUS)" for those, "stopped" for the ones it stops).
    for d in (lns, lac):
        assert "] exited (" not in d.output(), _tail(d)

    # One tunnel and every session in the kernel on both sides; one pppd per session.
    for ns in (pair.ns_a, pair.ns_b):
        tunnels, sessions = _l2tp(ns, "tunnel"), _l2tp(ns, "session")
        assert len(tunnels) == 1, tunnels
        assert len({s["session_id"] for s in sessions}) == len(sessions) == SESSIONS, sessions
    assert _pppd_count() == 2 * SESSIONS

    # Traffic through a sample of the sessions, the first and last placed included.
    sample = [0, 1, SESSIONS // 3, SESSIONS // 2, SESSIONS - 2, SESSIONS - 1]
    script = " && ".join(f"ping -n -q -c 2 -i 0.3 -W 3 {lns_addr(n)}" for n in sample)
    ping = subprocess.run(
        ["ip", "netns", "exec", pair.ns_b, "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert ping.stdout.count(" 0% packet loss") == len(sample), ping.stdout

    # SIGTERM to the LAC: StopCCN, its 40 pppd stopped; the LNS cleans up by itself
    # (its 40 pppd stopped); then SIGTERM to the LNS. Nothing may be left behind, in
    # bounded time, and no pppd may need SIGKILL (which skips its ip-down script).
    lac_stop = _stop(lac)
    wait_until(lambda: not _l2tp(pair.ns_a, "tunnel"), timeout=30, what="LNS tunnel removal")
    lns_stop = _stop(lns)
    wait_until(lambda: _pppd_count() == 0, timeout=15, what="every pppd to exit")
    for ns in (pair.ns_a, pair.ns_b):
        assert _l2tp(ns, "session") == [] and _l2tp(ns, "tunnel") == []
        assert _ppp_links(ns) == {}
    for d in (lns, lac):
        assert "killing it" not in d.output(), _tail(d)
    print(
        f"\n{SESSIONS} sessions up after {up_after:.1f} s; SIGTERM->exit: "
        f"kl2tpd {lac_stop:.1f} s, then l2tp-lns {lns_stop:.1f} s"
    )
