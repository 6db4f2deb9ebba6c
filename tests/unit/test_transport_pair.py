"""An in-memory pair of transports under one fake clock, plus tests of the harness itself.

Following h11's ``ConnectionPair`` and aioquic's loss tests, nothing here sleeps:
datagrams sit on an explicit ``wire`` list that tests drop, reorder or duplicate
by hand, and time only moves when :meth:`Pair.advance` jumps to the next timer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from l2tp.protocol.header import ControlHeader, parse_control_header
from l2tp.protocol.transport import (
    AckReceived,
    Event,
    MessageReceived,
    Transport,
    TransportClosed,
    TransportConfig,
    TransportFailed,
)

SIDES = ("a", "b")


@dataclass
class Datagram:
    dest: str
    data: bytes

    @property
    def header(self) -> ControlHeader:
        return parse_control_header(self.data)

    @property
    def is_zlb(self) -> bool:
        return self.header.is_zlb


@dataclass
class Side:
    transport: Transport
    events: list[Event] = field(default_factory=list)

    @property
    def bodies(self) -> list[bytes]:
        return [e.body for e in self.events if isinstance(e, MessageReceived)]

    @property
    def acked(self) -> list[int]:
        return [e.ns for e in self.events if isinstance(e, AckReceived)]

    @property
    def failed(self) -> bool:
        return any(isinstance(e, TransportFailed) for e in self.events)

    @property
    def closed(self) -> bool:
        return any(isinstance(e, TransportClosed) for e in self.events)


class Pair:
    """Transports ``a`` (local ID 1) and ``b`` (local ID 2) joined by a hand-driven wire."""

    def __init__(
        self,
        *,
        version: int = 2,
        config: TransportConfig | None = None,
        config_b: TransportConfig | None = None,
        **kwargs: Any,
    ) -> None:
        config = config or TransportConfig()
        self.now = 0.0
        self.sides = {
            "a": Side(Transport(version=version, local_id=1, peer_id=2, config=config, **kwargs)),
            "b": Side(
                Transport(
                    version=version, local_id=2, peer_id=1, config=config_b or config, **kwargs
                )
            ),
        }
        self.wire: list[Datagram] = []
        self.log: list[Datagram] = []
        self.on_message: Callable[[str, MessageReceived], None] | None = None

    @property
    def a(self) -> Transport:
        return self.sides["a"].transport

    @property
    def b(self) -> Transport:
        return self.sides["b"].transport

    def send(self, side: str, body: bytes, session_id: int = 0) -> int:
        ns = self.sides[side].transport.send(body, session_id=session_id, now=self.now)
        self.flush()
        return ns

    def flush(self) -> None:
        """Move every side's output onto the wire and collect events."""
        progress = True
        while progress:
            progress = False
            for name in SIDES:
                side = self.sides[name]
                dest = "b" if name == "a" else "a"
                for data in side.transport.datagrams_to_send(self.now):
                    datagram = Datagram(dest, data)
                    self.wire.append(datagram)
                    self.log.append(datagram)
                    progress = True
                while (event := side.transport.next_event()) is not None:
                    side.events.append(event)
                    if isinstance(event, MessageReceived) and self.on_message is not None:
                        self.on_message(name, event)
                        progress = True

    def deliver(self, index: int = 0, *, keep: bool = False) -> Datagram:
        datagram = self.wire[index] if keep else self.wire.pop(index)
        self.sides[datagram.dest].transport.receive(datagram.data, self.now)
        self.flush()
        return datagram

    def drop(self, index: int = 0) -> Datagram:
        return self.wire.pop(index)

    def deliver_all(self) -> None:
        while self.wire:
            self.deliver(0)

    def next_timer(self) -> float | None:
        timers = [t for s in self.sides.values() if (t := s.transport.get_timer()) is not None]
        return min(timers) if timers else None

    def advance(self, to: float | None = None) -> float | None:
        """Jump to ``to`` (or the earliest timer), fire due timers, flush."""
        if to is None:
            to = self.next_timer()
            if to is None:
                return None
        assert to >= self.now
        self.now = to
        for side in self.sides.values():
            timer = side.transport.get_timer()
            if timer is not None and timer <= self.now:
                side.transport.handle_timer(self.now)
        self.flush()
        return to

    def run(
        self,
        *,
        drop: Callable[[Datagram], bool] = lambda d: False,
        until: float = 1e9,
        max_steps: int = 100_000,
    ) -> None:
        """Deliver and advance until nothing is in flight or owed, or a side is inert."""
        for _ in range(max_steps):
            while self.wire:
                datagram = self.wire.pop(0)
                if not drop(datagram):
                    self.sides[datagram.dest].transport.receive(datagram.data, self.now)
                    self.flush()
            if all(s.transport.idle for s in self.sides.values()):
                return
            timer = self.next_timer()
            if timer is None or timer > until:
                return
            self.advance(timer)
        raise AssertionError("pair did not settle")


# ------------------------------------------------------------ harness tests


def test_appendix_b1_lockstep_establishment() -> None:
    """RFC 2661 Appendix B.1, header by header (a sends SCCRQ, b replies, a confirms)."""
    pair = Pair()
    pair.send("a", b"SCCRQ")
    sccrq = pair.deliver()
    assert (sccrq.header.ns, sccrq.header.nr) == (0, 0)
    pair.send("b", b"SCCRP")
    sccrp = pair.deliver()
    assert (sccrp.header.ns, sccrp.header.nr) == (0, 1)
    pair.send("a", b"SCCCN")
    scccn = pair.deliver()
    assert (scccn.header.ns, scccn.header.nr) == (1, 1)
    assert pair.wire == []
    pair.advance()  # b's acknowledgement delay runs out: explicit ZLB
    zlb = pair.deliver()
    assert zlb.is_zlb and zlb.dest == "a"
    assert (zlb.header.ns, zlb.header.nr) == (1, 2)
    assert pair.sides["b"].bodies == [b"SCCRQ", b"SCCCN"]
    assert pair.sides["a"].bodies == [b"SCCRP"]
    assert pair.a.idle and pair.b.idle
    assert pair.next_timer() is None


def test_run_settles_without_traffic() -> None:
    pair = Pair()
    pair.run()
    assert pair.wire == [] and pair.next_timer() is None
