"""Read-only snapshots of a running daemon as plain dicts: the one source of ``l2tp ctl``
``status`` / ``tunnels`` / ``sessions`` / ``events`` (and of the metrics exporter to come).

Why one module: the control socket and a Prometheus exporter must agree on what a
tunnel's counters are (a test checks that they do), so both read these functions and
neither looks into the runtime by itself. Everything here only *reads* the runtime's
public handles (:class:`~l2tp.runtime.handles.TunnelHandle`,
:class:`~l2tp.runtime.session_handle.SessionHandle`) and the counters of the sans-IO
core; nothing here changes state or blocks. Times are the event loop's (monotonic)
clock, passed in as ``now``, so a snapshot is a pure function of the objects and
``now`` and unit tests need no clock.

The record layouts are part of the documented socket protocol (``docs/operations.md``):
fields may be added, never renamed or removed within protocol version 1.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from l2tp.addresses import address_text
from l2tp.kernel.constants import EncapType, PseudowireType
from l2tp.kernel.model import SessionInfo as KernelSessionInfo
from l2tp.protocol.constants import MessageType
from l2tp.protocol.events import (
    ControlEvent,
    Reason,
    SessionClosed,
    SessionEstablished,
    TunnelClosed,
    TunnelEstablished,
)
from l2tp.protocol.transport import Transport
from l2tp.runtime.endpoints import Listener
from l2tp.runtime.handles import SessionHandle, TunnelHandle

__all__ = [
    "control_counters",
    "event_record",
    "message_counts",
    "session_record",
    "state_counts",
    "transport_counters",
    "tunnel_record",
]

TunnelNames = Callable[[TunnelHandle], str | None]
"""The daemon's name for a tunnel (its ``[tunnel.NAME]`` or ``[listener.NAME]``)."""


def message_counts(by_type: Mapping[int, int]) -> dict[str, int]:
    """``{2: 1, 20: 3}`` -> ``{"SCCRP": 1, "ACK": 3}``; unknown types as their number."""
    out: dict[str, int] = {}
    for mtype, count in sorted(by_type.items()):
        try:
            name = MessageType(mtype).name
        except ValueError:
            name = str(mtype)
        out[name] = count
    return out


def _reason(reason: Reason | None) -> dict[str, Any] | None:
    if reason is None:
        return None
    return {"result": reason.result, "error": reason.error, "message": reason.message}


def _uptime(since: float | None, now: float) -> float | None:
    return None if since is None else round(max(0.0, now - since), 3)


def _address(address: tuple[Any, ...] | None) -> str | None:
    return address_text(address) if address else None


def transport_counters(
    transport: Transport,
    *,
    sent_by_type: Mapping[int, int] | None = None,
    received_by_type: Mapping[int, int] | None = None,
    digest_failures: int = 0,
    undecodable: int = 0,
) -> dict[str, Any]:
    """The control channel's health from a sans-IO transport (and, for a full tunnel,
    the per-type counts and faults its :class:`~l2tp.protocol.tunnel.Tunnel` counted).

    ``sent``/``received`` are by Message Type; ``sent`` counts first transmissions only
    (HELLOs the transport sends on its own included), ``retransmissions`` the rest.
    """
    xc = transport.counters
    sent = dict(sent_by_type or {})
    if xc.hello_sent:
        sent[MessageType.HELLO] = sent.get(MessageType.HELLO, 0) + xc.hello_sent
    rtt = xc.last_hello_rtt
    return {
        "sent": message_counts(sent),
        "received": message_counts(received_by_type or {}),
        "retransmissions": xc.retransmitted,
        "duplicates": xc.duplicates,
        "out_of_order": xc.out_of_order,
        "out_of_window": xc.out_of_window,
        "zlb_sent": xc.zlb_sent,
        "zlb_received": xc.zlb_received,
        "digest_failures": digest_failures,
        "malformed": xc.malformed + undecodable,
        "hello_sent": xc.hello_sent,
        "hello_acked": xc.hello_acked,
        "hello_rtt": None if rtt is None else round(rtt, 6),
    }


def control_counters(th: TunnelHandle) -> dict[str, Any]:
    """:func:`transport_counters` of a tunnel of the runtime."""
    tc = th.tunnel.counters
    return transport_counters(
        th.tunnel.transport,
        sent_by_type=tc.sent_by_type,
        received_by_type=tc.received_by_type,
        digest_failures=tc.bad_digest,
        undecodable=tc.undecodable + tc.invalid,
    )


def tunnel_record(th: TunnelHandle, now: float, name: str | None = None) -> dict[str, Any]:
    """One tunnel: identity, where it runs, its state and its control channel counters."""
    config = th.tunnel.config
    endpoint = th.endpoint
    encap = getattr(endpoint, "encap", EncapType.UDP)
    try:
        local = _address(th.local)
    except OSError:  # the socket is already closed (the tunnel is on its way out)
        local = None
    return {
        "tunnel_id": th.tunnel_id,
        "peer_tunnel_id": th.peer_tunnel_id,
        "name": name,
        "peer": _address(th.peer),
        "local": local,
        "role": th.role.value,
        "side": "responder" if isinstance(endpoint, Listener) else "initiator",
        "version": config.version,
        "encap": "ip" if encap is EncapType.IP else "udp",
        "state": th.state.value,
        "uptime": _uptime(th.established_at, now),
        "sessions": len(th.sessions),
        "counters": control_counters(th),
    }


