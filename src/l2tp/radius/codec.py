"""Packet decoding shared by the RADIUS parts: our attribute dictionary
(:func:`dictionary`) and a decoded pyrad packet's attributes as ``(name, value)`` pairs
(:func:`decode_attributes`, the form of :class:`~l2tp.radius.interface.RadiusReply`).

Values: integers with a VALUE name in the dictionary come back as that name
(``"Framed-User"``), tagged attributes (RFC 2868 3) as ``(tag, value)``, salt-encrypted
ones (Tunnel-Password) as their raw octets, attributes missing from the dictionary as
``("Attr-N", bytes)`` or ``("Vendor-V-Attr-N", bytes)``; the Message-Authenticator is
left out (the transport has checked it).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pyrad import packet as rp
from pyrad import tools
from pyrad.dictionary import Dictionary

from l2tp.radius import DICTIONARY_PATH
from l2tp.radius.interface import Attribute

__all__ = ["MESSAGE_AUTHENTICATOR", "decode_attributes", "dictionary"]

MESSAGE_AUTHENTICATOR = 80


@cache
def dictionary() -> Dictionary:
    """Our attribute dictionary (:data:`~l2tp.radius.DICTIONARY_PATH`), read once."""
    return Dictionary(str(DICTIONARY_PATH))


def decode_attributes(packet: rp.Packet) -> tuple[Attribute, ...]:
    """A decoded packet's attributes as ``(name, value)`` pairs (module doc), named by
    the packet's own dictionary; raises on values that do not decode (the caller counts
    the packet as malformed)."""
    names: Dictionary = packet.dict
    out: list[Attribute] = []
    for key in dict.keys(packet):
        if key == MESSAGE_AUTHENTICATOR:
            continue
        raws: list[bytes] = dict.__getitem__(packet, key)
        name = names.attrindex.GetBackward(key) if names.attrindex.HasBackward(key) else None
        if name is None:
            label = f"Vendor-{key[0]}-Attr-{key[1]}" if isinstance(key, tuple) else f"Attr-{key}"
            out.extend((label, bytes(raw)) for raw in raws)
            continue
        attr = names.attributes[name]
        for raw in raws:
            if attr.has_tag:
                tag, value = _split_tag(attr.type, raw)
                out.append((name, (tag, _decode(attr, value))))
            else:
                out.append((name, _decode(attr, raw)))
    return tuple(out)


def _split_tag(kind: str, raw: bytes) -> tuple[int, bytes]:
    """RFC 2868 3: an integer's first octet is its tag; another type's first octet is a
    tag when it is at most 0x1F."""
    if not raw:
        return 0, raw
    if kind == "integer":
        return raw[0], b"\x00" + raw[1:]
    if raw[0] <= 0x1F:
        return raw[0], raw[1:]
    return 0, raw


def _decode(attr: Any, raw: bytes) -> object:
    if attr.encrypt:
        return bytes(raw)  # hidden with the secret (Tunnel-Password): left to the caller
    if attr.values.HasBackward(raw):
        return attr.values.GetBackward(raw)
    return tools.DecodeAttr(attr.type, raw)
