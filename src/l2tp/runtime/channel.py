"""Drive one sans-IO :class:`~l2tp.protocol.transport.Transport` over a real socket.

This is the only place that reads the clock for the transport. Following
aioquic's ``QuicConnectionProtocol``, after anything that may have produced
output (a batch of received datagrams, an API call, a timer) it calls
``datagrams_to_send(now)``, hands events to the owner and re-arms *one* loop
timer at ``transport.get_timer()``.

The receive path never raises: datagrams from other addresses, data messages
(T bit clear, e.g. PPP LCP arriving before the ICCN is acknowledged) and
datagrams that are not control messages in the socket's framing are counted
and dropped, and the transport counts its own malformed input.

One channel serves one control connection on its own socket, which is what an
L2TP initiator and the loopback tests need; a shared port-1701 listener that
demultiplexes by tunnel ID feeds :meth:`ControlChannel.datagram_received` from
its own :class:`~l2tp.runtime.datagram.DatagramReader` instead of calling
:meth:`ControlChannel.start`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass

from ..addresses import address_text
from ..protocol.header import is_control
from ..protocol.transport import (
    Event,
    Transport,
    TransportClosed,
    TransportFailed,
)
from .datagram import UDP_FRAMING, Address, DatagramReader, Framing, unwrap_control

log = logging.getLogger(__name__)


@dataclass(slots=True, kw_only=True)
class ChannelCounters:
    datagrams_in: int = 0
    datagrams_out: int = 0
    foreign_source: int = 0
    """Datagrams from an address other than the peer's, dropped."""
    data_on_control: int = 0
    """Data messages that reached the control socket, dropped (the kernel owns data)."""
    not_control: int = 0
    """Datagrams the framing rejected (e.g. a non-zero session ID over raw IP)."""
    send_dropped: int = 0
    """``sendto`` would block: the datagram is dropped, retransmission recovers it."""
    send_errors: int = 0


class ControlChannel:
    """One control connection: a transport, a socket, a peer address and a timer.

    ``peer`` is where datagrams go (``None`` for a connected socket). With
    ``learn_peer_port`` the first control message from the peer's host but
    another port re-targets the channel: RFC 2661 8.1 lets the responder answer
    from a port of its choosing, after which the ports stay fixed.

    Events go to ``on_event`` if given, else to the :attr:`events` queue.
    :attr:`finished` resolves with the :class:`TransportFailed` or
    :class:`TransportClosed` event that ends the transport.
    """

    def __init__(
        self,
        transport: Transport,
        sock: socket.socket,
        peer: Address | None,
        *,
        framing: Framing = UDP_FRAMING,
        on_event: Callable[[Event], None] | None = None,
        learn_peer_port: bool = False,
        owns_socket: bool = True,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.transport = transport
        self.sock = sock
        self.peer = peer
        self.counters = ChannelCounters()
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self._framing = framing
        self._on_event = on_event
        self._learn_peer_port = learn_peer_port and peer is not None
        self._owns_socket = owns_socket
        self._loop = loop
        self._reader: DatagramReader | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._closed = False
        self._servicing = False
        self._again = False
        self._finished: asyncio.Future[TransportFailed | TransportClosed] | None = None

    # ------------------------------------------------------------------ API

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    @property
    def finished(self) -> asyncio.Future[TransportFailed | TransportClosed]:
        if self._finished is None:
            self._finished = self.loop.create_future()
        return self._finished

    @property
    def reader(self) -> DatagramReader | None:
        return self._reader

    def start(self) -> None:
        """Begin reading the socket (call from within the running loop)."""
        if self._reader is None:
            self._reader = DatagramReader(
                self.sock, self.datagram_received, on_batch=self.service, loop=self.loop
            )
        self._reader.start()
        self.service()

    def send(self, body: bytes, *, session_id: int = 0) -> int:
        """Queue a message for reliable delivery; returns its Ns."""
        ns = self.transport.send(body, session_id=session_id, now=self.loop.time())
        self.service()
        return ns

    def begin_close(self, *, end_when_acked: bool = False) -> None:
        """Enter close-wait after the final StopCCN (see :meth:`Transport.begin_close`)."""
        self.transport.begin_close(self.loop.time(), end_when_acked=end_when_acked)
        self.service()

    def close(self) -> None:
        """Stop reading and timing; close the socket if the channel owns it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._reader is not None:
            self._reader.stop()
        self._cancel_timer()
        if self._owns_socket:
            self.sock.close()

    async def __aenter__(self) -> ControlChannel:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    # -------------------------------------------------------- receive path

    def datagram_received(self, data: bytes, address: Address) -> None:
        """Feed one datagram; call :meth:`service` after a batch. Never raises for peer input."""
        counters = self.counters
        counters.datagrams_in += 1
        if self.peer is not None and address != self.peer:
            if not (self._learn_peer_port and _same_host(address, self.peer) and is_control(data)):
                counters.foreign_source += 1
                return
            self.peer = address
        self._learn_peer_port = False
        message = unwrap_control(self._framing, data)
        if message is None:
            counters.not_control += 1
            return
        if not is_control(message):
            counters.data_on_control += 1
            return
        self.transport.receive(message, self.loop.time())

    def service(self, now: float | None = None) -> None:
        """Send what is due, dispatch events and re-arm the timer."""
        if self._closed:
            return
        if self._servicing:
            # Re-entered from an event handler that sent: the outer pass goes round again.
            self._again = True
            return
        self._servicing = True
        transport = self.transport
        try:
            while True:
                self._again = False
                # Events first: a reply sent from a handler then carries the
                # acknowledgement that would otherwise need a ZLB.
                while (event := transport.next_event()) is not None:
                    self._dispatch(event)
                if self._closed:
                    return
                datagrams = transport.datagrams_to_send(self.loop.time() if now is None else now)
                if datagrams:
                    self._transmit(datagrams)
                if not self._again and not transport.has_events:
                    break
                now = None
            self._arm_timer(transport.get_timer())
        finally:
            self._servicing = False

    # ------------------------------------------------------------ internals

    def _transmit(self, datagrams: list[bytes]) -> None:
        counters = self.counters
        wrap = self._framing.wrap
        peer = self.peer
        sock = self.sock
        for datagram in datagrams:
            payload = wrap(datagram)
            try:
                if peer is None:
                    sock.send(payload)
                else:
                    sock.sendto(payload, peer)
            except (BlockingIOError, InterruptedError):
                counters.send_dropped += 1
            except OSError as exc:
                counters.send_errors += 1
                log.debug("control datagram to %s not sent: %s", address_text(peer), exc)
            else:
                counters.datagrams_out += 1

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, TransportFailed | TransportClosed):
            finished = self.finished
            if not finished.done():
                finished.set_result(event)
        if self._on_event is None:
            self.events.put_nowait(event)
            return
        try:
            self._on_event(event)
        except Exception:
            log.exception("control channel event handler failed")

    def _arm_timer(self, deadline: float | None) -> None:
        if deadline == self._timer_at and self._timer is not None:
            return
        self._cancel_timer()
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def _on_timer(self) -> None:
        # asyncio may run a timer up to one clock resolution early: never pass a
        # "now" before the deadline, or handle_timer would find nothing due.
        deadline = self._timer_at if self._timer_at is not None else 0.0
        self._timer = None
        self._timer_at = None
        if self._closed:
            return
        now = max(deadline, self.loop.time())
        self.transport.handle_timer(now)
        self.service(now)


def _same_host(a: Address, b: Address) -> bool:
    return isinstance(a, tuple) and isinstance(b, tuple) and a[:1] == b[:1]
