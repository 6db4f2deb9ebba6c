"""RADIUS for the daemons (issue 18): authentication of built-in PPP sessions (RFC 2865),
session and tunnel accounting (RFC 2866, RFC 2867) and Dynamic Authorization (RFC 5176).

Packets are encoded and decoded with pyrad against the attribute dictionary shipped
beside this module (:data:`DICTIONARY_PATH`); the transport is our own, on the asyncio
loop.
"""

from __future__ import annotations

from pathlib import Path

DICTIONARY_PATH = Path(__file__).with_name("dictionary")
"""The attribute dictionary (FreeRADIUS syntax) every RADIUS packet of ours is built with."""
