"""``l2tp show``: records, tables, filters and error messages from hand-built infos (no root)."""

from __future__ import annotations

import argparse
import errno
import io
import json
from ipaddress import ip_address
from pathlib import Path

import pytest

from l2tp.cli import show
from l2tp.cli.main import main
from l2tp.kernel import (
    EncapType,
    ModuleNotLoaded,
    NotPermitted,
    PseudowireType,
    SessionInfo,
    Stats,
    TunnelInfo,
)

STATS = Stats(
    tx_packets=10,
    tx_bytes=1234,
    tx_errors=1,
    rx_packets=9,
    rx_bytes=987654,
    rx_seq_discards=2,
    rx_oos_packets=3,
    rx_errors=4,
)

UDP4 = TunnelInfo(
    tunnel_id=501,
    peer_tunnel_id=601,
    version=3,
    encap=EncapType.UDP,
    local=ip_address("10.0.0.1"),
    peer=ip_address("10.0.0.2"),
    local_port=1701,
    peer_port=1702,
    udp_csum=True,
    stats=STATS,
)
UDP6 = TunnelInfo(
    tunnel_id=7,
    peer_tunnel_id=8,
    version=2,
    encap=EncapType.UDP,
    local=ip_address("2001:db8::1"),
    peer=ip_address("2001:db8::2"),
    local_port=1701,
    peer_port=1701,
    udp6_zero_csum_tx=True,
)
IP6 = TunnelInfo(
    tunnel_id=4000000000,
    peer_tunnel_id=3,
    version=3,
    encap=EncapType.IP,
    local=ip_address("2001:db8::1"),
    peer=ip_address("2001:db8::2"),
)

ETH = SessionInfo(
    tunnel_id=501,
    session_id=511,
    peer_tunnel_id=601,
    peer_session_id=611,
    pw_type=PseudowireType.ETH,
    ifname="l2tpeth0",
    cookie=bytes.fromhex("0102030405060708"),
    peer_cookie=bytes.fromhex("a1a2a3a4"),
    send_seq=True,
    recv_seq=True,
    reorder_timeout_ms=250,
    lns_mode=True,
    stats=STATS,
)
PPP = SessionInfo(
    tunnel_id=7,
    session_id=70,
    peer_tunnel_id=8,
    peer_session_id=80,
    pw_type=PseudowireType.PPP,
    recv_seq=True,
)


# --- JSON records ----------------------------------------------------------------------


def test_tunnel_record_udp4_has_iproute2_keys_then_extras() -> None:
    assert show.tunnel_record(UDP4) == {
        "tunnel_id": 501,
        "encap": "UDP",
        "local": "10.0.0.1",
        "peer": "10.0.0.2",
        "peer_tunnel": 601,
        "local_port": 1701,
        "peer_port": 1702,
        "checksum": True,
        "version": 3,
        "using_ipsec": False,
    }


def test_tunnel_record_ipv6_checksums_are_per_direction() -> None:
    record = show.tunnel_record(UDP6)
    assert (record["checksum_tx"], record["checksum_rx"]) == (False, True)
    assert "checksum" not in record and record["version"] == 2


def test_tunnel_record_ip_encap_has_no_ports_or_checksum() -> None:
    record = show.tunnel_record(IP6)
    assert record["encap"] == "IP" and record["tunnel_id"] == 4000000000
    assert not {"local_port", "peer_port", "checksum", "checksum_tx"} & set(record)


def test_tunnel_record_without_reported_csum_omits_checksum() -> None:
    bare = TunnelInfo(tunnel_id=1, peer_tunnel_id=2, version=3, encap=EncapType.UDP)
    record = show.tunnel_record(bare)
    assert "checksum" not in record and "local" not in record and "local_port" not in record


