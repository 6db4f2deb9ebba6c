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
    sids = draw(st.lists(st.integers(1, 65535), unique=True, max_size=3))
    for index, sid in enumerate(sids):
        opts = draw(st.lists(strings, max_size=3))
        sessions.append(
            SessionConfig(
                name=f"s{index}",
                pseudowire=Pseudowire.PPP,
                sid=sid if draw(st.booleans()) else None,
                seqnum=draw(st.booleans()),
                reorder_timeout=draw(ms),
                pppd_args=draw(st.one_of(st.none(), strings)),
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


@st.composite
def configs(draw: st.DrawFn) -> Config:
    tunnel_names = draw(st.lists(names, unique=True, min_size=1, max_size=4))
    tids = draw(st.lists(st.integers(1, 65535), unique=True, min_size=4, max_size=4))
    tunnels = []
    for index, name in enumerate(tunnel_names):
        if draw(st.booleans()):
            tid = tids[index] if draw(st.booleans()) else None
            tunnels.append(draw(v2_tunnel(name, tid)))
        else:
            tunnels.append(draw(v3_static_tunnel(name, tids[index], f"l2t{index}x")))
    return Config(file="rt.toml", daemon=None, tunnels=tuple(tunnels))


@settings(max_examples=150, deadline=None)
@given(configs())
def test_dump_then_load_is_identity(config: Config) -> None:
    text = dump_toml(config)
    assert loads(text, file="rt.toml", hostname="unused", resolver=None) == config
