"""What the protocol objects of PAP (RFC 1334 2) and CHAP (RFC 1994) share, both roles.

Each sends packets of one PPP protocol in the same format (Code, Identifier, Length,
Data: RFC 1334 2.2 and RFC 1994 4 both follow RFC 1661 5), reports to an
:class:`~.base.AuthObserver`, counts what it discards, and the side that speaks
first repeats its packet every ``restart`` seconds until answered, at most
``max_transmits`` times (RFC 1334 2.2.1 for the PAP peer's Authenticate-Request,
RFC 1994 4.1 for the CHAP authenticator's Challenge, and the CHAP peer's Response,
repeated because the Success may be lost). The rules of when to repeat and what
giving up means stay in each protocol; this is the bookkeeping under them.
"""

from __future__ import annotations

from collections.abc import Callable

from ..codec import Packet, serialize_packet
from ..constants import AuthMethod, Protocol
from .base import AuthCounters, AuthObserver


class AuthExchange:
    """The packets, counters, observer and retransmission timer of one PAP or CHAP role."""

    method: AuthMethod

    def __init__(
        self,
        protocol: Protocol,
        send: Callable[[int, bytes], None],
        observer: AuthObserver,
        *,
        restart: float = 3.0,
        max_transmits: int = 10,
    ) -> None:
        self._protocol = protocol
        self._send = send
        self._observer = observer
        self._restart = restart
        self._max_transmits = max_transmits
        self.counters = AuthCounters()
        self._sent = 0
        """Transmissions of the packet being repeated (the first one included)."""
        self._deadline: float | None = None

    def get_timer(self) -> float | None:
        return self._deadline

    def _send_packet(self, code: int, identifier: int, data: bytes) -> None:
        packet = Packet(code=code, identifier=identifier, data=data)
        self._send(self._protocol, serialize_packet(packet))

    def _send_repeated(self, code: int, identifier: int, data: bytes, now: float) -> None:
        """Send a packet that is repeated until answered: count it and arm the timer."""
        self._sent += 1
        self._deadline = now + self._restart
        self._send_packet(code, identifier, data)

    def _timer_due(self, now: float) -> bool:
        """Whether the timer has fired at ``now``; it is then disarmed."""
        if self._deadline is None or now < self._deadline:
            return False
        self._deadline = None
        return True

    def _retransmit(self, now: float) -> bool:
        """Send the packet again (:meth:`_transmit`), or False when it was already sent
        ``max_transmits`` times: the caller then gives up."""
        if self._sent >= self._max_transmits:
            return False
        self.counters.retransmissions += 1
        self._transmit(now)
        return True

    def _transmit(self, now: float) -> None:
        """Send the packet this role repeats (with :meth:`_send_repeated`)."""
        raise NotImplementedError(f"{type(self).__name__} sends nothing that it repeats")
