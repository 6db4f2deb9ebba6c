"""Operating our daemons on a real kernel (issue 15): ``l2tp ctl`` against the kernel's own
view, ``close session`` reaching a real peer, and ``session_up`` hooks seeing the real
interface names.

One set-up for the module (process starts cost seconds in the emulated VM):

* namespace A: ``l2tp-lns`` (L2TPv2, pppd) and ``l2tpd`` listening (L2TPv3, Ethernet);
* namespace B: xl2tpd as the LNS's LAC (a call with its own pppd), and ``l2tpd``
  dialling A's ``l2tpd`` with one Ethernet pseudowire the kernel names (``l2tpethN``).

Every daemon of ours has a ``session_up`` hook that writes its ``L2TP_*`` environment to
a file. The tests run in file order; the last one closes the PPP call.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from l2tp.cli.main import main
from tests.helpers import require_tool
from tests.kernel.conftest import VethPair, ip_json
from tests.kernel.daemons import DaemonProcess, ManagedProcess
from tests.kernel.test_l2tpv2_pppd import Lns
from tests.kernel.xl2tpd_harness import (
    Xl2tpd,
    kill_pids,
    lac_config,
    pids_matching,
    ppp_addresses,
    wait_for,
)

pytestmark = pytest.mark.kernel


class L2tpd(DaemonProcess):
    """l2tpd (the harness's default module)."""

    FORK = True


def _hooks(out: Path) -> str:
    """A ``[hooks]`` table whose session_up writes its L2TP_* environment to OUT/SID.env."""
    out.mkdir(parents=True, exist_ok=True)
    script = (
        f'env | grep "^L2TP_" > "{out}/$L2TP_SESSION_ID.tmp"'
        f' && mv "{out}/$L2TP_SESSION_ID.tmp" "{out}/$L2TP_SESSION_ID.env"'
    )
    return f"\n[hooks]\nsession_up = {json.dumps(['/bin/sh', '-c', script])}\n"


def hook_records(out: Path) -> dict[int, dict[str, str]]:
    """The environment each session_up hook saw, by local session ID."""
    records = {}
    for path in out.glob("*.env"):
        lines = path.read_text().splitlines()
        records[int(path.stem)] = dict(line.split("=", 1) for line in lines if "=" in line)
    return records


@dataclass
class Ops:
    pair: VethPair
    lns: Lns
    lns_hooks: Path
    l2tpd_a: L2tpd
    l2tpd_a_hooks: Path
    l2tpd_b: L2tpd
    l2tpd_b_hooks: Path
    xlac: Xl2tpd

    def logs(self) -> str:
        procs: list[ManagedProcess] = [self.lns, self.l2tpd_a, self.l2tpd_b, self.xlac]
        return "\n".join(f"--- {p.label}\n{p.output()}" for p in procs)

    def wait(self, predicate: Any, timeout: float, what: str) -> None:
        try:
            wait_for(predicate, timeout, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None


@pytest.fixture(scope="module")
def ops(veth_pair: VethPair, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    require_tool("pppd")
    require_tool("xl2tpd")
    pair = veth_pair
    work = tmp_path_factory.mktemp("ops")
    lns_hooks, a_hooks, b_hooks = work / "lns-hooks", work / "l2tpd-a-hooks", work / "l2tpd-b-hooks"
    lns_conf = f"""
[listener.main]
listen = "{pair.a4}:1701"
version = "l2tpv2"
pppd_options = ["noauth", "nodefaultroute", "lcp-echo-interval", "0", "10.63.0.1:10.63.0.2"]
{_hooks(lns_hooks)}"""
    a_conf = f"""
[listener.v3]
listen = "{pair.a4}:1702"
pseudowire = "eth"
{_hooks(a_hooks)}"""
    b_conf = f"""
[tunnel.eth]
peer = "{pair.a4}:1702"
retry_timeout = 500

[tunnel.eth.session.s1]
pseudowire = "eth"
{_hooks(b_hooks)}"""
    started: list[ManagedProcess] = []
    try:
        lns = Lns(pair.ns_a, lns_conf, work, "lns")
        l2tpd_a = L2tpd(pair.ns_a, a_conf, work, "l2tpd-a")
        l2tpd_b = L2tpd(pair.ns_b, b_conf, work, "l2tpd-b")
        xlac = Xl2tpd(
            pair.ns_b,
            work,
            "xlac",
            lac_config(
                listen=pair.b4,
                name="uplink",
                lns=pair.a4,
                hostname="xlac",
                pppoptfile=work / "xlac.ppp-options",
            ),
        )
        # Everything starts at once: a Python daemon takes seconds to start in the VM (an
        # SCCRQ sent before its listener is up is retransmitted); xl2tpd dials once the
        # LNS is ready.
        started += [lns, l2tpd_a, l2tpd_b, xlac]
        for daemon in (lns, l2tpd_a, l2tpd_b):
            daemon.start(wait_ready=False)
        xlac.start()
        lns.wait_ready(90)
        xlac.control("c uplink")
        for daemon in (l2tpd_a, l2tpd_b):
            daemon.wait_ready(90)
        ops = Ops(pair, lns, lns_hooks, l2tpd_a, a_hooks, l2tpd_b, b_hooks, xlac)
        ops.wait(lambda: bool(ppp_addresses(pair.ns_b)), 60, "xl2tpd's PPP to be up")
        for out in (lns_hooks, a_hooks, b_hooks):
            ops.wait(lambda o=out: len(hook_records(o)) == 1, 60, f"a session_up hook in {out}")
        yield ops
    finally:
        for proc in reversed(started):
            if proc.proc is None:
                continue
            if isinstance(proc, Xl2tpd):
                proc.stop()
            elif isinstance(proc, DaemonProcess):
                proc.stop(raise_on_timeout=False)
        kill_pids(pids_matching(["pppd", "pppol2tp"]))


def l2tp(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    """``l2tp ARGS`` in this process; its JSON output (status 0 required)."""
    capsys.readouterr()
    status = main(list(args))
    out, err = capsys.readouterr()
    assert status == 0, err
    return json.loads(out)


def ctl_sessions(capsys: pytest.CaptureFixture[str], daemon: DaemonProcess) -> list[Any]:
    socket = str(daemon.path.with_suffix(".sock"))
    records: list[Any] = l2tp(capsys, "ctl", "--socket", socket, "sessions", "--json")
    return records


def kernel_sessions(ns: str) -> dict[tuple[int, int], dict[str, Any]]:
    (sessions,) = ip_json(["l2tp show session"], netns=ns)
    return {(int(s["tunnel_id"]), int(s["session_id"])): s for s in sessions}


def link_type(ns: str, ifname: str) -> str | None:
    done = subprocess.run(
        ["ip", "-n", ns, "-j", "link", "show", "dev", ifname], capture_output=True, text=True
    )
    if done.returncode != 0:
        return None
    (link,) = json.loads(done.stdout)
    return str(link.get("link_type"))


def test_ctl_sessions_agree_with_l2tp_show(ops: Ops, capsys: pytest.CaptureFixture[str]) -> None:
    """IDs and interface of every session of ours, as ``l2tp show session`` sees them."""
    for daemon, ns in (
        (ops.lns, ops.pair.ns_a),
        (ops.l2tpd_a, ops.pair.ns_a),
        (ops.l2tpd_b, ops.pair.ns_b),
    ):
        ours = ctl_sessions(capsys, daemon)
        shown = l2tp(capsys, "show", "session", "--json", "--netns", ns)
        kernel = {(s["tunnel_id"], s["session_id"]): s for s in shown}
        assert len(ours) == 1, ours
        for record in ours:
            k = kernel[(record["tunnel_id"], record["session_id"])]
            assert (k["peer_tunnel_id"], k["peer_session_id"]) == (
                record["peer_tunnel_id"],
                record["peer_session_id"],
            )
            if record["pseudowire"] == "eth":
                assert record["interface"].startswith("l2tpeth"), record
                assert k["interface"] == record["interface"]
                assert link_type(ns, record["interface"]) == "ether"
            else:  # Linux names no interface for a PPP session: pppd's unit is the one
                assert record["pseudowire"] == "ppp" and record["pppd_pid"] > 0, record
                assert record["interface"].startswith("ppp"), record
                assert k.get("interface") in (None, record["interface"])
                assert link_type(ns, record["interface"]) == "ppp"


def test_session_up_hooks_see_the_real_interface_names(
    ops: Ops, capsys: pytest.CaptureFixture[str]
) -> None:
    kernel_a, kernel_b = kernel_sessions(ops.pair.ns_a), kernel_sessions(ops.pair.ns_b)
    cases = (
        (ops.lns, ops.lns_hooks, ops.pair.ns_a, "ppp"),
        (ops.l2tpd_a, ops.l2tpd_a_hooks, ops.pair.ns_a, "l2tpeth"),
        (ops.l2tpd_b, ops.l2tpd_b_hooks, ops.pair.ns_b, "l2tpeth"),
    )
    names = set()
    for daemon, out, ns, prefix in cases:
        ((sid, env),) = hook_records(out).items()
        (record,) = ctl_sessions(capsys, daemon)
        assert (int(env["L2TP_TUNNEL_ID"]), sid) == (record["tunnel_id"], record["session_id"])
        name = env["L2TP_INTERFACE"]
        assert name.startswith(prefix) and name[len(prefix) :].isdigit(), env
        assert name == record["interface"]
        assert link_type(ns, name) == ("ppp" if prefix == "ppp" else "ether")
        if prefix == "l2tpeth":
            kernel = kernel_a if ns == ops.pair.ns_a else kernel_b
            assert kernel[(record["tunnel_id"], sid)]["interface"] == name
        names.add((ns, name))
    assert len(names) == 3


def test_ctl_close_session_makes_xl2tpd_hang_up_its_call_and_pppd(
    ops: Ops, capsys: pytest.CaptureFixture[str]
) -> None:
    (record,) = ctl_sessions(capsys, ops.lns)
    tid, sid = record["tunnel_id"], record["session_id"]
    peer = (record["peer_tunnel_id"], record["peer_session_id"])
    our_pppd = record["pppd_pid"]
    their_pppd = ops.xlac.pppd_pids()
    assert our_pppd > 0 and their_pppd, ops.logs()
    assert (tid, sid) in kernel_sessions(ops.pair.ns_a)
    assert peer in kernel_sessions(ops.pair.ns_b)

    socket = str(ops.lns.path.with_suffix(".sock"))
    result = l2tp(
        capsys, "ctl", "--socket", socket, "close", "session", str(tid), str(sid), "--json"
    )
    assert result == {"tunnel_id": tid, "session_id": sid, "released": True}

    ops.wait(lambda: not ops.xlac.pppd_pids(), 30, "xl2tpd's pppd to exit")
    ops.wait(lambda: not os.path.exists(f"/proc/{our_pppd}"), 30, "our pppd to exit")
    ops.wait(lambda: peer not in kernel_sessions(ops.pair.ns_b), 30, "xl2tpd's kernel session")
    assert (tid, sid) not in kernel_sessions(ops.pair.ns_a)
    assert not ppp_addresses(ops.pair.ns_b)
    assert ctl_sessions(capsys, ops.lns) == []
    # The Ethernet pseudowires of the other daemons are untouched.
    assert len(ctl_sessions(capsys, ops.l2tpd_b)) == 1
