"""TOML configuration: typed, validated dataclasses shared by every daemon.

``load(path, daemon=...)`` is the entry point; see ``docs/config.md`` for the
file format and :mod:`l2tp.config.errors` for the exact error format.
"""

from __future__ import annotations

from l2tp.config.check import add_check_argument, run_check
from l2tp.config.dump import dump_json, dump_toml, to_dict
from l2tp.config.errors import ConfigError, ConfigErrors
from l2tp.config.fields import Resolver, parse_endpoint, system_resolver
from l2tp.config.loader import load, loads
from l2tp.config.model import (
    DEFAULT_PORT,
    BuiltinPppSection,
    Config,
    DaeClientEntry,
    Daemon,
    DaeSection,
    Digest,
    Encap,
    Endpoint,
    FramingCap,
    HooksSection,
    L2SpecType,
    ListenerConfig,  # the old names of the *Section classes
    ListenerSection,
    PeerEntry,
    PppAuth,
    PppImplementation,
    Pseudowire,
    RadiusAccounting,
    RadiusSection,
    RadiusServerEntry,
    SessionConfig,
    SessionSection,
    TunnelConfig,
    TunnelMode,
    TunnelSection,
    Version,
)

__all__ = [
    "DEFAULT_PORT",
    "BuiltinPppSection",
    "Config",
    "ConfigError",
    "ConfigErrors",
    "DaeClientEntry",
    "DaeSection",
    "Daemon",
    "Digest",
    "Encap",
    "Endpoint",
    "FramingCap",
    "HooksSection",
    "L2SpecType",
    "ListenerConfig",
    "ListenerSection",
    "PeerEntry",
    "PppAuth",
    "PppImplementation",
    "Pseudowire",
    "RadiusAccounting",
    "RadiusSection",
    "RadiusServerEntry",
    "Resolver",
    "SessionConfig",
    "SessionSection",
    "TunnelConfig",
    "TunnelMode",
    "TunnelSection",
    "Version",
    "add_check_argument",
    "dump_json",
    "dump_toml",
    "load",
    "loads",
    "parse_endpoint",
    "run_check",
    "system_resolver",
    "to_dict",
]
