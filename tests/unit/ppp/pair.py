"""An in-memory authenticator/peer pair of :class:`PppConnection` under one fake clock.

Like h11's ``ConnectionPair``: frames move between the two ends only when the
test pumps them, a seeded random generator may drop some on the way, and
time moves only when :meth:`PppPair.advance` jumps to the next timer.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from l2tp.ppp import (
    AuthMethod,
    PppConfig,
    PppConnection,
    PppEvent,
    RestartConfig,
    Role,
    SecretsAuthenticator,
)
from l2tp.ppp.auth.base import Authenticator
from l2tp.ppp.codec import parse_frame

SECRETS = """\
# client   server        secret
alice      lns           "correct horse"
bob        *             hunter2        10.9.9.9
"""
LNS_ADDRESS = IPv4Address("10.0.0.1")
POOL_ADDRESS = IPv4Address("10.0.0.2")
DNS = (IPv4Address("192.0.2.53"), IPv4Address("192.0.2.54"))


def authenticator_config(**kw: Any) -> PppConfig:
    kw.setdefault("hostname", "lns")
    kw.setdefault("ipv4_local", LNS_ADDRESS)
    kw.setdefault("ipv4_peer", POOL_ADDRESS)
    kw.setdefault("dns", DNS)
    kw.setdefault("echo_interval", None)
    return PppConfig(role=Role.AUTHENTICATOR, **kw)


def peer_config(**kw: Any) -> PppConfig:
    kw.setdefault("username", "alice")
    kw.setdefault("password", "correct horse")
    kw.setdefault("auth_methods", (AuthMethod.MSCHAP_V2, AuthMethod.CHAP_MD5, AuthMethod.PAP))
    kw.setdefault("request_dns", True)
    kw.setdefault("echo_interval", None)
    return PppConfig(role=Role.PEER, **kw)


@dataclass
class End:
    name: str
    conn: PppConnection
    events: list[PppEvent] = field(default_factory=list)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


class PppPair:
    """``a`` is the authenticator (LNS), ``p`` the peer (LAC/client)."""

    def __init__(
        self,
        a: PppConfig | None = None,
        p: PppConfig | None = None,
        *,
        seed: int = 1,
        loss: float = 0.0,
        duplicate: bool = False,
        authenticator: Authenticator | str | None = "secrets",
    ) -> None:
        verifier = (
            SecretsAuthenticator.from_text(SECRETS, server="lns")
            if authenticator == "secrets"
            else authenticator
        )
        assert verifier is None or not isinstance(verifier, str)
        self.a = End(
            "a",
            PppConnection(
                a or authenticator_config(),
                random_bytes=random.Random(seed).randbytes,
                authenticator=verifier,
            ),
        )
        self.p = End(
            "p", PppConnection(p or peer_config(), random_bytes=random.Random(seed + 1).randbytes)
        )
        self.now = 0.0
        self.loss = loss
        self.duplicate = duplicate
        self._rng = random.Random(f"loss-{seed}")
        self.wire: list[tuple[str, bytes]] = []
        """Every frame sent, (sender name, frame), including dropped ones."""
        self.dropped = 0
        self.drop_if: Callable[[str, bytes], bool] | None = None

    def ends(self) -> tuple[End, End]:
        return self.a, self.p

    def open(self) -> None:
        self.a.conn.open(self.now)
        self.p.conn.open(self.now)
        self.pump()

    def pump(self, limit: int = 1000) -> None:
        """Deliver frames until neither end has anything to send."""
        for _ in range(limit):
            moved = False
            for src, dst in ((self.a, self.p), (self.p, self.a)):
                for frame in src.conn.frames_to_send(self.now):
                    moved = True
                    self.wire.append((src.name, frame))
                    if self._drop(src.name, frame):
                        self.dropped += 1
                        continue
                    dst.conn.receive_frame(frame, self.now)
                    if self.duplicate:
                        dst.conn.receive_frame(frame, self.now)
            self._drain()
            if not moved:
                return
        raise AssertionError("pump did not settle")

    def _drop(self, src: str, frame: bytes) -> bool:
        if self.drop_if is not None and self.drop_if(src, frame):
            return True
        return self.loss > 0 and self._rng.random() < self.loss

    def _drain(self) -> None:
        for end in self.ends():
            while (event := end.conn.next_event()) is not None:
                end.events.append(event)

    def next_deadline(self) -> float | None:
        deadlines = [e.conn.get_timer() for e in self.ends()]
        return min((d for d in deadlines if d is not None), default=None)

    def advance(self) -> bool:
        """Jump to the next timer, fire it on both ends and pump; False if none is set."""
        deadline = self.next_deadline()
        if deadline is None:
            return False
        assert deadline >= self.now, "a timer in the past"
        self.now = deadline
        for end in self.ends():
            end.conn.handle_timer(self.now)
        self.pump()
        return True

    def run_until(self, done: Callable[[], bool], *, until: float = 120.0) -> bool:
        self.pump()
        while not done():
            deadline = self.next_deadline()
            if deadline is None or deadline > until:
                return done()
            self.advance()
        return True

    def protocols(self, src: str) -> list[int]:
        return [parse_frame(f)[0] for s, f in self.wire if s == src]


FAST = RestartConfig(restart_interval=1.0)
LOSSY = RestartConfig(restart_interval=1.0, max_configure=20)
"""For loss tests: a lossy link is where RFC 1661 4.6 says to raise Max-Configure."""
