"""The ``[hooks]`` table: which programs run on tunnel and session events, and their bounds.

::

    [hooks]
    session_up = ["/etc/l2tp/hooks/session-up", "--verbose"]
    session_down = ["/etc/l2tp/hooks/session-down"]
    timeout = 10000          # ms; then SIGTERM, then SIGKILL
    max_concurrent = 4
    max_queued = 1024

Each program is an argv array run without a shell (peer-supplied values reach it
in the environment, never in a command line). Its first element must be an
absolute path: a hook runs with the daemon's privileges, so a PATH search (or a
path relative to whatever directory the daemon was started in) would let the
environment choose what runs. Whether the file exists is not checked here (the
loader does no I/O, and the file may be installed after the configuration); a
missing program is logged and counted when it is run.
"""

from __future__ import annotations

from l2tp.config.errors import ConfigError
from l2tp.config.fields import TableReader, show, toml_type
from l2tp.config.model import HooksSection

EVENTS = ("tunnel_up", "tunnel_down", "session_up", "session_down")
HOOK_KEYS = frozenset((*EVENTS, "timeout", "max_concurrent", "max_queued"))
_DEFAULTS = HooksSection()
MAX_TIMEOUT_MS = 3_600_000
"""An hour: a hook is a notification, not a service; longer is a mistake."""
MAX_CONCURRENT = 256
MAX_QUEUED = 65535


def _argv(r: TableReader, key: str) -> tuple[str, ...]:
    argv = r.argument_list(key)
    if argv is None:
        return ()
    if not argv:
        r.error(key, "must not be empty: the program (an absolute path), then its arguments")
        return ()
    if not argv[0].startswith("/"):
        r.error(
            key,
            f"element 0: {show(argv[0])} is not an absolute path (hooks run without a shell"
            " and without a PATH search)",
        )
        return ()
    return argv


def read_hooks(file: str, raw: object, errors: list[ConfigError]) -> HooksSection:
    """The ``hooks`` value of a document (None when absent) as a :class:`HooksSection`;
    problems go to ``errors`` in the loader's format (``FILE: hooks: key 'K': ...``)."""
    if raw is None:
        return HooksSection()
    if not isinstance(raw, dict):
        got = toml_type(raw)
        shown = f" {show(raw)}" if not isinstance(raw, list | dict) else ""
        errors.append(ConfigError(file, "", "hooks", f"expected a table [hooks], got {got}{shown}"))
        return HooksSection()
    r = TableReader(file, "hooks", raw, HOOK_KEYS, errors)
    programs = {key: _argv(r, key) for key in EVENTS}
    timeout = r.integer("timeout", 1, MAX_TIMEOUT_MS, context=" (milliseconds)")
    return HooksSection(
        tunnel_up=programs["tunnel_up"],
        tunnel_down=programs["tunnel_down"],
        session_up=programs["session_up"],
        session_down=programs["session_down"],
        timeout=_DEFAULTS.timeout if timeout is None else timeout / 1000,
        max_concurrent=r.integer("max_concurrent", 1, MAX_CONCURRENT) or _DEFAULTS.max_concurrent,
        max_queued=r.integer("max_queued", 1, MAX_QUEUED) or _DEFAULTS.max_queued,
    )
