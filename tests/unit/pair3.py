"""An in-memory pair of L2TPv3 LCCEs (two :class:`Tunnel` objects) under one fake clock.

``a`` initiates (sends the SCCRQ), ``b`` answers. Datagrams sit on ``wire``
where a test may drop or alter them; time moves only through :meth:`advance`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from l2tp.protocol.events import ControlEvent, Role
from l2tp.protocol.message import ControlMessage, parse_message
from l2tp.protocol.transport import TransportConfig
from l2tp.protocol.tunnel import Tunnel, TunnelConfig

FAST = TransportConfig(ack_delay=0.0, hello_interval=None)


def config3(role: Role = Role.LAC, **kw: Any) -> TunnelConfig:
    kw.setdefault("transport", FAST)
    kw.setdefault("host_name", role.value)
    return TunnelConfig(role=role, version=3, **kw)


@dataclass
class Datagram:
    src: str
    data: bytes

    @property
    def message(self) -> ControlMessage | None:
        return parse_message(self.data)[1]

    @property
    def name(self) -> str:
        msg = self.message
        return "ZLB" if msg is None else msg.name


@dataclass
class Side:
    name: str
    tunnel: Tunnel
    events: list[ControlEvent] = field(default_factory=list)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


class Pair3:
    def __init__(
        self,
        a: TunnelConfig | None = None,
        b: TunnelConfig | None = None,
        *,
        a_id: int = 0x11223344,
        b_id: int = 0xAABBCCDD,
        seed: int = 3,
    ) -> None:
        self.now = 0.0
        self.wire: list[Datagram] = []
        self.sent: list[Datagram] = []
        self.a = Side(
            "a",
            Tunnel(
                a or config3(Role.LAC), local_id=a_id, random_bytes=random.Random(seed).randbytes
            ),
        )
        self.b = Side(
            "b",
            Tunnel(
                b or config3(Role.LNS),
                local_id=b_id,
                random_bytes=random.Random(seed + 1).randbytes,
            ),
        )
        self.sides = {"a": self.a, "b": self.b}

    def flush(self) -> None:
        for name, side in self.sides.items():
            for data in side.tunnel.datagrams_to_send(self.now):
                dgram = Datagram(name, data)
                self.wire.append(dgram)
                self.sent.append(dgram)
            side.events.extend(side.tunnel.events())

    def pump(self, *, alter: Callable[[Datagram], bytes | None] | None = None) -> None:
        """Deliver until quiet; ``alter`` may return replacement bytes, or None to drop."""
        self.flush()
        for _ in range(10_000):
            if not self.wire:
                return
            dgram = self.wire.pop(0)
            data: bytes | None = dgram.data if alter is None else alter(dgram)
            if data is not None:
                dest = self.b if dgram.src == "a" else self.a
                dest.tunnel.receive_datagram(data, self.now)
            self.flush()
        raise AssertionError("the pair never went quiet")

    def advance(self, **pump: Any) -> bool:
        timers = [t for t in (s.tunnel.get_timer() for s in self.sides.values()) if t is not None]
        if not timers:
            return False
        self.now = max(self.now, min(timers))
        for side in self.sides.values():
            side.tunnel.handle_timer(self.now)
        self.pump(**pump)
        return True

    def run(self, until: float, **pump: Any) -> None:
        self.pump(**pump)
        while self.now < until and self.advance(**pump):
            pass

    def establish(self) -> None:
        self.a.tunnel.connect(self.now)
        self.pump()

    def names(self, src: str | None = None) -> list[str]:
        return [d.name for d in self.sent if src is None or d.src == src]
