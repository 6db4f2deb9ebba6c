"""Pure parts of the asyncio control plane: header peeking, config mapping, admission."""

from __future__ import annotations

import ipaddress
import struct

from l2tp import config as cfg
from l2tp.daemons.configmap import listen_options, listener_config, session_ppp, tunnel_config
from l2tp.protocol.constants import FramingBits
from l2tp.protocol.events import Role
from l2tp.protocol.header import build_control_message
from l2tp.runtime.endpoints import listener_config as _listener_config
from l2tp.runtime.sockets import address_allowed as _allowed
from l2tp.runtime.sockets import tunnel_id_of as _tunnel_id_of


def test_tunnel_id_of_control_and_data() -> None:
    msg = build_control_message(version=2, tunnel_id=4321, session_id=7, ns=0, nr=0, body=b"")
    assert _tunnel_id_of(msg) == 4321
    data = struct.pack("!HHH", 0x0002, 99, 1) + b"\x00" * 8  # T bit clear: data message
    assert _tunnel_id_of(data) is None
    assert _tunnel_id_of(b"\xc8\x02") is None


def test_allowed_peers() -> None:
    nets = (ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8::/32"))
    assert _allowed("192.0.2.9", nets)
    assert _allowed("2001:db8::1", nets)
    assert not _allowed("198.51.100.1", nets)
    assert not _allowed("not-an-ip", nets)


def test_listener_config_forces_admission() -> None:
    from l2tp.protocol.listener import ListenerConfig
    from l2tp.protocol.tunnel import TunnelConfig

    c = _listener_config(ListenerConfig(tunnel=TunnelConfig(role=Role.LAC)))
    assert c.tunnel.role is Role.LNS and not c.tunnel.auto_accept


def test_config_mapping() -> None:
    config = cfg.loads(
        '[tunnel.t]\npeer = "127.0.0.1:1701"\nsecret = "s"\nhide_avps = true\n'
        "retry_timeout = 1500\nmax_retries = 3\nwindow_size = 8\nhello_timeout = 60000\n"
        'framing_caps = ["sync"]\n'
        '[tunnel.t.session.s]\npseudowire = "ppp"\npppd_options = ["noauth"]\n',
        daemon=cfg.Daemon.KL2TPD,
    )
    t = tunnel_config(config.tunnels[0])
    assert t.role is Role.LAC and t.secret == b"s" and t.hide_avps and t.challenge
    assert t.framing_capabilities == FramingBits.SYNC
    assert t.transport.initial_timeout == 1.5 and t.transport.max_retries == 3
    assert t.transport.receive_window == 8 and t.transport.hello_interval == 60.0
    ppp = session_ppp(config.tunnels[0].sessions[0])
    assert ppp.name == "s" and ppp.pppd_options == ("noauth",)

    lns = cfg.loads(
        '[listener.l]\nlisten = "127.0.0.1:1701"\nmax_tunnels = 3\nmax_sessions = 9\n'
        'max_sessions_per_tunnel = 4\nallowed_peers = ["192.0.2.0/24"]\n',
        daemon=cfg.Daemon.LNS,
    )
    lc = lns.listeners[0]
    pc = listener_config(lc)
    assert pc.max_tunnels == 3 and pc.tunnel.role is Role.LNS and not pc.tunnel.auto_accept
    assert pc.tunnel.secret is None and not pc.tunnel.challenge
    opts = listen_options(lc)
    assert (opts.max_sessions, opts.max_sessions_per_tunnel) == (9, 4)
    assert opts.allowed_peers == (ipaddress.ip_network("192.0.2.0/24"),)
