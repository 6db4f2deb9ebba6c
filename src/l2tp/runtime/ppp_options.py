"""The administrator's pppd options, and the check that keeps them within the backend's
contract (:mod:`l2tp.runtime.ppp`).

Two sources, both from the configuration, never from the peer:

* ``pppd_options``: a TOML list, one argv item each, checked item by item
  (:func:`check_user_options`: no NUL or control characters, none of the
  options that break the contract, :data:`FORBIDDEN`);
* ``pppd_args``: a file of options. It is handed to pppd as ``file PATH``, so
  pppd itself reads it with its own rules: words split on white space,
  ``"..."`` and ``'...'`` quoting, backslash escapes and ``#`` comments
  (``man pppd``, "OPTIONS FILES"). NetworkManager-l2tp writes exactly such a file
  (``user "alice smith"``); go-l2tp's kl2tpd splits it on white space and keeps
  the quotes, a defect we do not copy (issue 16). Before pppd starts, the file
  is read here with the same rules (:func:`pppd_words`, a port of pppd 2.4.9's
  ``getword``) only to refuse what breaks the contract, also in the files it
  names with ``file`` (at most :data:`MAX_FILE_DEPTH` deep).

The check is by word, so a forbidden word cannot be the value of another option
either (``user persist`` is refused): simple, and on the safe side.

:func:`user_options` gives a session's checked options as pppd arguments (after the
backend's own, :func:`l2tp.runtime.ppp.build_argv`); :func:`redact` hides the value of
``password`` in an argv that is logged.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from l2tp.runtime.backend import BackendSession

MAX_ARGS_FILE = 64 * 1024
"""A ``pppd_args`` file larger than this is refused (it is an argument list, not data)."""

MAX_FILE_DEPTH = 4
"""``file`` options followed inside a ``pppd_args`` file (pppd follows any number)."""

FORBIDDEN = {
    "detach": "pppd must stay in the foreground so that its exit can be monitored",
    "updetach": "pppd must stay in the foreground so that its exit can be monitored",
    "persist": "the L2TP session cannot be redialled by pppd; the control plane owns it",
    "demand": "the L2TP session cannot be redialled by pppd; the control plane owns it",
    "pppol2tp": "the PPPoL2TP socket is opened and passed by the backend",
    "pppol2tp_tunnel_id": "set by the backend from the session",
    "pppol2tp_session_id": "set by the backend from the session",
}
"""Options the backend cannot allow, with the reason given in the error."""

_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "s": " ", "t": "\t"}
_SPACE = " \t\n\v\f\r"
"""C's ``isspace`` in the C locale, as pppd uses it."""
_OCTAL = "01234567"
_HEX = "0123456789abcdefABCDEF"


class PppdOptionsError(ValueError):
    """The configured pppd options are unusable (bad file, NUL byte, forbidden option)."""


def _problem(arg: object) -> str | None:
    if not isinstance(arg, str):
        return f"must be a string, not {type(arg).__name__}"
    if not arg:
        return "is empty"
    if "\x00" in arg:
        return "contains a NUL byte"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in arg):
        return "contains a control character"
    if arg in FORBIDDEN:
        return f"is not allowed: {FORBIDDEN[arg]}"
    return None


def check_user_options(args: Iterable[object], *, source: str = "pppd_options") -> list[str]:
    """Validate configured pppd arguments; return them as a list or raise PppdOptionsError."""
    checked: list[str] = []
    for index, arg in enumerate(args):
        problem = _problem(arg)
        if problem is not None:
            raise PppdOptionsError(f"{source}: argument {index + 1} {arg!r} {problem}")
        assert isinstance(arg, str)
        checked.append(arg)
    return checked