def test_stats_only_on_request_with_all_eight_counters() -> None:
    assert "stats" not in show.tunnel_record(UDP4)
    assert show.tunnel_record(UDP4, stats=True)["stats"] == {
        "tx_packets": 10,
        "tx_bytes": 1234,
        "tx_errors": 1,
        "rx_packets": 9,
        "rx_bytes": 987654,
        "rx_seq_discards": 2,
        "rx_oos_packets": 3,
        "rx_errors": 4,
    }
    assert show.session_record(ETH, stats=True)["stats"]["rx_oos_packets"] == 3


def test_session_record_like_iproute2() -> None:
    assert show.session_record(ETH) == {
        "session_id": 511,
        "tunnel_id": 501,
        "peer_session_id": 611,
        "peer_tunnel_id": 601,
        "interface": "l2tpeth0",
        "cookie": "0102030405060708",
        "peer_cookie": "a1a2a3a4",
        "reorder_timeout": 250,
        "send_seq": None,
        "recv_seq": None,
        "pseudowire": "eth",
        "lns_mode": True,
        "using_ipsec": False,
    }


def test_session_record_omits_what_is_unset() -> None:
    record = show.session_record(PPP)
    assert record == {
        "session_id": 70,
        "tunnel_id": 7,
        "peer_session_id": 80,
        "peer_tunnel_id": 8,
        "recv_seq": None,
        "pseudowire": "ppp",
        "lns_mode": False,
        "using_ipsec": False,
    }
    assert json.loads(json.dumps(record))["recv_seq"] is None


@pytest.mark.parametrize(
    ("pw_type", "name"),
    [
        (PseudowireType.ETH, "eth"),
        (PseudowireType.ETH_VLAN, "eth_vlan"),
        (PseudowireType.PPP, "ppp"),
        (PseudowireType.PPP_AC, "pppac"),
        (PseudowireType.IP, "ip"),
        (0x1234, 0x1234),
    ],
)
def test_pseudowire_names(pw_type: int, name: str | int) -> None:
    assert show.pseudowire_name(pw_type) == name


# --- tables ----------------------------------------------------------------------------


def _columns(header: str) -> list[int]:
    """Start offsets of the header's words."""
    starts, previous = [], " "
    for i, char in enumerate(header):
        if char != " " and previous == " ":
            starts.append(i)
        previous = char
    return starts


def test_tunnel_table_is_aligned() -> None:
    text = show.tunnel_table([UDP4, UDP6, IP6])
    header, *rows = text.splitlines()
    assert header.split() == ["TUNNEL", "PEER-TUNNEL", "VER", "ENCAP", "LOCAL", "PEER", "CSUM"]
    assert rows[0].split() == ["501", "601", "v3", "udp", "10.0.0.1:1701", "10.0.0.2:1702", "on"]
    assert rows[1].split()[4:] == [
        "[2001:db8::1]:1701", "[2001:db8::2]:1701", "tx", "off,", "rx", "on",
    ]  # fmt: skip
    assert rows[2].split()[2:] == ["v3", "ip", "2001:db8::1", "2001:db8::2", "-"]
    # text columns start where their header starts; ID columns end where theirs ends
    starts = _columns(header)
    for row in rows:
        assert row[starts[2] : starts[2] + 2] in ("v2", "v3")
        assert row[starts[4] - 2 : starts[4]] == "  " and row[starts[4]] != " "
    width = len("PEER-TUNNEL")
    assert rows[0][starts[1] : starts[1] + width].strip() == "601"
    assert rows[0][starts[1] : starts[1] + width].endswith("601")
    assert text.endswith("\n") and not any(line.endswith(" ") for line in text.splitlines())


def test_tables_with_stats_right_align_counters() -> None:
    header, row = show.tunnel_table([UDP4], stats=True).splitlines()
    assert header.split()[-6:] == ["TX-PKTS", "TX-BYTES", "TX-ERR", "RX-PKTS", "RX-BYTES", "RX-ERR"]
    assert row.split()[-6:] == ["10", "1234", "1", "9", "987654", "4"]
    assert len(header) == len(row)  # the last column (RX-ERR) is right-aligned to its header
    header, row = show.session_table([ETH], stats=True).splitlines()
    assert row.split()[-6:] == ["10", "1234", "1", "9", "987654", "4"]


