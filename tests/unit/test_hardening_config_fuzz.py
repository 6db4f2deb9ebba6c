"""Config fuzz: 500 seeded bad configurations per daemon, each refused in one line.

Issue 13 found 6 of 134 hand-made bad configurations ending in a traceback or
a misleading message. Here every daemon (kl2tpd, l2tp-lns, l2tpd, ql2tpd) is
given 500 files, each a valid base configuration with one defect: a value of
the wrong type, a number out of range, a huge string, an unknown key (with
quotes, line breaks, unicode in its name), a bad address, a missing table or
key, a duplicate ID, broken TOML, binary garbage, an empty file. Each must
give exit status 1, nothing on stdout, and on stderr exactly one line of the
documented ``FILE: PATH: key 'KEY': REASON`` form (one defect, one message):
no traceback, no Python repr.

The sweep calls each daemon's ``main(["--check", FILE])`` in-process, which is
the code path of the daemons' start-up (``--check`` and a start load the file
with the same function and print the same errors); 2,000 subprocesses would
take minutes. ``tests/loopback/test_hardening_config_fuzz.py`` runs a sample of
the same cases through the real executables.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from l2tp.daemons import kl2tpd, l2tpd, lns, ql2tpd

pytestmark = pytest.mark.unit

PER_DAEMON = 500
SEED = 13

Table = dict[str, object]


@dataclass(frozen=True)
class Case:
    """One bad file: what was done to the base (for the failure message) and its bytes."""

    daemon: str
    what: str
    data: bytes


MAINS: dict[str, Callable[[Sequence[str] | None], int]] = {
    "kl2tpd": kl2tpd.main,
    "lns": lns.main,
    "l2tpd": l2tpd.main,
    "ql2tpd": ql2tpd.main,
}
MODULES = {
    "kl2tpd": "l2tp.daemons.kl2tpd",
    "lns": "l2tp.daemons.lns",
    "l2tpd": "l2tp.daemons.l2tpd",
    "ql2tpd": "l2tp.daemons.ql2tpd",
}

# -- valid starting points, one set per daemon -------------------------------------------


def _bases(daemon: str) -> list[Table]:
    """Valid configurations for ``daemon`` (addresses are literals: no name lookups)."""
    if daemon == "kl2tpd":
        return [
            {"tunnel": {"t1": {"peer": "192.0.2.1:1701", "session": {"s1": {}}}}},
            {
                "tunnel": {
                    "t1": {
                        "peer": "192.0.2.1",
                        "local": "0.0.0.0:0",
                        "secret": "s3cret",
                        "hide_avps": True,
                        "hello_timeout": 30000,
                        "host_name": "lac1",
                        "redial": True,
                        "redial_timeout": 2000,
                        "max_redials": 3,
                        "session": {
                            "s1": {"pppd_options": ["noauth"], "seqnum": True},
                            "s2": {"pppd_args": "/etc/ppp/s2.args"},
                        },
                    },
                    "t2": {"peer": "[2001:db8::1]:1701", "tid": 9},
                }
            },
        ]
    if daemon == "lns":
        return [
            {"listener": {"l1": {"listen": "127.0.0.1:1701"}}},
            {
                "listener": {
                    "l1": {
                        "listen": "0.0.0.0:1701",
                        "max_tunnels": 100,
                        "max_pending_tunnels": 50,
                        "max_pending_per_peer": 5,
                        "max_sessions": 1000,
                        "max_sessions_per_tunnel": 10,
                        "allowed_peers": ["192.0.2.0/24", "2001:db8::/32"],
                        "secret": "x",
                        "host_name": "lns1",
                        "pppd_options": ["require-chap"],
                        "mtu": 1400,
                    },
                    "l2": {"listen": "[::]:1702", "window_size": 8},
                }
            },
        ]
    if daemon == "l2tpd":
        return [
            {
                "tunnel": {
                    "t1": {
                        "peer": "192.0.2.1",
                        "session": {"office": {"interface_name": "l2tpeth9", "cookie_len": 4}},
                    }
                }
            },
            {
                "tunnel": {
                    "t1": {
                        "peer": "192.0.2.1",
                        "encap": "ip",
                        "secret": "k",
                        "digest": "sha1",
                        "router_id": "192.0.2.2",
                        "session": {
                            "a": {"seqnum": True, "l2spec_type": "default", "bridge": "br0"},
                            "b": {"remote_end_id": "far-b", "mtu": 1450},
                        },
                    }
                },
                "listener": {
                    "l1": {
                        "listen": "0.0.0.0:1701",
                        "max_tunnels": 10,
                        "session": {
                            "x": {"remote_end_id": "x-pw", "interface_name": "l2tpeth1"},
                            "y": {"pseudowire": "ppp", "pppd_options": ["noauth"]},
                        },
                    }
                },
            },
        ]
    return [
        {
            "tunnel": {
                "t1": {
                    "local": "10.0.0.1:5000",
                    "peer": "10.0.0.2:5000",
                    "tid": 1,
                    "ptid": 2,
                    "session": {"s1": {"sid": 1, "psid": 2}},
                }
            }
        },
        {
            "tunnel": {
                "t1": {
                    "local": "10.0.0.1",
                    "peer": "10.0.0.2",
                    "tid": 10,
                    "ptid": 20,
                    "encap": "ip",
                    "hello_timeout": 5000,
                    "session": {
                        "s1": {
                            "sid": 11,
                            "psid": 21,
                            "cookie": [1, 2, 3, 4],
                            "peer_cookie": [5, 6, 7, 8, 9, 10, 11, 12],
                            "interface_name": "l2tpeth0",
                        },
                        "s2": {"sid": 12, "psid": 22, "seqnum": True, "l2spec_type": "default"},
                    },
                },
                "t2": {
                    "local": "[2001:db8::1]",
                    "peer": "[2001:db8::2]",
                    "tid": 30,
                    "ptid": 40,
                    "mode": "static",
                },
            }
        },
    ]


# -- a small TOML writer (the standard library only reads TOML) --------------------------


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Raw):
        return value.text
    raise TypeError(type(value))


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else _value(name)


@dataclass(frozen=True)
class Raw:
    """TOML text written as it is (date-times, inf, nan, deep nesting)."""

    text: str


def to_toml(doc: Table) -> str:
    lines: list[str] = []

    def table(path: list[str], body: Table) -> None:
        plain = {k: v for k, v in body.items() if not isinstance(v, dict)}
        subs = {k: v for k, v in body.items() if isinstance(v, dict)}
        if path and (plain or not subs):
            lines.append("[" + ".".join(_key(p) for p in path) + "]")
        lines.extend(f"{_key(k)} = {_value(v)}" for k, v in plain.items())
        for name, sub in subs.items():
            assert isinstance(sub, dict)
            table([*path, name], sub)

    table([], doc)
    return "\n".join(lines) + "\n"


# -- defects ---------------------------------------------------------------------------------

# Keys per kind of table, with a value of the right type, so a defect can replace it.
INT_KEYS = {
    "tid": (1, 65535),
    "ptid": (1, 65535),
    "window_size": (1, 65535),
    "hello_timeout": (0, 0xFFFFFFFF),
    "retry_timeout": (1, 0xFFFFFFFF),
    "max_retries": (0, 65535),
    "max_redials": (0, 65535),
    "max_tunnels": (0, 65535),
    "max_pending_tunnels": (1, 65535),
    "max_pending_per_peer": (1, 65535),
    "max_sessions": (0, 0xFFFFFFFF),
    "sid": (1, 65535),
    "psid": (1, 65535),
    "mtu": (68, 65535),
    "cookie_len": (0, 8),
    "reorder_timeout": (0, 0xFFFFFFFF),
}
# Strings with a length limit (an AVP, a path, an interface name); ``secret`` has none.
STRING_KEYS = ("host_name", "pppd_args", "remote_end_id", "interface_name", "bridge")
ENUM_KEYS = {
    "version": "l2tpv4",
    "encap": "tcp",
    "mode": "hybrid",
    "digest": "sha256",
    "pseudowire": "atm",
    "l2spec_type": "fancy",
}
ADDRESS_KEYS = ("peer", "local", "listen")
BAD_ADDRESSES = (
    "",
    " ",
    "999.1.1.1",
    "1.2.3",
    "10.0.0.1:0",
    "10.0.0.1:65536",
    "10.0.0.1:-1",
    "10.0.0.1:http",
    "10.0.0.1:",
    "[2001:db8::1",
    "[2001:db8::1]1701",
    "[not-v6]:1701",
    "2001:db8::zz",
    "10.0.0.0/24",
    "@@@",
    "-x-",
    "a b",
    "x" * 300,
    "1.1.1.1.1",
    "[::1]:99999",
    "10.0.0.1:1701:1",
    "\u00e9t\u00e9",
)
WRONG_VALUES: tuple[object, ...] = (
    "text",
    "",
    12,
    -1,
    1.5,
    True,
    [],
    [1, "a"],
    {"a": 1},
    Raw("1979-05-27T07:32:00Z"),
    Raw("inf"),
    Raw("nan"),
    Raw("2024-01-01"),
)
WEIRD_NAMES = (
    "tunel",
    "max_retry",
    'quo"te',
    "it's",
    "line\nbreak",
    "tab\there",
    "\u00fcn\u00efc\u00f6d\u00e9",
    "\u202eevil",
    "nul\u0000byte",
    "k" * 5000,
    " ",
    "",
    "\x7f",
)
BAD_TOML = (
    "[tunnel.t1\npeer = 1\n",
    '[tunnel.t1]\npeer = "x\n',
    "[tunnel.t1]\npeer = 1\npeer = 2\n",
    "[tunnel.t1]\n[tunnel.t1]\n",
    "= 1\n",
    "[[tunnel]]\n[[tunnel]\n",
    "a = [1, 2\n",
    "a = {b = 1,}\n",
    "a = 0x\n",
    "a = 1__0\n",
    "a = '''\n",
    '[tunnel.t1]\npeer = "1.2.3.4"\n\u0000\n',
    "a = " + "[" * 5000 + "]" * 5000 + "\n",
    "a = " + "{b = " * 3000 + "1" + "}" * 3000 + "\n",
    "\ufeff[tunnel.t1]\n",
    "[tunnel.t1]\npeer = 1979-13-45\n",
)


def _tables(doc: Table) -> list[tuple[list[str], Table]]:
    """Every table of a configuration (tunnel, listener and session tables) with its path."""
    out: list[tuple[list[str], Table]] = []
    for kind in ("tunnel", "listener"):
        named = doc.get(kind)
        if not isinstance(named, dict):
            continue
        for name, body in named.items():
            assert isinstance(body, dict)
            out.append(([kind, name], body))
            sessions = body.get("session")
            if isinstance(sessions, dict):
                for sname, sbody in sessions.items():
                    assert isinstance(sbody, dict)
                    out.append(([kind, name, "session", sname], sbody))
    return out


def _copy(doc: Table) -> Table:
    result = json.loads(json.dumps(doc))
    assert isinstance(result, dict)
    return result


def _pick_table(rng: random.Random, doc: Table, *, sessions: bool | None = None) -> Table:
    tables = _tables(doc)
    if sessions is not None:
        tables = [t for t in tables if ("session" in t[0]) == sessions] or tables
    return rng.choice(tables)[1]


def _wrong_type(rng: random.Random, doc: Table) -> str:
    body = _pick_table(rng, doc)
    keys = [k for k in body if k != "session"] or ["window_size"]
    key = rng.choice(keys)
    current = body.get(key)
    choices = [v for v in WRONG_VALUES if type(v) is not type(current)]
    if isinstance(current, list):  # an empty array is still the right type
        choices = [v for v in choices if not isinstance(v, list)]
    body[key] = rng.choice(choices)
    return f"wrong type for {key}"


V3_WIDER = ("tid", "ptid", "sid", "psid", "max_tunnels")
"""32-bit in L2TPv3: 65536 is in range there."""


def _out_of_range(rng: random.Random, doc: Table, daemon: str) -> str:
    body = _pick_table(rng, doc)
    key = rng.choice(sorted(INT_KEYS))
    low, high = INT_KEYS[key]
    if daemon in ("l2tpd", "ql2tpd") and key in V3_WIDER:
        high = 0xFFFFFFFF
    body[key] = rng.choice([low - 1, high + 1, -(2**63), 2**63 - 1, high + rng.randint(2, 10**9)])
    return f"{key} out of range"


def _huge_string(rng: random.Random, doc: Table) -> str:
    body = _pick_table(rng, doc)
    key = rng.choice(STRING_KEYS)
    size = rng.choice([1018, 1100, 4096, 100_000])
    if key == "pppd_args":  # a path: up to 4095 bytes
        size = rng.choice([4096, 100_000])
    body[key] = rng.choice(["h", "\u00e9", "\U0001f600"]) * size
    return f"huge {key}"


def _unknown_key(rng: random.Random, doc: Table) -> str:
    name = rng.choice(WEIRD_NAMES)
    if rng.random() < 0.2:
        doc[name] = 1
    else:
        _pick_table(rng, doc)[name] = rng.choice(WRONG_VALUES)
    return f"unknown key {name[:20]!r}"


def _bad_address(rng: random.Random, doc: Table) -> str:
    tables = [b for p, b in _tables(doc) if "session" not in p]
    body = rng.choice(tables)
    keys = [k for k in ADDRESS_KEYS if k in body] or ["peer" if "peer" in body else "listen"]
    key = rng.choice(keys)
    body[key] = rng.choice(BAD_ADDRESSES)
    return f"bad address {key}"


def _bad_enum(rng: random.Random, doc: Table) -> str:
    body = _pick_table(rng, doc)
    key = rng.choice(sorted(ENUM_KEYS))
    body[key] = ENUM_KEYS[key]
    return f"bad {key}"


REQUIRED: dict[str, dict[str, tuple[str, ...]]] = {
    "kl2tpd": {"tunnel": ("peer",)},
    "l2tpd": {"tunnel": ("peer",), "listener": ("listen",)},
    "lns": {"listener": ("listen",)},
    "ql2tpd": {"tunnel": ("local", "peer", "tid", "ptid"), "session": ("sid", "psid")},
}


def _missing(rng: random.Random, doc: Table, daemon: str) -> str:
    choice = rng.randrange(4)
    if choice == 0:
        doc.clear()
        return "no tables"
    if choice == 1:
        kind = "tunnel" if "tunnel" in doc else "listener"
        doc[kind] = {}
        doc.pop("listener" if kind == "tunnel" else "tunnel", None)
        return f"empty [{kind}]"
    required = REQUIRED[daemon]
    options = [
        (body, key)
        for path, body in _tables(doc)
        for key in required.get(path[-2] if "session" in path else path[0], ())
        if key in body
    ]
    body, key = rng.choice(options)
    del body[key]
    return f"missing {key}"


def _duplicate(rng: random.Random, doc: Table, daemon: str) -> str:
    tunnels = doc.get("tunnel")
    if isinstance(tunnels, dict) and tunnels:
        name, body = next(iter(tunnels.items()))
        assert isinstance(body, dict)
        sessions = body.get("session")
        if isinstance(sessions, dict) and sessions and rng.random() < 0.5:
            first = next(iter(sessions.values()))
            assert isinstance(first, dict)
            clone = dict(first)
            if rng.random() < 0.5:
                clone.pop("interface_name", None)
            # Session IDs are only kept (and must be unique) in static tunnels: kl2tpd and
            # l2tpd ignore a dynamic session's sid with a warning, as go-l2tp does.
            if daemon == "ql2tpd" and ("sid" in clone or rng.random() < 0.3):
                clone.setdefault("sid", 5)
                first["sid"] = clone["sid"]
                clone.pop("interface_name", None)
                what = "sid"
            elif "interface_name" in clone or daemon == "kl2tpd":
                clone["interface_name"] = first.setdefault("interface_name", "ifdup0")
                what = "interface_name"
            else:
                clone["remote_end_id"] = first.get("remote_end_id", next(iter(sessions)))
                first["remote_end_id"] = clone["remote_end_id"]
                what = "remote_end_id"
            if "remote_end_id" in clone and what != "remote_end_id":
                clone["remote_end_id"] = str(clone["remote_end_id"]) + "-2"
            sessions["dup"] = clone
            return f"duplicate {what}"
        clone = dict(body)
        clone.pop("session", None)
        clone["tid"] = body.setdefault("tid", 77)
        tunnels[name + "-dup"] = clone
        return "duplicate tid"
    listeners = doc["listener"]
    assert isinstance(listeners, dict)
    body = dict(next(iter(listeners.values())))
    body.pop("session", None)
    listeners["dup"] = body
    return "duplicate listen"


def _wrong_table(rng: random.Random, doc: Table) -> str:
    kind = rng.choice(["tunnel", "listener"])
    shape = rng.randrange(4)
    if shape == 0:
        doc[kind] = rng.choice([5, "x", [1], True])
    elif shape == 1:
        doc[kind] = {"t": rng.choice([5, "x", [1, 2]])}
    elif shape == 2:
        body = _pick_table(rng, doc, sessions=False)
        body["session"] = rng.choice([5, "x", [1]])
    else:
        body = _pick_table(rng, doc, sessions=False)
        body["session"] = {"s": rng.choice([5, "x"])}
    return f"wrong table shape ({shape})"


def _text_case(rng: random.Random) -> tuple[str, bytes]:
    kind = rng.randrange(5)
    if kind == 0:
        return "bad TOML", rng.choice(BAD_TOML).encode()
    if kind == 1:
        return "binary garbage", rng.randbytes(rng.choice([1, 16, 512, 8192]))
    if kind == 2:
        return "invalid UTF-8", b'[tunnel.t1]\npeer = "\xff\xfe"\n'
    if kind == 3:
        return "empty", rng.choice([b"", b"\n", b"   \n\t\n", b"# just a comment\n"])
    text = rng.choice(BAD_TOML)
    cut = rng.randrange(1, max(2, len(text)))
    return "truncated TOML", text[:cut].encode() + b"\x00"


Defect = Callable[[random.Random, Table, str], str]


def _any_daemon(defect: Callable[[random.Random, Table], str]) -> Defect:
    return lambda rng, doc, daemon: defect(rng, doc)


DEFECTS: tuple[Defect, ...] = (
    _any_daemon(_wrong_type),
    _out_of_range,
    _any_daemon(_huge_string),
    _any_daemon(_unknown_key),
    _any_daemon(_bad_address),
    _any_daemon(_bad_enum),
    _missing,
    _duplicate,
    _any_daemon(_wrong_table),
)


def cases(daemon: str, count: int = PER_DAEMON, seed: int = SEED) -> list[Case]:
    """``count`` bad files for ``daemon``, the same ones for the same seed."""
    rng = random.Random(f"{seed}-{daemon}")
    out: list[Case] = []
    bases = _bases(daemon)
    while len(out) < count:
        if rng.random() < 0.15:
            what, data = _text_case(rng)
        else:
            doc = _copy(rng.choice(bases))
            defect = rng.choice(DEFECTS)
            what = defect(rng, doc, daemon)
            data = to_toml(doc).encode("utf-8", "surrogatepass")
        out.append(Case(daemon, what, data))
    return out


# -- checking one outcome ------------------------------------------------------------------

_REPR = re.compile(
    r"Traceback|object at 0x|<class |<[A-Za-z]+\.[A-Za-z]+: |Error\(|\[Errno |\\x[0-9a-f]{2}"
)


def problems(case: Case, path: Path, status: int | None, out: str, err: str) -> list[str]:
    """What is wrong with a daemon's answer to a bad file (empty: nothing)."""
    found = []
    if status != 1:
        found.append(f"exit status {status}, not 1")
    if out:
        found.append(f"stdout not empty: {out[:200]!r}")
    lines = err.splitlines()
    if len(lines) != 1:
        found.append(f"{len(lines)} lines on stderr, not 1")
    for line in lines:
        if not line.startswith(f"{path}: "):
            found.append(f"line does not start with the file name: {line[:200]!r}")
        if _REPR.search(line):
            found.append(f"traceback or Python repr: {line[:200]!r}")
        if len(line) > 400:
            found.append(f"line of {len(line)} characters")
    return found


