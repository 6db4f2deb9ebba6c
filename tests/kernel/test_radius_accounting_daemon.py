"""RADIUS accounting wired into l2tp-lns, end to end: our kl2tpd (two built-in PPP
sessions, CHAP from a secrets file) -> l2tp-lns with ``[radius] acct_servers`` only ->
FreeRADIUS's ``detail`` file (tests/freeradius.py, on 127.0.0.1 of the root namespace:
the LNS runs there with ``--netns``, its L2TP and PPP in the test namespace).

One pass with three sessions: the Starts arrive (Acct-Authentic Local: a secrets file
authenticated them); ``l2tp ctl close session`` on the LNS ends one (Admin-Reset, noted
before the CDN); the same on the LAC ends another (the peer's CDN, Result Code 3:
Admin-Reset, noted from the runtime's SessionClosed before the link's release reads it;
a late note would say NAS-Request, a lost race with the LAC's LCP User-Request); SIGTERM
ends the daemon and the last (Admin-Reboot), its Stop acknowledged within the shutdown
and nothing left in the spool; ``l2tp ctl status`` showed the accounting counters.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from l2tp.cli.main import main
from tests.freeradius import FreeRadius
from tests.helpers import wait_until
from tests.kernel.conftest import VethPair
from tests.kernel.daemons import DaemonProcess, clean_up

SECRETS = 'alice * "correct horse"\n'


class Lns(DaemonProcess):
    MODULE = "l2tp.daemons.lns"
    FORK = True


class Lac(DaemonProcess):
    MODULE = "l2tp.daemons.kl2tpd"
    FORK = True


@pytest.fixture
def radius(tmp_path: Path) -> Iterator[FreeRadius]:
    server = FreeRadius(tmp_path / "freeradius")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def ctl(capsys: pytest.CaptureFixture[str], daemon: DaemonProcess, *args: str) -> Any:
    capsys.readouterr()
    status = main(["ctl", "--socket", str(daemon.path.with_suffix(".sock")), *args, "--json"])
    out, err = capsys.readouterr()
    assert status == 0, err
    return json.loads(out)


def test_lns_accounts_sessions_and_says_why_they_ended(
    veth_pair: VethPair,
    radius: FreeRadius,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pair = veth_pair
    secrets = tmp_path / "chap-secrets"
    secrets.write_text(SECRETS)
    spool = tmp_path / "acct.spool"
    lns = Lns(
        pair.ns_a,
        f"""
[listener.main]
listen = "{pair.a4}:1701"
ppp = "builtin"
[listener.main.builtin_ppp]
auth = ["chap-md5"]
secrets = "{secrets}"
local_address = "10.73.0.1"
address_pool = "10.73.0.0/29"

[radius]
acct_servers = [{{ address = "127.0.0.1:{radius.acct_port}", secret = "{radius.secret}" }}]
spool = "{spool}"
nas_identifier = "lns-daemon-test"
timeout = 1000
""",
        tmp_path,
        "lns",
        netns_flag=True,  # the daemon in the root namespace, next to FreeRADIUS
    )
    sessions = "".join(
        f"""
[tunnel.t1.session.s{n}]
ppp = "builtin"
[tunnel.t1.session.s{n}.builtin_ppp]
auth = ["chap-md5"]
user = "alice"
password = "correct horse"
"""
        for n in (1, 2, 3)
    )
    lac = Lac(pair.ns_b, f'[tunnel.t1]\npeer = "{pair.a4}:1701"\n{sessions}', tmp_path, "lac")
    started = [lns, lac]
    try:
        lns.start()
        lac.start()

        def of(status: str) -> list[dict[str, str]]:
            return [r for r in radius.detail_records() if r.get("Acct-Status-Type") == status]

        wait_until(lambda: len(of("Start")) == 3, 90, "three accounting Starts")
        first, second, third = of("Start")
        assert {r["Acct-Authentic"] for r in (first, second, third)} == {"Local"}
        assert first["NAS-Identifier"] == "lns-daemon-test"
        assert len({r["Acct-Session-Id"] for r in (first, second, third)}) == 3
        status = ctl(capsys, lns, "status")
        assert status["radius"]["accounting"]["accounting_starts"] == 3
        assert status["radius"]["accounting"]["accounting_sessions"] == 3

        tunnel_id, session_id = first["Acct-Tunnel-Connection"].split("/")
        ctl(capsys, lns, "close", "session", tunnel_id, session_id)
        wait_until(lambda: len(of("Stop")) == 1, 30, "the first Stop")
        (stop,) = of("Stop")
        assert stop["Acct-Session-Id"] == first["Acct-Session-Id"]
        assert stop["Acct-Terminate-Cause"] == "Admin-Reset"

        # The LAC clears the third call (its CDN, Result Code 3).
        _, third_session = third["Acct-Tunnel-Connection"].split("/")
        (call,) = [
            r for r in ctl(capsys, lac, "sessions") if str(r["peer_session_id"]) == third_session
        ]
        ctl(capsys, lac, "close", "session", str(call["tunnel_id"]), str(call["session_id"]))
        wait_until(lambda: len(of("Stop")) == 2, 30, "the second Stop")
        stop = of("Stop")[1]
        assert stop["Acct-Session-Id"] == third["Acct-Session-Id"]
        assert stop["Acct-Terminate-Cause"] == "Admin-Reset", lns.tail()

        assert lns.stop(timeout=30) == 0, lns.tail()
        stops = of("Stop")
        assert len(stops) == 3, f"{stops}\n{lns.tail()}"
        assert stops[2]["Acct-Session-Id"] == second["Acct-Session-Id"]
        assert stops[2]["Acct-Terminate-Cause"] == "Admin-Reboot"
        assert int(stops[2]["Acct-Session-Time"]) >= 0
        # Everything acknowledged: nothing left in the spool for the next start.
        assert "kept in the spool" not in lns.output(), lns.tail()
    finally:
        clean_up(started, ())
