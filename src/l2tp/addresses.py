"""Socket addresses as text for people: log records, ``l2tp ctl`` records, hooks.

One spelling everywhere, instead of Python's tuple repr (``('192.0.2.1', 1701)``):
``192.0.2.1:1701``, and ``[2001:db8::1]:1701`` for IPv6 (RFC 3986 3.2.2 brackets,
so that the port cannot be read as part of the address).
"""

from __future__ import annotations

__all__ = ["address_text"]


def address_text(address: object) -> str:
    """``(host, port, ...)`` as ``host:port`` (``[host]:port`` for IPv6); anything else
    (a bare host, a key a test made up) as ``str()``."""
    if isinstance(address, tuple) and len(address) >= 2 and isinstance(address[1], int):
        host, port = str(address[0]), address[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(address)
