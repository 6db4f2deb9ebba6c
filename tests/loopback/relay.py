"""A lossy, reordering, duplicating UDP relay for loopback tests and benchmarks.

Two endpoints each talk to one relay port; the relay forwards every datagram
to the other side through its other port, after a seeded random decision:

* drop with probability ``loss``;
* otherwise send it, and with probability ``duplicate`` send a second copy;
* with probability ``reorder`` hold a copy back for a random delay of up to
  ``max_delay`` seconds, so later datagrams overtake it.

The RNG is ``random.Random(seed)``, so a given seed makes the same decisions
for the same sequence of datagrams (timing on a real loop still varies, which is
the point of a loopback test).
"""

from __future__ import annotations

import asyncio
import random
import socket
from dataclasses import dataclass

from l2tp.runtime.datagram import DatagramReader, open_udp_socket

Address = tuple[str, int]


@dataclass
class RelayCounters:
    received: int = 0
    forwarded: int = 0
    dropped: int = 0
    duplicated: int = 0
    delayed: int = 0


class LossyRelay:
    """Forward between ``a`` and ``b``, which send to :attr:`addr_for_a` / :attr:`addr_for_b`."""

    def __init__(
        self,
        a: Address,
        b: Address,
        *,
        loss: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        max_delay: float = 0.005,
        seed: int = 0,
    ) -> None:
        self.a = a
        self.b = b
        self.loss = loss
        self.duplicate = duplicate
        self.reorder = reorder
        self.max_delay = max_delay
        self.rng = random.Random(seed)
        self.counters = RelayCounters()
        self.sock_a = open_udp_socket("127.0.0.1")
        self.sock_b = open_udp_socket("127.0.0.1")
        self._readers: list[DatagramReader] = []

    @property
    def addr_for_a(self) -> Address:
        """Where endpoint ``a`` sends (the relay's socket facing ``a``)."""
        host, port = self.sock_a.getsockname()[:2]
        return (host, port)

    @property
    def addr_for_b(self) -> Address:
        host, port = self.sock_b.getsockname()[:2]
        return (host, port)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._readers = [
            DatagramReader(self.sock_a, self._from_a, loop=loop),
            DatagramReader(self.sock_b, self._from_b, loop=loop),
        ]
        for reader in self._readers:
            reader.start()

    def close(self) -> None:
        for reader in self._readers:
            reader.stop()
        self.sock_a.close()
        self.sock_b.close()

    async def __aenter__(self) -> LossyRelay:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def _from_a(self, data: bytes, address: Address) -> None:
        self._forward(data, self.sock_b, self.b)

    def _from_b(self, data: bytes, address: Address) -> None:
        self._forward(data, self.sock_a, self.a)

    def _forward(self, data: bytes, sock: socket.socket, dest: Address) -> None:
        counters = self.counters
        rng = self.rng
        counters.received += 1
        if rng.random() < self.loss:
            counters.dropped += 1
            return
        copies = 2 if rng.random() < self.duplicate else 1
        if copies == 2:
            counters.duplicated += 1
        for _ in range(copies):
            if rng.random() < self.reorder:
                counters.delayed += 1
                delay = rng.uniform(0.0, self.max_delay)
                asyncio.get_running_loop().call_later(delay, self._send, sock, data, dest)
            else:
                self._send(sock, data, dest)

    def _send(self, sock: socket.socket, data: bytes, dest: Address) -> None:
        try:
            sock.sendto(data, dest)
        except OSError:
            self.counters.dropped += 1
            return
        self.counters.forwarded += 1
