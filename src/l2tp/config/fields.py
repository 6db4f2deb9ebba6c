"""Reading one TOML table key by key, recording errors instead of raising.

A :class:`TableReader` wraps one table (``tunnel.t1``) and offers typed getters
(integers in a range, enum choices, cookies, addresses ...). A getter that
finds a bad value records a :class:`ConfigError` and returns the default, so
the loader can carry on and report every problem of the file in one go.

The value formatting (:func:`show`) prints TOML syntax, so that the message
quotes what the user typed: ``"tcp"``, ``true``, ``[1, 2]``.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
import socket
from collections.abc import Callable, Collection
from enum import StrEnum
from typing import TypeVar

from l2tp.config.errors import ConfigError
from l2tp.config.model import DEFAULT_PORT, Endpoint, IPAddress, IPNetwork
from l2tp.protocol.avps import SPECS
from l2tp.protocol.constants import VENDOR_IETF, AvpType

E = TypeVar("E", bound=StrEnum)

Resolver = Callable[[str], IPAddress]
"""Turns a host name into an address; raises OSError or ValueError when it cannot."""

_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?$")
IFNAMSIZ = 16  # Linux: names are at most IFNAMSIZ - 1 characters


def avp_max_length(attribute: AvpType) -> int:
    """The longest value the AVP codec accepts for an IETF AVP (bytes).

    Taken from :data:`l2tp.protocol.avps.SPECS` rather than restated, so the
    configuration refuses exactly what the encoder would refuse at run time.
    """
    return max(SPECS[(VENDOR_IETF, int(attribute))].codec.lengths)


def system_resolver(name: str) -> IPAddress:
    """Resolve ``name`` with the system resolver (first address returned)."""
    infos = socket.getaddrinfo(name, None, type=socket.SOCK_DGRAM)
    if not infos:
        raise OSError(f"no address for {name}")
    return ipaddress.ip_address(infos[0][4][0])


def toml_type(value: object) -> str:
    """The TOML name of a parsed value's type, for "expected X, got Y" messages."""
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array"}
    for cls, name in names.items():
        if type(value) is cls:
            return name
    if isinstance(value, dict):
        return "table"
    return type(value).__name__.replace("datetime", "date-time")


SHOW_CHARS = 64
"""Longer strings are cut in messages: one error stays one readable line."""
SHOW_ITEMS = 8
"""Arrays longer than this show their first elements only."""


def show(value: object) -> str:
    """Render a parsed TOML value back in TOML syntax, shortened when it is long.

    Messages quote what the user typed, but a megabyte string (a pasted file, a
    fuzzer's input) must not become a megabyte error line, so long strings are
    cut with their length given and long arrays end in ``...``.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if len(value) > SHOW_CHARS:
            head = json.dumps(value[: SHOW_CHARS // 2], ensure_ascii=False)[:-1]
            return f'{head}..." ({len(value)} characters)'
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        items = [show(v) for v in value[:SHOW_ITEMS]]
        if len(value) > SHOW_ITEMS:
            items.append(f"... ({len(value)} elements)")
        return "[" + ", ".join(items) + "]"
    if isinstance(value, dict):
        return "{...}"
    return str(value)


def parse_endpoint(text: str, resolver: Resolver | None, *, min_port: int) -> Endpoint:
    """Parse ``addr``, ``addr:port``, ``[v6addr]:port`` or ``host:port``.

    Raises ValueError with the reason. The port defaults to 1701; a bare IPv6
    address without brackets is accepted only without a port (it is ambiguous
    otherwise).
    """
    port_text: str | None = None
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValueError("missing ']' after the IPv6 address")
        host, rest = text[1:close], text[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError("expected ':port' after ']'")
            port_text = rest[1:]
        try:
            address: IPAddress = ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{show(host)} is not an IPv6 address") from None
    else:
        if text.count(":") > 1:
            try:
                return Endpoint(address=ipaddress.IPv6Address(text), port=DEFAULT_PORT)
            except ValueError:
                raise ValueError("write an IPv6 address with a port as [address]:port") from None
        host, sep, port_after = text.partition(":")
        if sep:
            port_text = port_after
        if not host:
            raise ValueError("the address is empty")
        try:
            address = ipaddress.IPv4Address(host)
        except ValueError:
            address = _resolve(host, resolver)
    port = DEFAULT_PORT
    if port_text is not None:
        if not port_text.isdigit() or not port_text.isascii():
            raise ValueError(f"port {show(port_text)} is not a number")
        port = int(port_text)
        if not min_port <= port <= 65535:
            raise ValueError(f"port {port} is out of range {min_port}-65535")
    return Endpoint(address=address, port=port)


def _resolve(host: str, resolver: Resolver | None) -> IPAddress:
    if not _HOST_NAME.match(host) or host.replace(".", "").isdigit():
        raise ValueError(f"{show(host)} is neither an IP address nor a host name")
    if resolver is None:
        raise ValueError(f"host name {show(host)} given but name resolution is disabled")
    try:
        return resolver(host)
    except (OSError, ValueError):
        raise ValueError(f"host name {show(host)} could not be resolved") from None


PATH_MAX = 4096
"""Linux: a path is at most PATH_MAX - 1 bytes."""


def _control_character(text: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


def interface_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid Linux interface name (the kernel's dev_valid_name).

    The limit is in bytes (UTF-8), as the kernel counts; a NUL or other control
    character would be cut or kept invisibly by netlink, so it is refused too.
    """
    if not name:
        return "must not be empty"
    size = len(name.encode("utf-8", "surrogateescape"))
    if size >= IFNAMSIZ:
        unit = "characters" if size == len(name) else "bytes (UTF-8)"
        return f"{show(name)} is longer than {IFNAMSIZ - 1} {unit}"
    if name in (".", ".."):
        return f"{show(name)} is not a valid interface name"
    if any(c == "/" or c == ":" or c.isspace() for c in name):
        return f"{show(name)} contains '/', ':' or whitespace"
    if _control_character(name):
        return f"{show(name)} contains a control character"
    return None