def _pseudowire(th: TunnelHandle, sh: SessionHandle) -> str:
    if th.tunnel.config.version == 2:
        return "ppp"
    pw = sh.info.pseudowire_type if sh.info is not None else sh.params.pseudowire_type
    if pw is None:
        return "unknown"
    try:
        return PseudowireType(pw).name.lower().replace("_", "-")
    except ValueError:
        return str(pw)


def session_state(th: TunnelHandle, sh: SessionHandle) -> str:
    """The protocol's state of the call, ``closed`` once the sans-IO session is gone."""
    session = th.tunnel.sessions.get(sh.session_id)
    return session.state.value if session is not None else "closed"


def session_record(
    th: TunnelHandle,
    sh: SessionHandle,
    now: float,
    *,
    kernel: KernelSessionInfo | None = None,
    pid: int | None = None,
) -> dict[str, Any]:
    """One call. ``kernel``: the kernel's view (interface, data counters) when the data
    plane is Linux; ``pid``: the pppd serving it, if any.

    ``interface``: the kernel's name for an Ethernet pseudowire's device; for a PPP
    session (whose kernel session names no interface) the ``pppN`` its pppd or
    built-in PPP reported (:attr:`SessionHandle.interface`); else the configured
    ``interface_name``, or None."""
    interface = kernel.ifname if kernel is not None else None
    record: dict[str, Any] = {
        "tunnel_id": th.tunnel_id,
        "session_id": sh.session_id,
        "peer_tunnel_id": th.peer_tunnel_id,
        "peer_session_id": sh.peer_session_id,
        "state": session_state(th, sh),
        "pseudowire": _pseudowire(th, sh),
        "circuit": sh.circuit,
        "interface": interface or sh.interface or sh.options.interface_name,
        "pppd_pid": pid,
        "uptime": _uptime(sh.established_at, now),
        "kernel": None,
    }
    if kernel is not None:
        s = kernel.stats
        record["kernel"] = {
            "tx_packets": s.tx_packets,
            "tx_bytes": s.tx_bytes,
            "tx_errors": s.tx_errors,
            "rx_packets": s.rx_packets,
            "rx_bytes": s.rx_bytes,
            "rx_errors": s.rx_errors,
            "rx_seq_discards": s.rx_seq_discards,
            "rx_oos_packets": s.rx_oos_packets,
        }
    return record


def state_counts(tunnels: Iterable[TunnelHandle]) -> dict[str, dict[str, int]]:
    """Tunnels and sessions by state: ``{"tunnels": {"established": 2}, "sessions": {...}}``."""
    by_tunnel: Counter[str] = Counter()
    by_session: Counter[str] = Counter()
    for th in tunnels:
        by_tunnel[th.state.value] += 1
        for sh in th.sessions.values():
            by_session[session_state(th, sh)] += 1
    return {
        "tunnels": dict(sorted(by_tunnel.items())),
        "sessions": dict(sorted(by_session.items())),
    }


def event_record(
    event: ControlEvent, th: TunnelHandle | None, name: str | None = None
) -> dict[str, Any] | None:
    """A runtime event as the ``events`` stream reports it, or None for the kinds the
    stream does not carry (releases, WEN, SLI, ...). ``th``: the event's tunnel, for the
    peer address and IDs, when the context still holds it."""
    peer = _address(th.peer) if th is not None else None
    peer_tid = th.peer_tunnel_id if th is not None else None
    if isinstance(event, TunnelEstablished):
        return {
            "type": "tunnel-up",
            "tunnel_id": event.tunnel_id,
            "peer_tunnel_id": event.peer.tunnel_id,
            "peer": peer,
            "peer_host_name": event.peer.host_name,
            "name": name,
        }
    if isinstance(event, TunnelClosed):
        return {
            "type": "tunnel-down",
            "tunnel_id": event.tunnel_id,
            "peer_tunnel_id": peer_tid,
            "peer": peer,
            "name": name,
            "by_peer": event.by_peer,
            "reason": _reason(event.reason),
            "description": event.description,
        }
    if isinstance(event, SessionEstablished):
        info = event.info
        return {
            "type": "session-up",
            "tunnel_id": info.tunnel_id,
            "session_id": info.session_id,
            "peer_tunnel_id": info.peer_tunnel_id,
            "peer_session_id": info.peer_session_id,
            "peer": peer,
            "name": name,
        }
    if isinstance(event, SessionClosed):
        return {
            "type": "session-down",
            "tunnel_id": event.tunnel_id,
            "session_id": event.session_id,
            "peer_tunnel_id": peer_tid,
            "peer_session_id": event.peer_session_id,
            "peer": peer,
            "name": name,
            "by_peer": event.by_peer,
            "was_established": event.was_established,
            "reason": _reason(event.reason),
            "description": event.description,
        }
    return None
