"""``[listener.L.radius]``: inheritance from ``[radius]``, the daemon-wide keys refused,
spools that must differ, ``--check`` without secrets, and the listener's name reaching
each session's built-in PPP options."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, ip_address
from pathlib import Path

import pytest

from l2tp.config import ConfigErrors, dump_toml, loads, to_dict
from l2tp.config.fields import show
from l2tp.config.model import Endpoint, RadiusSection
from l2tp.daemons.configmap import listen_options

F = "t.toml"


def listener(name: str, port: int, radius: str = "", *, secrets: bool = False) -> str:
    text = f"""
[listener.{name}]
listen = "192.0.2.1:{port}"
ppp = "builtin"

[listener.{name}.builtin_ppp]
local_address = "10.0.0.1"
address_pool = "10.{port % 256}.0.0/24"
"""
    if secrets:
        text += 'secrets = "/etc/ppp/chap-secrets"\n'
    if radius:
        text += f"\n[listener.{name}.radius]\n{radius}"
    return text


DAEMON = """
[radius]
auth_servers = [ { address = "192.0.2.10", secret = "daemon-secret" } ]
acct_servers = [ { address = "192.0.2.10", secret = "daemon-secret" } ]
spool = "/var/lib/l2tp/acct.spool"
timeout = 2000
retries = 1
nas_identifier = "lns-1"
nas_ip_address = "192.0.2.1"
tunnel_accounting = true
"""
OWN_AUTH = 'auth_servers = [ { address = "192.0.2.20:1645", secret = "branch-secret" } ]\n'


def load(text: str) -> object:
    return loads(text, file=F, daemon="lns", hostname="h", resolver=None)


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        load(text)
    return str(info.value).splitlines()


def test_a_table_naming_only_auth_servers_keeps_the_daemons_other_keys() -> None:
    config = loads(
        DAEMON + listener("a", 1701, OWN_AUTH) + listener("b", 1702),
        file=F,
        daemon="lns",
        hostname="h",
        resolver=None,
    )
    daemon = config.radius
    assert daemon is not None
    own = config.listener("a").radius
    assert own is not None
    (server,) = own.auth_servers
    assert server.address == Endpoint(address=ip_address("192.0.2.20"), port=1645)
    assert server.secret == "branch-secret"
    assert (own.timeout, own.retries, own.holddown) == (2.0, 1, daemon.holddown)
    assert (own.nas_identifier, own.nas_ip_address) == ("lns-1", IPv4Address("192.0.2.1"))
    # Daemon-wide: no DAE of its own; accounting left to the daemon's engine.
    assert own.dae is None and own.accounting is None
    assert config.listener("b").radius is None  # the daemon's


def test_a_table_naming_only_nas_identity_asks_the_daemons_servers() -> None:
    config = loads(
        DAEMON + listener("a", 1701, 'nas_identifier = "branch"\ntimeout = 500\n'),
        file=F,
        daemon="lns",
        hostname="h",
        resolver=None,
    )
    own = config.listener("a").radius
    assert config.radius is not None and own is not None
    assert own.auth_servers == config.radius.auth_servers
    assert (own.nas_identifier, own.timeout, own.retries) == ("branch", 0.5, 1)


def test_own_accounting_with_its_own_spool_and_keys() -> None:
    table = (
        OWN_AUTH
        + 'acct_servers = [ { address = "192.0.2.20", secret_file = "/etc/l2tp/b.secret" } ]\n'
        + 'spool = "/var/lib/l2tp/branch.spool"\nacct_interim_interval = 60\n'
    )
    config = loads(
        DAEMON + listener("a", 1701, table), file=F, daemon="lns", hostname="h", resolver=None
    )
    own = config.listener("a").radius
    assert own is not None and own.accounting is not None
    assert own.accounting.spool == "/var/lib/l2tp/branch.spool"
    assert own.accounting.interim_interval == 60
    assert own.accounting.servers[0].address.port == 1813
    assert not own.accounting.tunnel_accounting  # daemon-wide: never the listener's


def test_without_a_daemon_table_the_defaults_are_laid_under() -> None:
    config = loads(
        listener("a", 1701, OWN_AUTH) + listener("b", 1702, secrets=True),
        file=F,
        daemon="lns",
        hostname="h",
        resolver=None,
    )
    assert config.radius is None
    own = config.listener("a").radius
    defaults = RadiusSection()
    assert own is not None and (own.timeout, own.retries) == (defaults.timeout, defaults.retries)
    # Listener a needs no secrets file (RADIUS checks its peers) ...
    assert config.listener("a").builtin_ppp is not None
    # ... but a listener without RADIUS still does.
    lines = errors(listener("a", 1701, OWN_AUTH) + listener("b", 1702))
    assert lines == [
        "t.toml: listener.b.builtin_ppp: key 'secrets': missing (needed to check the peer with"
        ' auth = ["mschap-v2", "chap-md5"], unless [radius] has auth_servers; auth = []'
        " accepts any peer)"
    ]


def test_daemon_wide_keys_are_refused_with_their_key_paths() -> None:
    table = (
        "tunnel_accounting = true\naccounting_on_off = true\n\n"
        '[listener.a.radius.dae]\nlisten = "192.0.2.1"\n'
        'clients = [ { address = "192.0.2.10", secret = "x" } ]\n'
    )
    lines = errors(DAEMON + listener("a", 1701, table))
    assert lines == [
        "t.toml: listener.a.radius: key 'dae': [radius.dae] is daemon-wide (one Dynamic"
        " Authorization server for every listener's sessions): set it in [radius]",
        "t.toml: listener.a.radius: key 'tunnel_accounting': daemon-wide (the tunnel records"
        " go to [radius]'s acct_servers): set it in [radius]",
        "t.toml: listener.a.radius: key 'accounting_on_off': daemon-wide (Accounting-On/Off"
        " say the whole NAS restarted): set it in [radius]",
    ]


def test_a_spool_used_twice_names_both_key_paths() -> None:
    acct = 'acct_servers = [ { address = "192.0.2.20", secret = "b" } ]\nspool = "{}"\n'
    same_as_daemon = acct.replace("{}", "/var/lib/l2tp//acct.spool")  # normalised: the same
    lines = errors(DAEMON + listener("a", 1701, same_as_daemon))
    assert lines == [
        "t.toml: listener.a.radius: key 'spool': \"/var/lib/l2tp//acct.spool\" is already used"
        " by radius.spool (each accounting engine needs a spool file of its own)"
    ]
    shared = acct.replace("{}", "/var/lib/l2tp/branch.spool")
    lines = errors(DAEMON + listener("a", 1701, shared) + listener("b", 1702, shared))
    assert lines == [
        "t.toml: listener.b.radius: key 'spool': \"/var/lib/l2tp/branch.spool\" is already"
        " used by listener.a.radius.spool (each accounting engine needs a spool file of its own)"
    ]


def test_a_relative_spool_is_the_same_file_as_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon opens a relative spool from its working directory (it does not
    change it): ``acct.spool`` there and its absolute path are one file."""
    monkeypatch.chdir(tmp_path)
    daemon = DAEMON.replace("/var/lib/l2tp/acct.spool", "acct.spool")
    servers = 'acct_servers = [ { address = "192.0.2.20", secret = "b" } ]\n'
    absolute = f'{servers}spool = "{tmp_path}/acct.spool"\n'
    (line,) = errors(daemon + listener("a", 1701, absolute))
    assert line.startswith("t.toml: listener.a.radius: key 'spool': ")
    assert line.endswith(
        " is already used by radius.spool (each accounting engine needs a spool file of its own)"
    )


