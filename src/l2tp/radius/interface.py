"""What the RADIUS parts promise each other: the client's two request kinds and its errors.

The authentication hook, the accounting engine and the Dynamic Authorization server are
written against these Protocols, not against the transport class, so each is tested with
an in-memory stand-in and the transport (:mod:`.client`) can change its retry and
failover policy without touching them.

Attributes travel as ``(name, value)`` pairs in dictionary names (:data:`~l2tp.radius.
DICTIONARY_PATH`); a name may repeat (RFC 2865 5: Class, Framed-Route, Reply-Message).
Tagged attributes (RFC 2868) take ``value`` as ``(tag, value)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

Attribute = tuple[str, object]
"""One attribute: its dictionary name and its value (``(tag, value)`` when tagged)."""


class RadiusError(Exception):
    """A RADIUS exchange failed; the message is for our logs, never for a peer."""


class RadiusTimeout(RadiusError):
    """No configured server answered, after every retry on every server (RFC 2865 2.4)."""


class RadiusOverload(RadiusError):
    """The client's bounded queue of outstanding requests is full; nothing was sent."""


@dataclass(frozen=True, slots=True)
class RadiusReply:
    """A verified reply: its code (RFC 2865 3) and its attributes in arrival order."""

    code: int
    attributes: tuple[Attribute, ...]

    def get(self, name: str) -> list[object]:
        """Every value of attribute ``name``, in order (empty when absent)."""
        return [value for key, value in self.attributes if key == name]

    def first(self, name: str) -> object | None:
        """The first value of attribute ``name``, or None."""
        for key, value in self.attributes:
            if key == name:
                return value
        return None


class AccessClient(Protocol):
    """Sends Access-Requests (RFC 2865 4.1) and returns the verified Accept or Reject."""

    async def access(self, attributes: Sequence[Attribute]) -> RadiusReply:
        """Raise :class:`RadiusTimeout` or :class:`RadiusOverload`; never return a reply
        whose Response Authenticator did not verify (RFC 2865 3)."""
        ...


class AccountingClient(Protocol):
    """Sends Accounting-Requests (RFC 2866 4.1) until a server acknowledges one."""

    async def account(self, attributes: Sequence[Attribute]) -> None:
        """Return once an Accounting-Response (RFC 2866 4.2) verified; raise
        :class:`RadiusTimeout` or :class:`RadiusOverload` otherwise. The caller (the
        accounting engine) owns persistence: a raised request is spooled by it."""
        ...
