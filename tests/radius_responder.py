"""A scriptable RADIUS server for client tests: a UDP socket on 127.0.0.1 (or ::1) whose
answers a test decides packet by packet, built and checked with pyrad's packet classes
(independent of the client's own encoding path).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from pyrad import packet as rp

from l2tp.radius.client import ACCESS_REQUEST, dictionary

Policy = Callable[["Received"], bytes | None]
"""Given a received request, the datagram to answer with (None: stay silent)."""


@dataclass
class Received:
    """One request as the responder decoded it."""

    data: bytes
    packet: rp.Packet
    source: tuple[Any, ...]

    @property
    def id(self) -> int:
        return int(self.packet.id)

    def reply(
        self,
        code: int | None = None,
        *,
        secret: bytes | None = None,
        message_authenticator: bool | None = None,
        attributes: dict[str, object] | None = None,
    ) -> bytes:
        """A reply to this request (Access-Accept or Accounting-Response by default),
        signed with the request's secret unless ``secret`` says otherwise."""
        kwargs: dict[str, Any] = {}
        if message_authenticator is not None:
            kwargs["message_authenticator"] = message_authenticator
        reply = self.packet.CreateReply(**kwargs)
        if code is not None:
            reply.code = code
        if secret is not None:
            reply.secret = secret
        for name, value in (attributes or {}).items():
            reply.AddAttribute(name, value)
        return bytes(reply.ReplyPacket())


def accept(received: Received) -> bytes:
    return received.reply()


@dataclass
class Responder(asyncio.DatagramProtocol):
    """Answers per ``policy``; ``received`` lists every request in arrival order."""

    secret: bytes
    policy: Policy = accept
    received: list[Received] = field(default_factory=list)
    transport: asyncio.DatagramTransport | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        kind = rp.AuthPacket if data[0] == ACCESS_REQUEST else rp.AcctPacket
        packet = kind(packet=data, secret=self.secret, dict=dictionary())
        received = Received(data=data, packet=packet, source=addr)
        self.received.append(received)
        self.arrived.set()
        answer = self.policy(received)
        if answer is not None:
            self.send(answer, addr)

    def send(self, data: bytes, addr: tuple[Any, ...]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def start_responder(
    secret: bytes, policy: Policy = accept, host: str = "127.0.0.1"
) -> Responder:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(
        lambda: Responder(secret=secret, policy=policy), local_addr=(host, 0)
    )
    return protocol
