"""Property: any valid configuration survives dump_toml -> loads unchanged."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from l2tp.config import (
    Config,
    Digest,
    Encap,
    Endpoint,
    FramingCap,
    L2SpecType,
    ListenerConfig,
    Pseudowire,
    SessionConfig,
    TunnelConfig,
    TunnelMode,
    Version,
    dump_toml,
    loads,
)

names = st.text(min_size=1, max_size=8)
ms = st.integers(0, 0xFFFFFFFF).map(lambda v: v / 1000)
positive_ms = st.integers(1, 0xFFFFFFFF).map(lambda v: v / 1000)
strings = st.text(min_size=1, max_size=12).filter(lambda s: s.strip() != "")
# pppd_args (a path) and pppd_options (argv words) refuse NUL and control characters.
words = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=12
).filter(lambda s: s.strip() != "")
ifnames = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=3, max_size=15
).filter(lambda s: s not in (".", ".."))
v4: st.SearchStrategy[ipaddress.IPv4Address | ipaddress.IPv6Address] = st.integers(
    1, 2**32 - 2
).map(ipaddress.IPv4Address)
v6: st.SearchStrategy[ipaddress.IPv4Address | ipaddress.IPv6Address] = st.integers(
    1, 2**128 - 1
).map(ipaddress.IPv6Address)
cookies = st.one_of(st.none(), st.binary(min_size=4, max_size=4), st.binary(min_size=8, max_size=8))
router_ids = st.one_of(st.none(), st.integers(1, 0xFFFFFFFF))
caps = st.sampled_from(
    [(FramingCap.SYNC,), (FramingCap.ASYNC,), (FramingCap.SYNC, FramingCap.ASYNC)]
)


def endpoint(
    address: st.SearchStrategy[ipaddress.IPv4Address | ipaddress.IPv6Address], low: int = 1
) -> st.SearchStrategy[Endpoint]:
    return st.builds(Endpoint, address=address, port=st.integers(low, 65535))


@st.composite
def v2_tunnel(draw: st.DrawFn, name: str, tid: int | None) -> TunnelConfig:
    secret = draw(st.one_of(st.none(), strings))
    redial = draw(st.booleans())
    sessions = []
    count = draw(st.integers(0, 3))
    for index in range(count):
        opts = draw(st.lists(words, max_size=3))
        sessions.append(
            SessionConfig(
                name=f"s{index}",
                pseudowire=Pseudowire.PPP,
                sid=None,  # a dynamic session's sid is ignored (a warning), not kept
                seqnum=draw(st.booleans()),
                reorder_timeout=draw(ms),
                pppd_args=draw(st.one_of(st.none(), words)),
                pppd_options=tuple(opts),
                mtu=draw(st.one_of(st.none(), st.integers(68, 65535))),
            )
        )
    return TunnelConfig(
        name=name,
        version=Version.L2TPV2,
        mode=TunnelMode.DYNAMIC,
        local=draw(st.one_of(st.none(), endpoint(v4, 0))),
        peer=draw(endpoint(v4)),
        tid=tid,
        window_size=draw(st.integers(1, 65535)),
        hello_timeout=draw(ms),
        retry_timeout=draw(positive_ms),
        max_retries=draw(st.integers(0, 65535)),
        host_name=draw(strings),
        framing_caps=draw(caps),
        secret=secret,
        hide_avps=draw(st.booleans()) if secret else False,
        redial=redial,
        redial_timeout=draw(positive_ms) if redial else 5.0,
        max_redials=draw(st.integers(0, 65535)) if redial else 0,
        sessions=tuple(sessions),
    )


@st.composite
def v3_static_tunnel(draw: st.DrawFn, name: str, tid: int, ifbase: str) -> TunnelConfig:
    family: st.SearchStrategy[ipaddress.IPv4Address | ipaddress.IPv6Address] = (
        v4 if draw(st.booleans()) else v6
    )
    hello = draw(ms)
    sessions = []
    sids = draw(st.lists(st.integers(1, 0xFFFFFFFF), unique=True, max_size=3))
    for index, sid in enumerate(sids):
        sessions.append(
            SessionConfig(
                name=f"s{index}",
                pseudowire=Pseudowire.ETH,
                sid=sid,
                psid=draw(st.integers(1, 0xFFFFFFFF)),
                cookie=draw(cookies),
                peer_cookie=draw(cookies),
                l2spec_type=draw(st.sampled_from(L2SpecType)),
                interface_name=f"{ifbase}{index}" if draw(st.booleans()) else None,
                bridge=draw(st.one_of(st.none(), ifnames)),
            )
        )
    return TunnelConfig(
        name=name,
        version=Version.L2TPV3,
        encap=draw(st.sampled_from(Encap)),
        mode=TunnelMode.QUIESCENT if hello > 0 else TunnelMode.STATIC,
        local=draw(endpoint(family, 0)),
        peer=draw(endpoint(family)),
        tid=tid,
        ptid=draw(st.integers(1, 0xFFFFFFFF)),
        hello_timeout=hello,
        max_retries=draw(st.integers(0, 65535)),
        host_name=draw(strings),
        digest=Digest.NONE,
        sessions=tuple(sessions),
    )


def _secret_and_digest(draw: st.DrawFn) -> tuple[str | None, Digest]:
    """An L2TPv3 secret always comes with a digest (md5 is the loader's default)."""
    secret = draw(st.one_of(st.none(), strings))
    digest = draw(st.sampled_from([Digest.MD5, Digest.SHA1])) if secret else Digest.NONE
    return secret, digest


def _sublayer(draw: st.DrawFn) -> tuple[L2SpecType, bool]:
    """l2spec_type and seqnum: L2TPv3 sequence numbers need the default sublayer."""
    l2spec = draw(st.sampled_from(L2SpecType))
    return l2spec, draw(st.booleans()) if l2spec is L2SpecType.DEFAULT else False


@st.composite
def v3_dynamic_tunnel(draw: st.DrawFn, name: str, tid: int | None, ifbase: str) -> TunnelConfig:
    family: st.SearchStrategy[ipaddress.IPv4Address | ipaddress.IPv6Address] = (
        v4 if draw(st.booleans()) else v6
    )
    secret, digest = _secret_and_digest(draw)
    redial = draw(st.booleans())
    first_ms = draw(st.integers(1, 0xFFFFFFFF)) if redial else 5000
    cap_ms = draw(st.integers(first_ms, 0xFFFFFFFF)) if redial else 60000
    sessions = []
    ids = draw(st.lists(strings, unique=True, max_size=3))
    for index, rid in enumerate(ids):
        name_s = f"s{index}"
        pw = draw(st.sampled_from([Pseudowire.ETH, Pseudowire.PPP]))
        l2spec, seqnum = _sublayer(draw)
        sessions.append(
            SessionConfig(
                name=name_s,
                pseudowire=pw,
                seqnum=seqnum,
                l2spec_type=l2spec,
                cookie_len=draw(st.sampled_from([0, 4, 8])),
                remote_end_id=name_s if draw(st.booleans()) and name_s not in ids else rid,
                interface_name=f"{ifbase}{index}" if draw(st.booleans()) else None,
                bridge=draw(st.one_of(st.none(), ifnames)) if pw is Pseudowire.ETH else None,
                pppd_options=tuple(draw(st.lists(words, max_size=2)))
                if pw is Pseudowire.PPP
                else (),
                mtu=draw(st.one_of(st.none(), st.integers(68, 65535))),
            )
        )
    return TunnelConfig(
        name=name,
        version=Version.L2TPV3,
        encap=draw(st.sampled_from(Encap)),
        mode=TunnelMode.DYNAMIC,
        local=draw(st.one_of(st.none(), endpoint(family, 0))),
        peer=draw(endpoint(family)),
        tid=tid,
        max_retries=draw(st.integers(0, 65535)),
        host_name=draw(strings),
        secret=secret,
        hide_avps=draw(st.booleans()) if secret else False,
        digest=digest,
        router_id=draw(router_ids),
        redial=redial,
        redial_timeout=first_ms / 1000,
        max_redial_timeout=cap_ms / 1000,
        max_redials=draw(st.integers(0, 65535)) if redial else 0,
        sessions=tuple(sessions),
    )


@st.composite
def v3_listener(draw: st.DrawFn, name: str, port: int, ifbase: str) -> ListenerConfig:
    """A listener with session tables, each filled in from the listener as the loader does."""
    secret, digest = _secret_and_digest(draw)
    pw = draw(st.sampled_from([Pseudowire.ETH, Pseudowire.PPP]))
    l2spec, seqnum = _sublayer(draw)
    mtu = draw(st.one_of(st.none(), st.integers(68, 65535)))
    bridge = draw(st.one_of(st.none(), ifnames)) if pw is Pseudowire.ETH else None
    pppd_args = draw(st.one_of(st.none(), words)) if pw is Pseudowire.PPP else None
    pppd_options = tuple(draw(st.lists(words, max_size=2))) if pw is Pseudowire.PPP else ()
    sessions = []
    ids = draw(st.lists(strings, unique=True, max_size=3))
    for index, rid in enumerate(ids):
        spw = draw(st.sampled_from([Pseudowire.ETH, Pseudowire.PPP]))
        s_l2spec, s_seqnum = _sublayer(draw)
        eth, ppp = spw is Pseudowire.ETH, spw is Pseudowire.PPP
        s_mtu = draw(st.one_of(st.none(), st.integers(68, 65535)))
        s_bridge = draw(st.one_of(st.none(), ifnames)) if eth else None
        s_args = draw(st.one_of(st.none(), words)) if ppp else None
        own_options = draw(st.one_of(st.none(), st.lists(words, max_size=2)))
        if own_options is None:  # left out: the listener's, when it fits
            s_options = pppd_options if ppp else ()
        else:
            s_options = tuple(own_options) if ppp else ()
        sessions.append(
            SessionConfig(
                name=f"s{index}",
                pseudowire=spw,
                remote_end_id=rid,
                seqnum=s_seqnum,
                l2spec_type=s_l2spec,
                cookie_len=draw(st.sampled_from([0, 4, 8])),
                interface_name=f"{ifbase}{index}" if draw(st.booleans()) else None,
                mtu=mtu if s_mtu is None else s_mtu,
                bridge=(bridge if s_bridge is None else s_bridge) if eth else None,
                pppd_args=(pppd_args if s_args is None else s_args) if ppp else None,
                pppd_options=s_options,
            )
        )
    pending = draw(st.integers(1, 0xFFFF))
    return ListenerConfig(
        name=name,
        listen=Endpoint(address=draw(st.sampled_from([v4, v6]).flatmap(lambda s: s)), port=port),
        version=Version.L2TPV3,
        encap=draw(st.sampled_from(Encap)),
        window_size=draw(st.integers(1, 65535)),
        hello_timeout=draw(ms),
        host_name=draw(strings),
        secret=secret,
        hide_avps=draw(st.booleans()) if secret else False,
        digest=digest,
        router_id=draw(router_ids),
        max_tunnels=draw(st.integers(0, 0xFFFFFFFF)),
        max_pending_tunnels=pending,
        max_pending_per_peer=draw(st.integers(1, pending)),
        pseudowire=pw,
        seqnum=seqnum,
        cookie_len=draw(st.sampled_from([0, 4, 8])),
        l2spec_type=l2spec,
        pppd_args=pppd_args,
        pppd_options=pppd_options,
        mtu=mtu,
        bridge=bridge,
        sessions=tuple(sessions),
    )


@st.composite
def configs(draw: st.DrawFn) -> Config:
    tunnel_names = draw(st.lists(names, unique=True, min_size=1, max_size=4))
    tids = draw(st.lists(st.integers(1, 65535), unique=True, min_size=4, max_size=4))
    tunnels = []
    for index, name in enumerate(tunnel_names):
        kind = draw(st.sampled_from(["v2", "v3-static", "v3-dynamic"]))
        if kind == "v2":
            tid = tids[index] if draw(st.booleans()) else None
            tunnels.append(draw(v2_tunnel(name, tid)))
        elif kind == "v3-static":
            tunnels.append(draw(v3_static_tunnel(name, tids[index], f"l2t{index}x")))
        else:
            tid = tids[index] if draw(st.booleans()) else None
            tunnels.append(draw(v3_dynamic_tunnel(name, tid, f"l2t{index}x")))
    listener_names = draw(st.lists(names, unique=True, max_size=2))
    listeners = [
        draw(v3_listener(name, 1701 + index, f"l2l{index}x"))
        for index, name in enumerate(listener_names)
    ]
    return Config(file="rt.toml", daemon=None, tunnels=tuple(tunnels), listeners=tuple(listeners))


@settings(max_examples=150, deadline=None)
@given(configs())
def test_dump_then_load_is_identity(config: Config) -> None:
    text = dump_toml(config)
    assert loads(text, file="rt.toml", hostname="unused", resolver=None) == config