def test_session_table_rows() -> None:
    header, eth, ppp = show.session_table([ETH, PPP]).splitlines()
    assert header.split() == [
        "TUNNEL",
        "SESSION",
        "PEER-TUNNEL",
        "PEER-SESSION",
        "PW",
        "INTERFACE",
        "COOKIE",
        "PEER-COOKIE",
        "SEQ",
        "OPTIONS",
    ]
    assert eth.split() == [
        "501", "511", "601", "611", "eth", "l2tpeth0", "0102030405060708", "a1a2a3a4",
        "send,recv", "reorder=250ms", "lns",
    ]  # fmt: skip
    assert ppp.split() == ["7", "70", "8", "80", "ppp", "-", "-", "-", "recv", "-"]


def test_empty_table_is_just_the_header() -> None:
    assert show.tunnel_table([]).splitlines() == [show.tunnel_table([]).rstrip("\n")]
    assert show.session_table([]).startswith("TUNNEL")


@pytest.mark.parametrize(
    ("address", "port", "text"),
    [
        (ip_address("10.0.0.1"), 1701, "10.0.0.1:1701"),
        (ip_address("2001:db8::1"), 0, "[2001:db8::1]:0"),
        (ip_address("2001:db8::1"), None, "2001:db8::1"),
        (None, 1701, "-"),
    ],
)
def test_endpoint(address: object, port: int | None, text: str) -> None:
    assert show.endpoint(address, port) == text


# --- the command with a fake kernel ----------------------------------------------------


class FakeClient:
    def __init__(self, tunnels: list[TunnelInfo], sessions: list[SessionInfo]) -> None:
        self.tunnels, self.sessions, self.closed = tunnels, sessions, False

    def dump_tunnels(self) -> list[TunnelInfo]:
        return list(self.tunnels)

    def dump_sessions(self, tunnel_id: int | None = None) -> list[SessionInfo]:
        return list(self.sessions)

    def close(self) -> None:
        self.closed = True


def _args(what: str, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    show.register(parser.add_subparsers())
    return parser.parse_args(["show", what, *extra])


def _run(args: argparse.Namespace, factory: show.ClientFactory) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = show.show(args, out, err, factory)
    return status, out.getvalue(), err.getvalue()


def _fake(
    tunnels: list[TunnelInfo] | None = None, sessions: list[SessionInfo] | None = None
) -> show.ClientFactory:
    client = FakeClient(
        [UDP6, IP6, UDP4] if tunnels is None else tunnels,
        [PPP, ETH] if sessions is None else sessions,
    )
    return lambda netns: client


def test_show_sorts_and_prints_json() -> None:
    status, out, err = _run(_args("tunnel", "--json"), _fake())
    assert (status, err) == (0, "")
    assert [t["tunnel_id"] for t in json.loads(out)] == [7, 501, 4000000000]
    status, out, _ = _run(_args("session", "--json", "--stats"), _fake())
    assert [(s["tunnel_id"], s["session_id"]) for s in json.loads(out)] == [(7, 70), (501, 511)]
    assert all("stats" in s for s in json.loads(out))


def test_show_filters() -> None:
    status, out, _ = _run(_args("tunnel", "--json", "--tunnel-id", "501"), _fake())
    assert [t["tunnel_id"] for t in json.loads(out)] == [501]
    status, out, _ = _run(_args("session", "--json", "--tunnel-id", "7"), _fake())
    assert [s["session_id"] for s in json.loads(out)] == [70]
    status, out, _ = _run(_args("session", "--json", "--session-id", "511"), _fake())
    assert [s["session_id"] for s in json.loads(out)] == [511]
    status, out, _ = _run(_args("session", "--json", "--tunnel-id", "4000000000"), _fake())
    assert (status, json.loads(out)) == (0, [])  # a tunnel without sessions is not an error


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tunnel", "--tunnel-id", "9"], "l2tp show: tunnel 9 not found\n"),
        (["session", "--tunnel-id", "9"], "l2tp show: tunnel 9 not found\n"),
        (["session", "--session-id", "9"], "l2tp show: session 9 not found\n"),
        (
            ["session", "--tunnel-id", "7", "--session-id", "511"],
            "l2tp show: session 511 in tunnel 7 not found\n",
        ),
    ],
)
def test_missing_ids_exit_1(argv: list[str], message: str) -> None:
    assert _run(_args(*argv), _fake()) == (1, "", message)