def test_key_errors_name_the_listeners_table() -> None:
    table = (
        "auth_servers = []\ntimeout = 0\nspool_max_records = 5\n"
        'nas_ip_address = "nope"\nbogus = 1\n'
    )
    lines = errors(DAEMON + listener("a", 1701, table))
    assert "t.toml: listener.a.radius: key 'bogus': unknown key" in lines
    assert "t.toml: listener.a.radius: key 'auth_servers': must list at least one server" in lines
    assert any(line.startswith("t.toml: listener.a.radius: key 'timeout': ") for line in lines)
    assert (
        "t.toml: listener.a.radius: key 'spool_max_records': has no effect without acct_servers"
        " (the accounting servers)"
    ) in lines
    assert (
        "t.toml: listener.a.radius: key 'nas_ip_address': \"nope\" is not an IP address"
    ) in lines
    missing = errors(
        DAEMON
        + listener("a", 1701, 'acct_servers = [ { address = "192.0.2.20", secret = "b" } ]\n')
    )
    assert missing[0].startswith("t.toml: listener.a.radius: key 'spool': missing (required")
    wrong = errors(
        DAEMON + listener("a", 1701).replace('ppp = "builtin"', 'ppp = "builtin"\nradius = 3')
    )
    assert wrong == [
        "t.toml: listener.a: key 'radius': expected a table [listener.a.radius], got integer 3"
    ]