def run_in_process(case: Case, path: Path) -> tuple[int | None, str, str]:
    """``main(["--check", path])`` of the case's daemon: (exit status, stdout, stderr)."""
    path.write_bytes(case.data)
    out, err = io.StringIO(), io.StringIO()
    status: int | None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = MAINS[case.daemon](["--check", str(path)])
        except SystemExit as exc:  # argparse
            status = exc.code if isinstance(exc.code, int) else 1
        except Exception as exc:  # reported as a failure, with the case that caused it
            err.write(f"Traceback: {type(exc).__name__}: {exc}\n")
            status = None
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("daemon", sorted(MAINS))
def test_bad_configs_give_one_line_error(daemon: str, tmp_path: Path) -> None:
    path = tmp_path / f"{daemon}.toml"
    failures = []
    for index, case in enumerate(cases(daemon)):
        status, out, err = run_in_process(case, path)
        found = problems(case, path, status, out, err)
        if found:
            failures.append(f"#{index} {case.what}: {'; '.join(found)}\n    stderr: {err[:300]!r}")
    assert not failures, f"{len(failures)} of {PER_DAEMON} bad files:\n" + "\n".join(failures[:30])


def test_the_generator_is_seeded_and_varied() -> None:
    first = cases("l2tpd", 200)
    assert first == cases("l2tpd", 200)
    kinds = {c.what.split(" ")[0] for c in first}
    assert {"wrong", "huge", "unknown", "bad", "missing", "duplicate"} <= kinds
    assert any(c.what == "binary garbage" for c in cases("lns", 500))


def test_every_base_is_valid(tmp_path: Path) -> None:
    """The defects, not the bases, must be what the daemons refuse."""
    for daemon in MAINS:
        for index, base in enumerate(_bases(daemon)):
            path = tmp_path / f"{daemon}{index}.toml"
            path.write_text(to_toml(base))
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                status = MAINS[daemon](["--check", str(path)])
            assert (status, err.getvalue()) == (0, ""), (daemon, index)
