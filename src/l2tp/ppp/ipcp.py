"""IPCP option policy: IPv4 address and DNS negotiation (RFC 1332, RFC 1877).

Which addresses are whose:

* ``local``: our address. We ask for it in IP-Address (RFC 1332 3.3); with
  ``None`` we ask for 0.0.0.0, which means "assign me one", and adopt the
  address a Configure-Nak suggests. A configured address is kept even if the
  peer Naks it (the peer then gives up after Max-Configure).
* ``peer``: the address the peer must use (the authenticator's pool or
  configuration). A peer asking for 0.0.0.0 or for another address gets a
  Nak with it; a peer that does not ask at all gets one unsolicited Nak
  suggesting it (3.3: "the option SHOULD be appended to a Configure-Nak").
  Without one, a peer asking for 0.0.0.0 is Rejected (we cannot assign) and
  any other address is accepted.
* ``dns``: up to two servers we give the peer when it asks (RFC 1877 1.1,
  1.3) with a Nak carrying ours; none configured, the options are Rejected.
  With ``request_dns`` we ask the other end for its servers.

IP-Compression-Protocol (3.2, Van Jacobson), the deprecated IP-Addresses
(3.1), the NBNS options (RFC 1877 1.2, 1.4) and unknown options are Rejected.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from .codec import Option
from .constants import IpcpOption
from .cp import OptionHandler, OptionVerdicts
from .cp import Verdict as V

_ZERO = IPv4Address(0)
_DNS_SLOTS = {IpcpOption.PRIMARY_DNS: 0, IpcpOption.SECONDARY_DNS: 1}


def _addr(value: bytes) -> IPv4Address:
    return IPv4Address(value)


class IpcpOptions(OptionHandler):
    """IPCP options; after Opened, :attr:`local_address` and :attr:`peer_address` are set."""

    def __init__(
        self,
        *,
        local: IPv4Address | None = None,
        peer: IPv4Address | None = None,
        dns: tuple[IPv4Address, ...] = (),
        request_dns: bool = False,
    ) -> None:
        if len(dns) > 2:
            raise ValueError("IPCP carries at most two DNS servers (RFC 1877)")
        self._configured_local = local
        self._assign_peer = peer
        self._serve_dns = dns
        self._request_dns = request_dns
        self.local_address: IPv4Address | None = None
        self.peer_address: IPv4Address | None = None
        self.dns: tuple[IPv4Address, ...] = ()
        """DNS servers the peer gave us (RFC 1877), in order, zero entries dropped."""
        self._want_address = True
        self._address = local or _ZERO
        self._want_dns: dict[int, IPv4Address] = {}
        self._hinted = False

    def reset(self, now: float) -> None:
        self._want_address = True
        self._address = self._configured_local or _ZERO
        self._want_dns = (
            {IpcpOption.PRIMARY_DNS: _ZERO, IpcpOption.SECONDARY_DNS: _ZERO}
            if self._request_dns
            else {}
        )
        self._hinted = False
        self.local_address = self.peer_address = None
        self.dns = ()

    def request_options(self) -> list[Option]:
        options: list[Option] = []
        if self._want_address:
            options.append(Option(IpcpOption.IP_ADDRESS, self._address.packed))
        for kind, value in sorted(self._want_dns.items()):
            options.append(Option(kind, value.packed))
        return options

    def check_request(self, options: list[Option]) -> OptionVerdicts:
        verdicts: OptionVerdicts = []
        saw_address = False
        for opt in options:
            if opt.type == IpcpOption.IP_ADDRESS and len(opt.data) == 4:
                saw_address = True
                verdicts.append(self._check_address(opt))
            elif opt.type in _DNS_SLOTS and len(opt.data) == 4:
                slot = _DNS_SLOTS[IpcpOption(opt.type)]
                if slot >= len(self._serve_dns):
                    verdicts.append((V.REJECT, opt))
                elif _addr(opt.data) == self._serve_dns[slot]:
                    verdicts.append((V.ACK, opt))
                else:
                    verdicts.append((V.NAK, Option(opt.type, self._serve_dns[slot].packed)))
            else:
                verdicts.append((V.REJECT, opt))
        if not saw_address and self._assign_peer is not None and not self._hinted:
            self._hinted = True
            verdicts.append((V.NAK, Option(IpcpOption.IP_ADDRESS, self._assign_peer.packed)))
        return verdicts

    def _check_address(self, opt: Option) -> tuple[V, Option]:
        asked = _addr(opt.data)
        if self._assign_peer is not None:
            if asked == self._assign_peer:
                return V.ACK, opt
            return V.NAK, Option(IpcpOption.IP_ADDRESS, self._assign_peer.packed)
        if asked == _ZERO:
            return V.REJECT, opt
        return V.ACK, opt

    def peer_acked(self, options: list[Option]) -> None:
        self.peer_address = None
        for opt in options:
            if opt.type == IpcpOption.IP_ADDRESS:
                self.peer_address = _addr(opt.data)
        if self.peer_address is None:
            # The peer did not negotiate its address: use the one we would assign.
            self.peer_address = self._assign_peer

    def ack_received(self, options: list[Option]) -> None:
        dns: list[IPv4Address] = []
        for opt in options:
            if opt.type == IpcpOption.IP_ADDRESS:
                address = _addr(opt.data)
                self.local_address = address if address != _ZERO else None
            elif opt.type in _DNS_SLOTS and _addr(opt.data) != _ZERO:
                dns.append(_addr(opt.data))
        if not self._want_address:
            self.local_address = self._configured_local
        self.dns = tuple(dns)

    def nak_received(self, options: list[Option]) -> None:
        for opt in options:
            if len(opt.data) != 4:
                continue
            if opt.type == IpcpOption.IP_ADDRESS and self._want_address:
                suggested = _addr(opt.data)
                if self._configured_local is None and suggested != _ZERO:
                    self._address = suggested
            elif opt.type in self._want_dns:
                self._want_dns[opt.type] = _addr(opt.data)

    def reject_received(self, options: list[Option]) -> None:
        for opt in options:
            if opt.type == IpcpOption.IP_ADDRESS:
                self._want_address = False
            self._want_dns.pop(opt.type, None)

    @property
    def addresses_complete(self) -> bool:
        """Both ends have a usable address: the network can carry IPv4."""
        return self.local_address is not None and self.peer_address is not None