def test_check_hides_the_listeners_secrets_and_shows_the_effective_table() -> None:
    text = DAEMON + listener("a", 1701, OWN_AUTH)
    config = loads(text, file=F, daemon="lns", hostname="h", resolver=None)
    dumped = dump_toml(config)
    assert "branch-secret" not in dumped and "daemon-secret" not in dumped
    section = dumped.split("[listener.a.radius]\n", 1)[1].split("\n\n", 1)[0]
    assert section.splitlines() == [
        'auth_servers = [{ address = "192.0.2.20:1645", secret = "(hidden)" }]',
        "timeout = 2000",
        "retries = 1",
        "holddown = 60000",
        "max_outstanding = 1024",
        'nas_identifier = "lns-1"',
        'nas_ip_address = "192.0.2.1"',
    ]
    data = to_dict(config)
    assert "branch-secret" not in json.dumps(data)
    entries = data["listeners"]
    assert isinstance(entries, list)
    (entry,) = entries
    assert entry["radius"]["auth_servers"] == [{"address": "192.0.2.20:1645", "secret": "(hidden)"}]
    # With secret files, the output loads back to the same configuration.
    files = text.replace('secret = "branch-secret"', 'secret_file = "/etc/l2tp/b.secret"').replace(
        'secret = "daemon-secret"', 'secret_file = "/etc/l2tp/d.secret"'
    )
    config = loads(files, file=F, daemon="lns", hostname="h", resolver=None)
    assert loads(dump_toml(config), file=F, daemon="lns", hostname="h", resolver=None) == config


def test_the_listeners_name_reaches_its_sessions_built_in_ppp() -> None:
    config = loads(
        DAEMON + listener("a", 1701, OWN_AUTH), file=F, daemon="lns", hostname="h", resolver=None
    )
    options = listen_options(config.listener("a")).ppp.builtin_ppp
    assert options is not None and options.listener == "a"
    v3 = """
[listener.v3]
listen = "192.0.2.1:1701"
version = "l2tpv3"
pseudowire = "ppp"
ppp = "builtin"

[listener.v3.builtin_ppp]
local_address = "10.0.0.1"
secrets = "/etc/ppp/chap-secrets"

[listener.v3.session.s1]
"""
    config = loads(v3, file=F, daemon="l2tpd", hostname="h", resolver=None)
    (offer,) = listen_options(config.listener("v3")).pseudowires
    assert offer.options.builtin_ppp is not None and offer.options.builtin_ppp.listener == "v3"


def test_a_listener_running_pppd_refuses_a_radius_table() -> None:
    """A table that would change nothing (pppd authenticates and accounts by itself)
    is an error naming the key, not silently accepted."""
    text = DAEMON + listener("branch", 1701, OWN_AUTH).replace('ppp = "builtin"', 'ppp = "pppd"')
    text = "\n".join(
        line
        for line in text.splitlines()
        if not line.startswith(("[listener.branch.builtin_ppp]", "local_address", "address_pool"))
    )
    assert errors(text) == [
        "t.toml: listener.branch: key 'radius': has no effect: this listener's sessions run"
        ' pppd; [listener.L.radius] applies to sessions with ppp = "builtin"'
    ]
    assert load(DAEMON + listener("branch", 1701, OWN_AUTH)) is not None  # built-in: accepted


SPOOL_ACCT = 'acct_servers = [ { address = "192.0.2.20", secret = "b" } ]\nspool = "{}"\n'


def spool_error(holder: str, listener_name: str, spool: object) -> str:
    return (
        f"t.toml: listener.{listener_name}.radius: key 'spool': {show(str(spool))} is already"
        f" used by {holder} (each accounting engine needs a spool file of its own)"
    )


def test_a_spool_behind_a_symbolic_link_to_its_directory_is_the_same_file(
    tmp_path: Path,
) -> None:
    real = tmp_path / "state"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    daemon = DAEMON.replace("/var/lib/l2tp/acct.spool", str(real / "acct.spool"))
    aliased = tmp_path / "link" / "acct.spool"  # the file need not exist yet
    lines = errors(daemon + listener("a", 1701, SPOOL_ACCT.replace("{}", str(aliased))))
    assert lines == [spool_error("radius.spool", "a", aliased)]
    # Between two listeners too, and either way round.
    other = str(real / "b.spool")
    lines = errors(
        DAEMON
        + listener("a", 1701, SPOOL_ACCT.replace("{}", other))
        + listener("b", 1702, SPOOL_ACCT.replace("{}", str(tmp_path / "link" / "b.spool")))
    )
    assert lines == [spool_error("listener.a.radius.spool", "b", tmp_path / "link" / "b.spool")]


