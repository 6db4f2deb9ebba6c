"""An in-memory LAC/LNS pair of :class:`TunnelListener` endpoints under one fake clock.

Like h11's ``ConnectionPair`` and aioquic's loss tests: datagrams sit on an
explicit ``wire`` list that a test may drop, reorder or duplicate, and time
moves only when :meth:`Pair.advance` jumps to the next timer. Nothing sleeps.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from l2tp.protocol.events import ControlEvent, Role
from l2tp.protocol.header import parse_control_header
from l2tp.protocol.listener import ListenerConfig, TunnelListener
from l2tp.protocol.message import ControlMessage, parse_message
from l2tp.protocol.transport import TransportConfig
from l2tp.protocol.tunnel import Tunnel, TunnelConfig

FAST = TransportConfig(ack_delay=0.0, hello_interval=None)
"""Immediate ZLBs and no HELLO, so that pumping reaches a quiet state at once."""


def config(role: Role, **kw: Any) -> TunnelConfig:
    kw.setdefault("transport", FAST)
    kw.setdefault("host_name", role.value)
    return TunnelConfig(role=role, **kw)


@dataclass
class Datagram:
    src: str
    dest: str
    data: bytes

    @property
    def message(self) -> ControlMessage | None:
        """The decoded body (None for a ZLB); hidden AVPs stay opaque."""
        try:
            return parse_message(self.data)[1]
        except Exception:
            return None

    @property
    def name(self) -> str:
        msg = self.message
        return "ZLB" if msg is None else msg.name


@dataclass
class Endpoint:
    name: str
    listener: TunnelListener
    events: list[ControlEvent] = field(default_factory=list)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    @property
    def tunnel(self) -> Tunnel:
        """The only tunnel (most tests have one)."""
        (tunnel,) = self.listener.tunnels.values()
        return tunnel

    def drain(self) -> None:
        for tunnel in self.listener.tunnels.values():
            self.events.extend(tunnel.events())


class Pair:
    """``lac`` initiates by default; ``wire`` holds datagrams in flight."""

    def __init__(
        self,
        lac: TunnelConfig | None = None,
        lns: TunnelConfig | None = None,
        *,
        seed: int = 1,
        max_tunnels: int = 1024,
    ) -> None:
        self.now = 0.0
        self.wire: list[Datagram] = []
        self.sent: list[Datagram] = []
        rng_a = random.Random(seed)
        rng_b = random.Random(seed + 1000)
        self.lac = Endpoint(
            "lac",
            TunnelListener(
                ListenerConfig(tunnel=lac or config(Role.LAC), max_tunnels=max_tunnels),
                random_bytes=rng_a.randbytes,
            ),
        )
        self.lns = Endpoint(
            "lns",
            TunnelListener(
                ListenerConfig(tunnel=lns or config(Role.LNS), max_tunnels=max_tunnels),
                random_bytes=rng_b.randbytes,
            ),
        )
        self.sides = {"lac": self.lac, "lns": self.lns}

    def connect(self, side: str = "lac") -> Tunnel:
        src = self.sides[side]
        other = "lns" if side == "lac" else "lac"
        tunnel = src.listener.connect(other, self.now)
        self.flush()
        return tunnel

    def flush(self) -> None:
        """Move everything both endpoints want to send onto the wire."""
        for name, side in self.sides.items():
            for peer, data in side.listener.datagrams_to_send(self.now):
                dgram = Datagram(name, str(peer), data)
                self.wire.append(dgram)
                self.sent.append(dgram)
            side.drain()

    def deliver(self, dgram: Datagram) -> None:
        self.sides[dgram.dest].listener.receive(dgram.data, dgram.src, self.now)
        self.sides[dgram.dest].drain()

    def pump(
        self, *, drop: Callable[[Datagram], bool] | None = None, max_rounds: int = 10_000
    ) -> None:
        """Deliver until the wire is empty (``drop`` decides which datagrams are lost)."""
        self.flush()
        for _ in range(max_rounds):
            if not self.wire:
                return
            dgram = self.wire.pop(0)
            if drop is None or not drop(dgram):
                self.deliver(dgram)
            self.flush()
        raise AssertionError("the pair never went quiet")

    def timer(self) -> float | None:
        timers = [t for t in (s.listener.get_timer() for s in self.sides.values()) if t]
        return min(timers) if timers else None

    def advance(self, until: float | None = None, **pump: Any) -> bool:
        """Jump to the next timer (if not after ``until``), fire it, pump. False if none."""
        deadline = self.timer()
        if deadline is None or (until is not None and deadline > until):
            if until is not None:
                self.now = max(self.now, until)
            return False
        self.now = max(self.now, deadline)
        for side in self.sides.values():
            side.listener.handle_timer(self.now)
        self.pump(**pump)
        return True

    def run(self, until: float, **pump: Any) -> None:
        """Pump and fire timers until ``until`` (absolute fake time)."""
        self.pump(**pump)
        while self.advance(until, **pump):
            pass

    def names(self, src: str | None = None) -> list[str]:
        return [d.name for d in self.sent if src is None or d.src == src]

    def establish(self) -> tuple[Tunnel, Tunnel]:
        lac_tunnel = self.connect()
        self.pump()
        return lac_tunnel, self.lns.tunnel


def lns_config(**kw: Any) -> TunnelConfig:
    return config(Role.LNS, **kw)


def lac_config(**kw: Any) -> TunnelConfig:
    return config(Role.LAC, **kw)


def header_of(data: bytes) -> Any:
    return parse_control_header(data)


__all__ = ["FAST", "Datagram", "Endpoint", "Pair", "config", "lac_config", "lns_config", "replace"]
