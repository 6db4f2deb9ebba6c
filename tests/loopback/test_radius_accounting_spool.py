"""The accounting spool over real UDP and a real file: a RADIUS accounting responder
built here from pyrad's packet classes (it verifies each request's authenticator and
acknowledges, or is down), a minimal test-only transport, and the engine restarted
from the same spool file: a Stop that met a dead server arrives exactly once later.

The transport here is deliberately tiny (one socket per request, fixed retries): the
daemons' client is :mod:`l2tp.radius.client`; this one exists only so that the engine
and spool are tested over the wire independently of it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import cast

import pyrad.dictionary
import pyrad.packet

from l2tp.radius import DICTIONARY_PATH
from l2tp.radius.accounting import AccountingEngine
from l2tp.radius.interface import Attribute, RadiusTimeout
from l2tp.radius.records import (
    Counters,
    NasIdentity,
    SessionDescription,
    SessionEnd,
    TunnelDescription,
)
from l2tp.radius.spool import Spool
from tests.helpers import until

SECRET = b"testing123"
DICTIONARY = pyrad.dictionary.Dictionary(str(DICTIONARY_PATH))


class Responder(asyncio.DatagramProtocol):
    """An accounting server: verifies each request, records it, answers."""

    def __init__(self) -> None:
        self.received: list[dict[str, list[object]]] = []
        self.bad = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        request = pyrad.packet.AcctPacket(dict=DICTIONARY, secret=SECRET, packet=data)
        if not request.VerifyAcctRequest():
            self.bad += 1
            return
        # pyrad's keys() gives attribute names; iterating the packet gives codes.
        names = request.keys()
        self.received.append({key: request[key] for key in names})
        assert self.transport is not None
        self.transport.sendto(request.CreateReply().ReplyPacket(), addr)

    def statuses(self) -> list[object]:
        return [r["Acct-Status-Type"][0] for r in self.received]


async def serve(port: int = 0) -> tuple[asyncio.DatagramTransport, Responder]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        Responder, local_addr=("127.0.0.1", port)
    )
    return transport, protocol


class _Reply(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.replies.put_nowait(data)


class TinyClient:
    """AccountingClient over UDP: ``tries`` sends ``timeout`` s apart, then RadiusTimeout."""

    def __init__(self, port: int, *, timeout: float = 0.2, tries: int = 2) -> None:
        self.port, self.timeout, self.tries = port, timeout, tries
        self.sent = 0

    async def account(self, attributes: Sequence[Attribute]) -> None:
        packet = pyrad.packet.AcctPacket(dict=DICTIONARY, secret=SECRET)
        for name, item in attributes:
            if isinstance(item, tuple):
                packet.AddAttribute(f"{name}:{item[0]}", item[1])
            else:
                packet.AddAttribute(name, item)
        raw = packet.RequestPacket()
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            _Reply, remote_addr=("127.0.0.1", self.port)
        )
        try:
            for _ in range(self.tries):
                transport.sendto(raw)
                self.sent += 1
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.timeout):
                        while True:
                            data = await protocol.replies.get()
                            reply = packet.CreateReply(packet=data)
                            if packet.VerifyReply(reply, data):
                                return
        finally:
            transport.close()
        raise RadiusTimeout("no accounting server answered")


def session() -> SessionDescription:
    return SessionDescription(
        acct_session_id="loop-00000001",
        user_name="alice",
        started_at=1_780_000_000.0,
        tunnel=TunnelDescription(
            tunnel_id=10,
            peer_tunnel_id=20,
            client_endpoint="127.0.0.2",
            server_endpoint="127.0.0.1",
        ),
        session_id=1,
        framed_address="10.0.0.2",
        nas=NasIdentity(identifier="lns1"),
    )


def engine(port: int, path: Path) -> AccountingEngine:
    return AccountingEngine(TinyClient(port), Spool(str(path)), backoff_base=0.05, backoff_cap=0.2)


def test_stop_spooled_while_the_server_is_down_arrives_once_after_a_restart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "accounting.spool"

    async def scenario() -> None:
        transport, server = await serve()
        port = transport.get_extra_info("sockname")[1]

        first = engine(port, path)
        await first.start()
        first.session_started(session())
        await until(lambda: server.received, "the Start")
        transport.close()  # the server goes down
        assert server.statuses() == ["Start"]

        await first.session_stopped("loop-00000001", SessionEnd.PEER_TERMINATED, Counters(1, 2))
        await until(lambda: first.counters.timeouts >= 1, "the Stop timing out")
        await first.close()  # the daemon stops, the Stop still unacknowledged
        assert len(first.spool.pending) == 1
        assert first.counters.deferred == 1

        second = engine(port, path)  # the daemon starts again, the server still down
        await second.start()
        assert second.spool.counters.replayed == 1
        await until(lambda: second.counters.timeouts >= 1, "a replay timing out")
        transport, server = await serve(port)  # the server is back
        await until(lambda: not second.spool.pending, "the Stop delivered", timeout=10)
        await second.close()
        assert server.statuses() == ["Stop"]
        stop = server.received[0]
        assert stop["Acct-Session-Id"] == ["loop-00000001"]
        assert stop["Acct-Terminate-Cause"] == ["User-Request"]
        assert stop["Acct-Delay-Time"][0] >= 0  # type: ignore[operator]
        assert server.bad == 0

        third = engine(port, path)  # and again: nothing left to send
        await third.start()
        assert third.spool.counters.replayed == 0 and not third.spool.pending
        third.session_started(replace(session(), acct_session_id="loop-00000002"))
        await until(lambda: len(server.received) == 2, "a new Start")
        await third.close()
        transport.close()
        assert server.statuses() == ["Stop", "Start"]  # the Stop once

    asyncio.run(asyncio.wait_for(scenario(), 60))
