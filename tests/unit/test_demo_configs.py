"""The demo's embedded configurations load for the daemon that runs them.

``l2tp demo`` (the project's main job) runs only in ``./tools/demo``; this keeps
its packaged files from drifting away from the configuration rules.
"""

from __future__ import annotations

from importlib import resources

import pytest

from l2tp import config as cfg

DEMO_FILES = {
    "ql2tpd-a.toml": cfg.Daemon.QL2TPD,
    "ql2tpd-b.toml": cfg.Daemon.QL2TPD,
    "l2tpd-a.toml": cfg.Daemon.L2TPD,
    "l2tpd-b.toml": cfg.Daemon.L2TPD,
    "lns.toml": cfg.Daemon.LNS,
    "kl2tpd.toml": cfg.Daemon.KL2TPD,
}


def test_every_packaged_demo_file_is_covered() -> None:
    packaged = {p.name for p in resources.files("l2tp.demo").iterdir() if p.name.endswith(".toml")}
    assert packaged == set(DEMO_FILES)


def _load(name: str) -> cfg.Config:
    text = resources.files("l2tp.demo").joinpath(name).read_text()
    return cfg.loads(text, file=name, daemon=DEMO_FILES[name])


@pytest.mark.parametrize("name", sorted(DEMO_FILES))
def test_demo_config_loads(name: str) -> None:
    config = _load(name)
    assert config.tunnels or config.listeners


def test_dynamic_demo_pseudowires_match_by_remote_end_id() -> None:
    (listener,) = _load("l2tpd-a.toml").listeners
    (tunnel,) = _load("l2tpd-b.toml").tunnels
    offered = {s.remote_end_id for s in listener.sessions}
    asked = {s.remote_end_id for s in tunnel.sessions}
    assert asked == offered == {"lan", "dmz"}
    assert listener.secret == tunnel.secret and listener.digest == tunnel.digest
