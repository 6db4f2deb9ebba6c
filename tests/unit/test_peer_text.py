"""Peer-chosen text in log lines: quoted with JSON escapes, never a Python repr."""

from __future__ import annotations

import json

from l2tp.peer_text import quoted


def test_plain_names_are_quoted_the_same_for_str_and_bytes() -> None:
    assert quoted("alice smith") == '"alice smith"'
    assert quoted(b"alice smith") == '"alice smith"'  # not b'alice smith'
    assert quoted(None) == "-"


def test_a_name_cannot_forge_a_log_line_or_send_terminal_escapes() -> None:
    text = quoted("bob\nINFO forged line\x1b[2J")
    assert "\n" not in text and "\x1b" not in text
    assert json.loads(text) == "bob\nINFO forged line\x1b[2J"  # nothing lost


def test_invalid_utf8_is_kept_visible() -> None:
    assert quoted(b"caf\xe9") == '"caf\\\\xe9"'