def _raising(exc: BaseException) -> show.ClientFactory:
    def factory(netns: str | None) -> show.ShowClient:
        raise exc

    return factory


@pytest.mark.parametrize(
    ("exc", "status", "message"),
    [
        (
            ModuleNotLoaded(errno.ENOENT, "l2tp_netlink", "resolve"),
            1,
            "l2tp show: this kernel has no L2TP netlink support: "
            "load it with `modprobe l2tp_netlink` (as root)",
        ),
        (
            NotPermitted(errno.EPERM, "dump tunnels: CAP_NET_ADMIN is required"),
            1,
            "l2tp show: permission denied: CAP_NET_ADMIN is required (run as root)",
        ),
        (
            PermissionError(errno.EPERM, "setns(x): Operation not permitted"),
            1,
            "l2tp show: permission denied: CAP_NET_ADMIN is required (run as root)",
        ),
        (OSError(errno.ENOBUFS, "No buffer space"), 1, "l2tp show: No buffer space"),
        (ImportError("No module named 'pyroute2'"), 1, "l2tp show: kernel access needs pyroute2"),
    ],
)
def test_errors_are_one_line(exc: BaseException, status: int, message: str) -> None:
    got_status, out, err = _run(_args("tunnel"), _raising(exc))
    assert (got_status, out) == (status, "")
    assert err.startswith(message) and err.count("\n") == 1


def test_namespace_errors_exit_2(tmp_path: Path) -> None:
    called = []

    def factory(netns: str | None) -> show.ShowClient:
        called.append(netns)
        raise OSError(errno.EINVAL, "setns: Invalid argument")

    status, _, err = _run(_args("tunnel", "--netns", "no-such-ns-here"), factory)
    assert status == 2 and not called
    assert err == (
        "l2tp show: network namespace 'no-such-ns-here' not found: "
        "no /run/netns/no-such-ns-here (see `ip netns list`)\n"
    )
    not_a_namespace = tmp_path / "file"
    not_a_namespace.write_text("")
    status, _, err = _run(_args("tunnel", "--netns", str(not_a_namespace)), factory)
    assert (status, err) == (2, f"l2tp show: '{not_a_namespace}' is not a network namespace\n")
    assert called == [str(not_a_namespace)]


def test_netns_is_passed_and_client_closed(tmp_path: Path) -> None:
    client = FakeClient([UDP4], [])
    seen: list[str | None] = []

    def factory(netns: str | None) -> show.ShowClient:
        seen.append(netns)
        return client

    namespace = tmp_path / "ns"
    namespace.write_text("")
    assert _run(_args("tunnel", "--netns", str(namespace)), factory)[0] == 0
    assert seen == [str(namespace)] and client.closed


def test_command_line_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "tunnel", "--session-id", "5"]) == 2
    assert capsys.readouterr().err == "l2tp show: --session-id applies to `show session` only\n"
    for bad in (["show", "tunnel", "--tunnel-id", "0"], ["show", "pseudowire"]):
        with pytest.raises(SystemExit) as exit_info:
            main(bad)
        assert exit_info.value.code == 2


def test_broken_pipe_is_quiet() -> None:
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    assert show.write_output(Closed(), "x\n") == 0
