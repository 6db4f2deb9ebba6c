"""Configuration errors that always say where: file, table path, key and reason.

One exact format is used for every message, so that operators (and tests) can
rely on it::

    FILE: PATH: key 'KEY': REASON     a problem with one key of one table
    FILE: PATH: REASON                a problem with a whole table
    FILE: key 'KEY': REASON           a problem with a top-level key
    FILE: REASON                      a problem with the whole file (e.g. TOML syntax)

``PATH`` is the dotted TOML table path (``tunnel.t1.session.s1``), with names
that are not bare TOML keys quoted as TOML would (``tunnel."a.b"``), so the
path can be pasted back into the file as a table header.

The loader collects every error it can find before giving up, because fixing a
configuration one error per daemon restart is miserable; they are raised
together as :class:`ConfigErrors`, which is itself a :class:`ConfigError` so a
caller can catch a single type.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from l2tp.protocol.errors import L2tpError

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def table_path(*names: str) -> str:
    """Join table names into a dotted TOML path, quoting names that need it."""
    parts = []
    for name in names:
        if len(name) > LONG_NAME:
            # Not pasteable any more, but one line stays readable.
            parts.append(f'{toml_string(name[: LONG_NAME // 2])[:-1]}..."')
        elif _BARE_KEY.match(name):
            parts.append(name)
        else:
            parts.append(toml_string(name))
    return ".".join(parts)


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string (JSON escapes are valid TOML, DEL aside)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


LONG_NAME = 64
"""Keys and table names longer than this are shortened in messages."""


def quote_key(key: str) -> str:
    """``'key'`` as users type it, or a TOML basic string when the key holds quotes,
    control characters or line breaks (a quoted TOML key may), so that every
    message stays on one line and shows the key unambiguously. A very long key
    is shortened, with its length."""
    if len(key) > LONG_NAME:
        return f'{toml_string(key[: LONG_NAME // 2])[:-1]}..." ({len(key)} characters)'
    if key.isprintable() and "'" not in key:
        return f"'{key}'"
    return toml_string(key)


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped: one error, one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in text)


class ConfigError(L2tpError, ValueError):
    """One problem in a configuration file.

    ``path`` is ``""`` for top-level problems and ``key`` is ``None`` when the
    problem concerns a whole table or the whole file. ``line`` and ``column``
    are set only for TOML syntax errors (1-based, as tomllib reports them).
    """

    def __init__(
        self,
        file: str,
        path: str,
        key: str | None,
        reason: str,
        *,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.file = file
        self.path = path
        self.key = key
        self.reason = reason
        self.line = line
        self.column = column
        super().__init__(self._format())

    def _format(self) -> str:
        parts = [one_line(self.file)]
        if self.path:
            parts.append(self.path)
        if self.key is not None:
            parts.append(f"key {quote_key(self.key)}")
        parts.append(one_line(self.reason))
        return ": ".join(parts)

    @property
    def errors(self) -> tuple[ConfigError, ...]:
        """Every error carried: just this one (see :class:`ConfigErrors`)."""
        return (self,)

    def __str__(self) -> str:
        return self._format()

    def __reduce__(self) -> tuple[object, ...]:
        # Exception pickling replays ``args`` (the message) into __init__, which
        # does not match our signature; rebuild from the attributes instead.
        return (
            _rebuild,
            (self.file, self.path, self.key, self.reason, self.line, self.column),
        )


class ConfigErrors(ConfigError):
    """Several problems found in one pass; ``str()`` prints one per line.

    The single-error attributes (``file``, ``path``, ...) describe the first
    error, so code that only looks at one still gets a sensible answer.
    """

    def __init__(self, errors: Iterable[ConfigError]) -> None:
        self._errors = tuple(errors)
        if not self._errors:
            raise ValueError("ConfigErrors needs at least one error")
        first = self._errors[0]
        super().__init__(
            first.file, first.path, first.key, first.reason, line=first.line, column=first.column
        )

    @property
    def errors(self) -> tuple[ConfigError, ...]:
        return self._errors

    def __str__(self) -> str:
        return "\n".join(e._format() for e in self._errors)

    def __reduce__(self) -> tuple[object, ...]:
        return (ConfigErrors, (self._errors,))


def _rebuild(
    file: str, path: str, key: str | None, reason: str, line: int | None, column: int | None
) -> ConfigError:
    return ConfigError(file, path, key, reason, line=line, column=column)