def pppd_words(text: str) -> list[str]:
    """Split an options file into words as pppd does (``options.c``, ``getword``).

    White space separates words; outside quotes ``#`` starts a comment to the end
    of the line (also right after a word); ``"`` and ``'`` quote; a backslash
    escapes the next character, with C's ``\\a \\b \\f \\n \\r \\t``, ``\\s``
    (space), ``\\ooo`` (octal, up to 3 digits) and ``\\xhh`` (hex, up to 2), and a
    backslash-newline is ignored. A quote left open runs to the end of the text.
    """
    words: list[str] = []
    i, n = 0, len(text)
    while True:
        # White space and comments between words.
        comment = False
        while i < n:
            c = text[i]
            if c == "\n":
                comment = False
            elif comment:
                pass
            elif c == "\\" and i + 1 < n and text[i + 1] == "\n":
                i += 1  # backslash-newline: ignored
            elif c == "#":
                comment = True
            elif c not in _SPACE:
                break
            i += 1
        if i >= n:
            return words
        word: list[str] = []
        quote = ""
        while i < n:
            c = text[i]
            if c == "\\":
                i = _escape(text, i + 1, word)
                continue
            if quote:
                if c == quote:
                    quote = ""
                    i += 1
                    continue
            elif c in "\"'":
                quote = c
                i += 1
                continue
            elif c in _SPACE or c == "#":
                break
            word.append(c)
            i += 1
        words.append("".join(word))


def _escape(text: str, i: int, word: list[str]) -> int:
    """One backslash escape starting at ``text[i]`` (after the backslash): append its
    character to ``word`` and return the index after it."""
    n = len(text)
    if i >= n:
        return i  # a backslash at the end: nothing
    c = text[i]
    if c == "\n":
        return i + 1
    if c in _ESCAPES:
        word.append(_ESCAPES[c])
        return i + 1
    if c in _OCTAL:
        value, j = 0, i
        while j < n and j - i < 3 and text[j] in _OCTAL:
            value = value * 8 + int(text[j])
            j += 1
        word.append(chr(value))
        return j
    if c == "x":
        value, j = 0, i + 1
        while j < n and j - i - 1 < 2 and text[j] in _HEX:
            value = value * 16 + int(text[j], 16)
            j += 1
        word.append(chr(value))
        return j
    word.append(c)
    return i + 1


def parse_args_text(text: str, *, source: str = "pppd_args") -> list[str]:
    """The words of a ``pppd_args`` file (pppd's rules: :func:`pppd_words`), checked
    against :data:`FORBIDDEN`; PppdOptionsError names the file and the word."""
    if "\x00" in text:
        raise PppdOptionsError(f"{source}: contains a NUL byte")
    words = pppd_words(text)
    for index, word in enumerate(words):
        if word in FORBIDDEN:
            raise PppdOptionsError(
                f"{source}: argument {index + 1} {word!r} is not allowed: {FORBIDDEN[word]}"
            )
    return words


def read_args_file(path: str | os.PathLike[str], *, depth: int = 0) -> list[str]:
    """Read and check a ``pppd_args`` file and the files it names with ``file``;
    return its words. PppdOptionsError names the file and the problem."""
    name = repr(str(path))
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_ARGS_FILE + 1)
    except OSError as exc:
        raise PppdOptionsError(f"pppd_args {name}: {exc.strerror or exc}") from exc
    if len(data) > MAX_ARGS_FILE:
        raise PppdOptionsError(f"pppd_args {name}: larger than {MAX_ARGS_FILE} bytes")
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise PppdOptionsError(f"pppd_args {name}: not UTF-8 ({exc.reason})") from exc
    words = parse_args_text(text, source=f"pppd_args {name}")
    for index, word in enumerate(words[:-1]):
        if word == "file":
            if depth >= MAX_FILE_DEPTH:
                raise PppdOptionsError(
                    f"pppd_args {name}: 'file' nested more than {MAX_FILE_DEPTH} deep"
                )
            read_args_file(words[index + 1], depth=depth + 1)  # pppd's cwd is ours
    return words


def user_options(session: BackendSession) -> list[str]:
    """The session's configured pppd arguments: ``file PATH`` for its ``pppd_args`` file
    (read by pppd with pppd's own quoting and comment rules; checked here first by
    :func:`read_args_file`), then its ``pppd_options``."""
    options = session.options
    args: list[str] = []
    if options.pppd_args is not None:
        read_args_file(options.pppd_args)
        args += ["file", os.path.abspath(options.pppd_args)]
    args += check_user_options(options.pppd_options)
    return args


_SECRET_VALUED = frozenset({"password"})


def redact(argv: Sequence[str]) -> list[str]:
    """``argv`` for logs: the value of ``password`` replaced by ``***``."""
    out = list(argv)
    for i in range(1, len(out)):
        if out[i - 1] in _SECRET_VALUED:
            out[i] = "***"
    return out
