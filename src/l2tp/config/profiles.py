"""Per-daemon validation profiles: each daemon accepts only what it can run.

A configuration that is valid TOML and internally consistent can still ask a
daemon for something it does not implement (an L2TPv2 tunnel in ql2tpd, a
listener in kl2tpd). The profile turns that into a load-time error naming the
daemon, rather than a failure at run time. ``None`` (no daemon named, as in
``l2tp check-config`` without ``--daemon``) accepts the union of all of them
but then has no default protocol version to fall back on.
"""

from __future__ import annotations

from dataclasses import dataclass

from l2tp.config.model import Daemon, Pseudowire, TunnelMode, Version


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    daemon: Daemon | None
    versions: tuple[Version, ...]
    default_version: Version | None
    modes: tuple[TunnelMode, ...]
    pseudowires: tuple[Pseudowire, ...]
    tunnels: bool
    listeners: bool

    @property
    def name(self) -> str:
        return str(self.daemon) if self.daemon is not None else "this configuration"

    def only(self, key: str, allowed: tuple[str, ...]) -> str:
        """The reason text for a value the daemon does not support."""
        return f"{self.name} supports only {key} {' or '.join(allowed)}"


_ALL_MODES = tuple(TunnelMode)

PROFILES: dict[Daemon | None, Profile] = {
    None: Profile(
        daemon=None,
        versions=tuple(Version),
        default_version=None,
        modes=_ALL_MODES,
        pseudowires=tuple(Pseudowire),
        tunnels=True,
        listeners=True,
    ),
    Daemon.QL2TPD: Profile(
        daemon=Daemon.QL2TPD,
        versions=(Version.L2TPV3,),
        default_version=Version.L2TPV3,
        modes=(TunnelMode.STATIC, TunnelMode.QUIESCENT),
        pseudowires=(Pseudowire.ETH,),
        tunnels=True,
        listeners=False,
    ),
    Daemon.KL2TPD: Profile(
        daemon=Daemon.KL2TPD,
        versions=(Version.L2TPV2,),
        default_version=Version.L2TPV2,
        modes=(TunnelMode.DYNAMIC,),
        pseudowires=(Pseudowire.PPP, Pseudowire.PPPAC),
        tunnels=True,
        listeners=False,
    ),
    Daemon.LNS: Profile(
        daemon=Daemon.LNS,
        versions=(Version.L2TPV2,),
        default_version=Version.L2TPV2,
        modes=(TunnelMode.DYNAMIC,),
        pseudowires=(Pseudowire.PPP,),
        tunnels=False,
        listeners=True,
    ),
    Daemon.L2TPD: Profile(
        daemon=Daemon.L2TPD,
        versions=(Version.L2TPV3,),
        default_version=Version.L2TPV3,
        modes=(TunnelMode.DYNAMIC,),
        pseudowires=(Pseudowire.ETH, Pseudowire.PPP),
        tunnels=True,
        listeners=True,
    ),
}


def profile_for(daemon: Daemon | str | None) -> Profile:
    """The profile of ``daemon`` (a :class:`Daemon` or its name); ValueError if unknown."""
    if daemon is None:
        return PROFILES[None]
    try:
        return PROFILES[Daemon(daemon)]
    except ValueError:
        names = ", ".join(d.value for d in Daemon)
        raise ValueError(f"unknown daemon {daemon!r} (expected one of {names})") from None


def default_mode(
    profile: Profile, version: Version | None, has_ptid: bool, hello: float
) -> TunnelMode:
    """The tunnel mode when the ``mode`` key is absent.

    ql2tpd: static, or quiescent when ``hello_timeout`` > 0 (go-l2tp's rule).
    kl2tpd and l2tpd: dynamic. Without a daemon: an L2TPv3 tunnel that names
    the peer's tunnel ID (``ptid``) can only be static or quiescent, since a
    dynamic tunnel learns it from the peer; anything else is dynamic.
    """
    static_like = TunnelMode.QUIESCENT if hello > 0 else TunnelMode.STATIC
    if profile.daemon is Daemon.QL2TPD:
        return static_like
    if profile.daemon is None and version is Version.L2TPV3 and has_ptid:
        return static_like
    return TunnelMode.DYNAMIC
