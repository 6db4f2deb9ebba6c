"""IPv6CP option policy: Interface-Identifier negotiation (RFC 5072 section 4.1).

Each end proposes a 64-bit Interface-Identifier for its own link-local
address (RFC 5072 section 5: fe80::/64 + identifier). Ours is random (from
the injected source) unless configured, and never zero. A peer proposing
zero, or our own identifier, gets a Nak with a fresh random identifier
distinct from ours (4.1: "If the two Interface-Identifiers are equal ... a
Configure-Nak ... with a suggested new, different value"); a Nak of ours
makes us adopt the suggestion unless it is zero or the peer's, in which case
we draw a new one. A peer that proposes none gets one unsolicited suggestion.

An identifier assigned to the peer (``peer_interface_id``: RADIUS Framed-Interface-Id,
RFC 3162 2.2, as Framed-IP-Address is for IPCP) is the one suggested instead: a peer
proposing any other gets a Nak with it (4.1 lets the Nak suggest the value), one
proposing none gets it as the unsolicited suggestion. A peer that never agrees ends
in RFC 1661 4.6 Max-Failure (the option is Rejected, and each end uses its own). An
assignment equal to our own configured identifier is ignored (4.1: they must differ).

IPv6-Compression-Protocol (4.2) and unknown options are Rejected.
"""

from __future__ import annotations

from .codec import Option
from .constants import Ipv6cpOption, RandomSource
from .cp import OptionHandler, OptionVerdicts
from .cp import Verdict as V

_ZERO_ID = bytes(8)


def random_interface_id(random_bytes: RandomSource, *avoid: bytes | None) -> bytes:
    """A random, non-zero identifier different from every ``avoid`` value."""
    while True:
        value = random_bytes(8)
        if len(value) != 8:
            raise ValueError("the random source returned the wrong number of octets")
        if value != _ZERO_ID and value not in avoid:
            return value


class Ipv6cpOptions(OptionHandler):
    """IPv6CP options; after Opened, :attr:`local_id` and :attr:`peer_id` are set."""

    def __init__(
        self,
        *,
        random_bytes: RandomSource,
        interface_id: bytes | None = None,
        peer_interface_id: bytes | None = None,
    ) -> None:
        for value in (interface_id, peer_interface_id):
            if value is not None and (len(value) != 8 or value == _ZERO_ID):
                raise ValueError("an Interface-Identifier is 8 octets and not zero")
        self._random = random_bytes
        # 4.1: the two identifiers differ, so an assignment equal to our configured one
        # cannot be used (the verifier's data, not an error of ours): it is ignored.
        self._assign_peer = peer_interface_id if peer_interface_id != interface_id else None
        self.local_id = interface_id or random_interface_id(random_bytes, peer_interface_id)
        self.peer_id: bytes | None = None
        self._want_id = True
        self._hinted = False

    def reset(self, now: float) -> None:
        self._want_id = True
        self._hinted = False
        self.peer_id = None

    def request_options(self) -> list[Option]:
        if not self._want_id:
            return []
        return [Option(Ipv6cpOption.INTERFACE_IDENTIFIER, self.local_id)]

    def check_request(self, options: list[Option]) -> OptionVerdicts:
        verdicts: OptionVerdicts = []
        saw_id = False
        for opt in options:
            if opt.type == Ipv6cpOption.INTERFACE_IDENTIFIER and len(opt.data) == 8:
                saw_id = True
                if self._assign_peer is not None and opt.data != self._assign_peer:
                    verdicts.append((V.NAK, Option(opt.type, self._assign_peer)))
                elif opt.data in (_ZERO_ID, self.local_id):
                    verdicts.append((V.NAK, Option(opt.type, self._suggestion())))
                else:
                    verdicts.append((V.ACK, opt))
            else:
                verdicts.append((V.REJECT, opt))
        if not saw_id and not self._hinted:
            self._hinted = True
            hint = Option(Ipv6cpOption.INTERFACE_IDENTIFIER, self._suggestion())
            verdicts.append((V.NAK, hint))
        return verdicts

    def _suggestion(self) -> bytes:
        """The identifier to suggest to the peer: the assigned one, else a random one."""
        if self._assign_peer is not None:
            return self._assign_peer
        return random_interface_id(self._random, self.local_id)

    def peer_acked(self, options: list[Option]) -> None:
        self.peer_id = None
        for opt in options:
            if opt.type == Ipv6cpOption.INTERFACE_IDENTIFIER:
                self.peer_id = opt.data

    def ack_received(self, options: list[Option]) -> None:
        return None

    def nak_received(self, options: list[Option]) -> None:
        for opt in options:
            if opt.type == Ipv6cpOption.INTERFACE_IDENTIFIER and len(opt.data) == 8:
                taken = (self.peer_id, self._assign_peer)
                if opt.data != _ZERO_ID and opt.data not in taken:
                    self.local_id = opt.data
                else:
                    self.local_id = random_interface_id(self._random, self.local_id, *taken)

    def reject_received(self, options: list[Option]) -> None:
        for opt in options:
            if opt.type == Ipv6cpOption.INTERFACE_IDENTIFIER:
                # RFC 5072 4.1: without the option each end uses its own identifier.
                self._want_id = False