def test_a_symbolic_link_to_the_spool_file_and_a_hard_link_are_the_same_file(
    tmp_path: Path,
) -> None:
    target = tmp_path / "acct.spool"
    target.write_bytes(b"")
    (tmp_path / "alias.spool").symlink_to(target)
    daemon = DAEMON.replace("/var/lib/l2tp/acct.spool", str(target))
    alias = tmp_path / "alias.spool"
    lines = errors(daemon + listener("a", 1701, SPOOL_ACCT.replace("{}", str(alias))))
    assert lines == [spool_error("radius.spool", "a", alias)]
    # A symbolic link whose target does not exist yet: its target's path is the file.
    dangling = tmp_path / "later.spool"
    (tmp_path / "to-later.spool").symlink_to(dangling)
    lines = errors(
        DAEMON
        + listener("a", 1701, SPOOL_ACCT.replace("{}", str(tmp_path / "to-later.spool")))
        + listener("b", 1702, SPOOL_ACCT.replace("{}", str(dangling)))
    )
    assert lines == [spool_error("listener.a.radius.spool", "b", dangling)]
    # A hard link: two names, one inode.
    hard = tmp_path / "hard.spool"
    hard.hardlink_to(target)
    lines = errors(daemon + listener("a", 1701, SPOOL_ACCT.replace("{}", str(hard))))
    assert lines == [spool_error("radius.spool", "a", hard)]


def test_dot_dot_segments_are_resolved_as_the_kernel_resolves_them(tmp_path: Path) -> None:
    """``sub/../acct.spool`` is ``acct.spool``; and ``link/../x`` is the link target's
    sibling, not a sibling of the link (a lexical normalisation would get both wrong)."""
    (tmp_path / "sub").mkdir()
    spool = tmp_path / "acct.spool"
    daemon = DAEMON.replace("/var/lib/l2tp/acct.spool", str(spool))
    dotted = f"{tmp_path}/sub/../acct.spool"
    lines = errors(daemon + listener("a", 1701, SPOOL_ACCT.replace("{}", dotted)))
    assert lines == [spool_error("radius.spool", "a", dotted)]
    # link -> deep/inner: link/../x.spool is deep/x.spool, not tmp_path/x.spool.
    (tmp_path / "deep" / "inner").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "deep" / "inner", target_is_directory=True)
    through = f"{tmp_path}/link/../x.spool"
    lines = errors(
        DAEMON
        + listener("a", 1701, SPOOL_ACCT.replace("{}", str(tmp_path / "deep" / "x.spool")))
        + listener("b", 1702, SPOOL_ACCT.replace("{}", through))
    )
    assert lines == [spool_error("listener.a.radius.spool", "b", through)]
    sibling = SPOOL_ACCT.replace("{}", str(tmp_path / "x.spool"))
    load(
        DAEMON
        + listener("a", 1701, sibling)
        + listener("b", 1702, SPOOL_ACCT.replace("{}", through))
    )


def test_one_directory_reached_through_two_paths_is_one_directory(tmp_path: Path) -> None:
    """What a bind mount does (two paths, one directory: same device and inode), which
    no real path shows; a hard-linked directory cannot be made, a bind mount needs
    root: a symbolic link whose real path is hidden from the keys stands for it."""
    from l2tp.config.radius_listener import spool_keys

    (tmp_path / "state").mkdir()
    (tmp_path / "view").symlink_to(tmp_path / "state", target_is_directory=True)
    a = spool_keys(str(tmp_path / "state" / "x.spool"))
    b = spool_keys(str(tmp_path / "view" / "x.spool"))
    dir_a = {k for k in a if k[0] == "dir"}
    dir_b = {k for k in b if k[0] == "dir"}
    assert dir_a and dir_a == dir_b  # met by the directory's identity alone
    assert not (a & spool_keys(str(tmp_path / "state" / "y.spool")))
    # Nothing to look at (a missing directory): the real path still compares.
    missing = spool_keys(str(tmp_path / "none" / "x.spool"))
    assert missing == {("path", str(tmp_path / "none" / "x.spool"))}