TOP_LEVEL_KEYS = frozenset(("metrics", "metrics_per_tunnel"))
"""Keys of the document itself, not of a table (:mod:`l2tp.config.metrics`)."""


class TableReader:
    """Typed access to one TOML table; errors go to a shared list."""

    def __init__(
        self,
        file: str,
        path: str,
        table: dict[str, object],
        known: Collection[str],
        errors: list[ConfigError],
    ) -> None:
        self.file = file
        self.path = path
        self.table = table
        self.errors = errors
        self.failed: set[str | None] = set()
        """Keys already reported: one mistake in a key gives one message."""
        for key in table:
            if key not in known:
                hint = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
                reason = "unknown key" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                if path and key in TOP_LEVEL_KEYS:
                    # TOML puts a key written after a table header into that table.
                    reason = (
                        "unknown key here: it is a top-level key; put it before the first table"
                    )
                self.error(key, reason)

    def error(self, key: str | None, reason: str) -> None:
        """Record a problem with ``key``, unless that key was already reported.

        A value can break several rules at once (a ``ptid`` out of range in a
        tunnel that takes no ``ptid``); the first reason is enough to make the
        user look at the key, and more lines about it read like more mistakes.
        """
        if key is not None and key in self.failed:
            return
        self.failed.add(key)
        self.errors.append(ConfigError(self.file, self.path, key, reason))

    def has(self, key: str) -> bool:
        return key in self.table

    def _typed(self, key: str, cls: type, expected: str) -> object | None:
        if key not in self.table:
            return None
        value = self.table[key]
        if type(value) is not cls:
            got = toml_type(value)
            shown = "" if isinstance(value, dict) else f" {show(value)}"
            self.error(key, f"expected {expected}, got {got}{shown}")
            return None
        return value

    def string(self, key: str) -> str | None:
        value = self._typed(key, str, "a string")
        return value if isinstance(value, str) else None

    def avp_text(self, key: str, max_bytes: int, avp: str) -> str | None:
        """A non-empty string that must fit in one AVP of at most ``max_bytes`` (UTF-8).

        Checked here so that the daemon refuses the file at start instead of
        failing (or logging a traceback per peer) when the message is encoded.
        """
        value = self.nonempty_string(key)
        if value is None:
            return None
        size = len(value.encode("utf-8", "surrogateescape"))
        if size > max_bytes:
            self.error(key, f"{size} bytes is longer than the {max_bytes} a {avp} AVP can carry")
            return None
        return value

    def nonempty_string(self, key: str) -> str | None:
        value = self.string(key)
        if value is not None and not value.strip():
            self.error(key, "must not be empty")
            return None
        return value

    def file_path(self, key: str) -> str | None:
        """A file path: non-empty, no NUL or control characters, at most PATH_MAX - 1 bytes."""
        value = self.nonempty_string(key)
        if value is None:
            return None
        size = len(value.encode("utf-8", "surrogateescape"))
        if size >= PATH_MAX:
            self.error(key, f"{size} bytes is longer than a path can be ({PATH_MAX - 1})")
            return None
        if _control_character(value):
            self.error(key, f"{show(value)} contains a control character")
            return None
        return value

    def argument_list(self, key: str) -> tuple[str, ...] | None:
        """Program arguments: strings that are non-empty and free of NUL and control characters."""
        items = self.string_list(key)
        if items is None:
            return None
        for index, item in enumerate(items):
            if not item:
                self.error(key, f"element {index}: must not be empty")
                return None
            if _control_character(item):
                self.error(key, f"element {index}: {show(item)} contains a control character")
                return None
        return items

    def boolean(self, key: str, default: bool) -> bool:
        value = self._typed(key, bool, "a boolean (true or false)")
        return value if isinstance(value, bool) else default

    def integer(self, key: str, low: int, high: int, *, context: str = "") -> int | None:
        """An integer in ``low..high``; ``context`` ends the range message."""
        value = self._typed(key, int, "an integer")
        if not isinstance(value, int):
            return None
        if not low <= value <= high:
            self.error(key, f"{value} is out of range {low}-{high}{context}")
            return None
        return value

    def duration(self, key: str, low_ms: int, default: float) -> float:
        """Integer milliseconds in the file, float seconds in the model."""
        value = self.integer(key, low_ms, 0xFFFFFFFF, context=" (milliseconds)")
        return default if value is None else value / 1000

    def choice(self, key: str, enum: type[E]) -> E | None:
        value = self.string(key)
        if value is None:
            return None
        try:
            return enum(value)
        except ValueError:
            allowed = ", ".join(show(m.value) for m in enum)
            self.error(key, f"{show(value)} is not one of {allowed}")
            return None

    def array(self, key: str) -> list[object] | None:
        value = self._typed(key, list, "an array")
        return value if isinstance(value, list) else None

    def string_list(self, key: str) -> tuple[str, ...] | None:
        items = self.array(key)
        if items is None:
            return None
        for index, item in enumerate(items):
            if not isinstance(item, str):
                self.error(key, f"element {index}: expected a string, got {toml_type(item)}")
                return None
        return tuple(str(item) for item in items)

    def byte_array(self, key: str, lengths: tuple[int, ...]) -> bytes | None:
        """An array of integers 0-255 whose length is one of ``lengths``."""
        items = self.array(key)
        if items is None:
            return None
        values: list[int] = []
        for index, item in enumerate(items):
            if type(item) is not int:
                self.error(key, f"element {index}: expected an integer, got {toml_type(item)}")
                return None
            assert isinstance(item, int)
            if not 0 <= item <= 255:
                self.error(key, f"element {index}: {item} is out of range 0-255")
                return None
            values.append(item)
        if len(values) not in lengths:
            wanted = " or ".join(str(n) for n in lengths)
            self.error(key, f"must have {wanted} bytes, got {len(values)}")
            return None
        return bytes(values)

    def router_id(self, key: str) -> int | None:
        """A 32-bit L2TPv3 Router ID: an integer 1-4294967295 or a dotted IPv4 address.

        RFC 3931 5.4.3 makes it a 4-octet number that is often written as an
        IPv4 address; 0 is rejected either way (it reads as "unset").
        """
        if key not in self.table:
            return None
        value = self.table[key]
        if type(value) is int:
            return self.integer(key, 1, 0xFFFFFFFF)
        if not isinstance(value, str):
            shown = "" if isinstance(value, dict) else f" {show(value)}"
            expected = "an IPv4 address string or an integer"
            self.error(key, f"expected {expected}, got {toml_type(value)}{shown}")
            return None
        try:
            number = int(ipaddress.IPv4Address(value))
        except ValueError:
            self.error(key, f"{show(value)} is not an IPv4 address")
            return None
        if number == 0:
            self.error(key, f"{show(value)} is 0, out of range 1-4294967295")
            return None
        return number

    def endpoint(self, key: str, resolver: Resolver | None, *, min_port: int) -> Endpoint | None:
        value = self.nonempty_string(key)
        if value is None:
            return None
        try:
            return parse_endpoint(value, resolver, min_port=min_port)
        except ValueError as exc:
            self.error(key, f"{show(value)} is not a valid address: {exc}")
            return None

    def interface_name(self, key: str) -> str | None:
        value = self.string(key)
        if value is None:
            return None
        problem = interface_name_problem(value)
        if problem is not None:
            self.error(key, problem)
            return None
        return value

    def networks(self, key: str) -> tuple[IPNetwork, ...] | None:
        texts = self.string_list(key)
        if texts is None:
            return None
        networks: list[IPNetwork] = []
        for index, text in enumerate(texts):
            try:
                networks.append(ipaddress.ip_network(text, strict=True))
            except ValueError:
                self.error(key, f"element {index}: {show(text)} is not a network (CIDR)")
                return None
        return tuple(networks)
