"""From the TOML model (:mod:`l2tp.config`) to the control plane's policy objects.

Durations in the model are seconds already. ``hello_timeout = 0`` means no
HELLO; go-l2tp's ``retry_timeout`` is the first retransmission timeout, which
then doubles up to 8 s (RFC 2661 5.8) or ``retry_timeout`` if that is longer.
"""

from __future__ import annotations

from l2tp import config as cfg
from l2tp.protocol.constants import FramingBits
from l2tp.protocol.events import CallParams, Role
from l2tp.protocol.listener import ListenerConfig
from l2tp.protocol.transport import TransportConfig
from l2tp.protocol.tunnel import TunnelConfig

from .backend import PppOptions
from .control import ListenOptions

_FRAMING = {cfg.FramingCap.SYNC: FramingBits.SYNC, cfg.FramingCap.ASYNC: FramingBits.ASYNC}


def _framing(caps: tuple[cfg.FramingCap, ...]) -> FramingBits:
    bits = FramingBits(0)
    for cap in caps:
        bits |= _FRAMING[cap]
    return bits


def _transport(
    retry_timeout: float, max_retries: int, window_size: int, hello: float
) -> TransportConfig:
    return TransportConfig(
        initial_timeout=retry_timeout,
        max_timeout=max(8.0, retry_timeout),
        max_retries=max_retries,
        receive_window=min(window_size, 0x7FFF),
        hello_interval=hello or None,
    )


def tunnel_config(t: cfg.TunnelConfig, *, role: Role = Role.LAC) -> TunnelConfig:
    """A ``[tunnel.T]`` table as the initiator's :class:`TunnelConfig`."""
    secret = t.secret.encode() if t.secret else None
    framing = _framing(t.framing_caps)
    seq = any(s.seqnum for s in t.sessions)
    return TunnelConfig(
        role=role,
        host_name=t.host_name or "python-l2tp",
        secret=secret,
        challenge=secret is not None,
        hide_avps=bool(t.hide_avps and secret),
        framing_capabilities=framing,
        call_params=CallParams(sequencing_required=seq),
        transport=_transport(t.retry_timeout, t.max_retries, t.window_size, t.hello_timeout),
    )


def session_call(s: cfg.SessionConfig) -> CallParams:
    return CallParams(sequencing_required=s.seqnum)


def session_ppp(s: cfg.SessionConfig) -> PppOptions:
    return PppOptions(
        name=s.name,
        pppd_args=s.pppd_args,
        pppd_options=s.pppd_options,
        mtu=s.mtu,
        interface_name=s.interface_name,
    )


def listener_config(lc: cfg.ListenerConfig) -> ListenerConfig:
    """A ``[listener.L]`` table as the sans-IO :class:`ListenerConfig`."""
    secret = lc.secret.encode() if lc.secret else None
    tunnel = TunnelConfig(
        role=Role.LNS,
        host_name=lc.host_name or "python-l2tp",
        secret=secret,
        challenge=secret is not None,
        hide_avps=bool(lc.hide_avps and secret),
        framing_capabilities=_framing(lc.framing_caps),
        # Session limits are the runtime's admission check (ListenOptions), so a
        # reload changes them for existing tunnels too; the ID pool is not capped.
        max_sessions=0xFFFF,
        auto_accept=False,
        call_params=CallParams(sequencing_required=lc.seqnum),
        transport=_transport(lc.retry_timeout, lc.max_retries, lc.window_size, lc.hello_timeout),
    )
    return ListenerConfig(tunnel=tunnel, max_tunnels=min(lc.max_tunnels or 0xFFFF, 0xFFFF))


def listen_options(lc: cfg.ListenerConfig) -> ListenOptions:
    return ListenOptions(
        name=lc.name,
        max_sessions=lc.max_sessions,
        max_sessions_per_tunnel=lc.max_sessions_per_tunnel,
        allowed_peers=lc.allowed_peers,
        seqnum=lc.seqnum,
        ppp=PppOptions(
            name=lc.name, pppd_args=lc.pppd_args, pppd_options=lc.pppd_options, mtu=lc.mtu
        ),
    )
