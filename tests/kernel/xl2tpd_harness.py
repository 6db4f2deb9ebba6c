"""Run xl2tpd LAC/LNS pairs (and tcpdump) inside network namespaces for kernel-tier tests.

Two xl2tpd instances on one machine need their own control pipe (``-C``), pid
file (``-p``), configuration and secrets files; everything lives under one
work directory per daemon. The pppd that xl2tpd starts reads the options file
written here (``pppoptfile``), whose path is unique, so the harness finds that
pppd again by its command line (:meth:`Xl2tpd.pppd_pids`) to hang the call up
(``SIGTERM`` to pppd makes xl2tpd send a CDN) and to kill it in the end.

Facts about Debian's xl2tpd 1.3.18 this relies on (see
``/work/shared/reference/test-vm-notes.md``): ``hostname =`` is the Host Name
AVP, ``name =`` the PPP authentication name; l2tp-secrets lines are
``us them secret`` (our host name first); ``hidden bit = yes`` adds a Random
Vector AVP but hides nothing; ``/run/xl2tpd`` must exist. Control pipe
commands: ``c LAC`` dials, ``d LAC`` disconnects the tunnel (StopCCN).

Every wait has a time limit; :meth:`Xl2tpd.stop` and :meth:`Capture.stop`
are safe to call in ``finally`` blocks whatever state the process is in. Both run
on the kernel tier's process harness, :class:`tests.kernel.daemons.ManagedProcess`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import require_tool, wait_until
from tests.kernel.daemons import ManagedProcess

L2TP_PORT = 1701


wait_for = wait_until
"""Poll a predicate every 50 ms until true; AssertionError after ``timeout`` s."""


@dataclass(frozen=True, kw_only=True)
class Auth:
    """Tunnel authentication and AVP hiding (both sides share ``secret``)."""

    secret: str
    hidden: bool = True


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def lns_config(
    *,
    listen: str,
    hostname: str,
    local_ip: str,
    ip_range: str,
    pppoptfile: Path,
    auth: Auth | None = None,
) -> str:
    """An xl2tpd.conf for an LNS accepting any LAC, PPP without authentication."""
    lines = [
        "[global]",
        f"listen-addr = {listen}",
        f"port = {L2TP_PORT}",
        "access control = no",
        "",
        "[lns default]",
        f"ip range = {ip_range}",
        f"local ip = {local_ip}",
        "require authentication = no",
        "refuse chap = yes",
        "refuse pap = yes",
        f"hostname = {hostname}",
        "length bit = yes",
        f"pppoptfile = {pppoptfile}",
    ]
    if auth is not None:
        lines += ["challenge = yes", f"hidden bit = {_yes(auth.hidden)}"]
    return "\n".join(lines) + "\n"


def lac_config(
    *,
    listen: str,
    name: str,
    lns: str,
    hostname: str,
    pppoptfile: Path,
    auth: Auth | None = None,
) -> str:
    """An xl2tpd.conf with one LAC entry ``name`` dialling ``lns`` on demand (``c name``)."""
    lines = [
        "[global]",
        f"listen-addr = {listen}",
        f"port = {L2TP_PORT}",
        "access control = no",
        "",
        f"[lac {name}]",
        f"lns = {lns}",
        "autodial = no",
        "redial = no",
        "require authentication = no",
        "refuse chap = yes",
        "refuse pap = yes",
        f"hostname = {hostname}",
        "length bit = yes",
        f"pppoptfile = {pppoptfile}",
    ]
    if auth is not None:
        lines += ["challenge = yes", f"hidden bit = {_yes(auth.hidden)}"]
    return "\n".join(lines) + "\n"


#: pppd options for both ends: no PPP authentication (overrides Debian's
#: ``auth`` in /etc/ppp/options, we run as root), no default route, LAC side
#: takes whatever addresses the LNS hands out.
PPP_OPTIONS = (
    "noauth",
    "nodefaultroute",
    "noccp",
    "ipcp-accept-local",
    "ipcp-accept-remote",
    "lcp-echo-interval 0",
    "debug",
)


@dataclass
class Xl2tpd(ManagedProcess):
    """One xl2tpd process (foreground, ``-D``) in a namespace with private files."""

    ns: str
    workdir: Path
    name: str
    config: str
    secrets: str = ""
    ppp_options: Sequence[str] = PPP_OPTIONS

    def __post_init__(self) -> None:
        ManagedProcess.__init__(self, f"xl2tpd {self.name}", self.workdir / f"{self.name}.log")

    @property
    def conf_path(self) -> Path:
        return self.workdir / f"{self.name}.conf"

    @property
    def secrets_path(self) -> Path:
        return self.workdir / f"{self.name}.secrets"

    @property
    def options_path(self) -> Path:
        return self.workdir / f"{self.name}.ppp-options"

    @property
    def control_path(self) -> Path:
        return self.workdir / f"{self.name}.control"

    @property
    def pid_path(self) -> Path:
        return self.workdir / f"{self.name}.pid"

    @property
    def log_path(self) -> Path:
        return self.log

    @property
    def pppd_log_path(self) -> Path:
        return self.workdir / f"{self.name}.pppd.log"

    def write_files(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.config)
        self.secrets_path.write_text(self.secrets)
        self.secrets_path.chmod(0o600)
        options = [*self.ppp_options, f"logfile {self.pppd_log_path}"]
        self.options_path.write_text("\n".join(options) + "\n")

    def is_ready(self) -> bool:
        return self.control_path.exists()

    def start(self, timeout: float = 20.0) -> None:
        """Start xl2tpd and wait until its control pipe exists."""
        xl2tpd = require_tool("xl2tpd")
        Path("/run/xl2tpd").mkdir(parents=True, exist_ok=True)
        self.write_files()
        argv = ["ip", "netns", "exec", self.ns, xl2tpd, "-D"]
        argv += ["-c", str(self.conf_path), "-s", str(self.secrets_path)]
        argv += ["-p", str(self.pid_path), "-C", str(self.control_path)]
        self.spawn(argv)
        self.wait_ready(timeout)

    def control(self, command: str, timeout: float = 5.0) -> None:
        """Write one command (``c NAME``, ``d NAME`` ...) to the control pipe."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(self.control_path, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:  # ENXIO while xl2tpd reopens the pipe between commands
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        try:
            os.write(fd, command.encode() + b"\n")
        finally:
            os.close(fd)

    def output(self) -> str:
        """xl2tpd's log followed by its pppds' log."""
        text = ""
        for path in (self.log_path, self.pppd_log_path):
            if path.exists():
                text += f"--- {path.name}\n" + path.read_text(errors="replace")
        return text

    def pppd_pids(self) -> list[int]:
        """PIDs of the pppd processes this xl2tpd started (found by our options file)."""
        return pids_matching(["pppd", str(self.options_path)])

    def stop(
        self, sig: int = signal.SIGTERM, timeout: float = 10.0, *, raise_on_timeout: bool = False
    ) -> int | None:
        """SIGTERM xl2tpd (it hangs up its calls), then SIGKILL it and any pppd left."""
        rc = super().stop(sig, timeout, raise_on_timeout=raise_on_timeout)
        kill_pids(self.pppd_pids(), timeout=timeout)
        return rc


def pids_matching(words: Iterable[str]) -> list[int]:
    """PIDs whose command line contains every one of ``words`` as a substring."""
    wanted = [w.encode() for w in words]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if all(w in cmdline for w in wanted):
            found.append(int(entry.name))
    return found


def kill_pids(pids: Iterable[int], timeout: float = 5.0) -> None:
    """SIGTERM, then after ``timeout`` SIGKILL, each process (not our children: no reaping)."""
    pids = list(pids)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)

    def gone() -> bool:
        return not any(Path(f"/proc/{pid}").exists() for pid in pids)

    try:
        wait_for(gone, timeout, "processes to exit")
    except AssertionError:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@dataclass
class Capture(ManagedProcess):
    """``tcpdump -U --immediate-mode -w FILE`` on an interface inside a namespace."""

    ns: str
    interface: str
    path: Path
    bpf: str = f"udp port {L2TP_PORT}"

    def __post_init__(self) -> None:
        ManagedProcess.__init__(self, "tcpdump", self.path.with_suffix(".tcpdump.log"))

    @property
    def log_path(self) -> Path:
        return self.log

    def is_ready(self) -> bool:
        return "listening on" in self.output()

    def start(self, timeout: float = 20.0) -> None:
        tcpdump = require_tool("tcpdump")
        # --immediate-mode: libpcap hands each packet over at once instead of in blocks
        # with a timeout; a block still pending when SIGINT comes is lost, and in the
        # slow VM that cut the last seconds off a capture (ICMPv6 missing, builtin PPP).
        argv = ["ip", "netns", "exec", self.ns, tcpdump, "-n", "-U", "--immediate-mode", "-s", "0"]
        argv += ["-i", self.interface, "-w", str(self.path), self.bpf]
        self.spawn(argv, append=False)
        self.wait_ready(timeout)

    def stop(
        self, sig: int = signal.SIGINT, timeout: float = 10.0, *, raise_on_timeout: bool = False
    ) -> int | None:
        """SIGINT tcpdump so it flushes and closes the file."""
        return super().stop(sig, timeout, raise_on_timeout=raise_on_timeout)


def ppp_addresses(ns: str) -> dict[str, tuple[str, str]]:
    """``{ifname: (local, peer)}`` of the ppp interfaces in ``ns`` that have IPv4 addresses.

    (``ip -j -4 addr`` leaves ``link_type`` out, hence no ``-4``.)
    """
    out = subprocess.run(
        ["ip", "-n", ns, "-j", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    found: dict[str, tuple[str, str]] = {}
    for link in json.loads(out or "[]"):
        if link.get("link_type") != "ppp":
            continue
        for addr in link.get("addr_info", []):
            if addr.get("family") == "inet" and "address" in addr:
                found[link["ifname"]] = (addr["local"], addr["address"])
    return found


def l2tp_tunnel_count(ns: str) -> int:
    out = subprocess.run(
        ["ip", "-n", ns, "-j", "l2tp", "show", "tunnel"], capture_output=True, text=True
    ).stdout
    return len(json.loads(out or "[]"))


def ping(
    ns: str, address: str, count: int = 2, timeout_s: int = 5
) -> subprocess.CompletedProcess[str]:
    """``ping -n`` from inside ``ns``; returns the finished process (check returncode)."""
    argv = ["ip", "netns", "exec", ns, require_tool("ping"), "-n", "-c", str(count)]
    argv += ["-i", "0.2", "-W", str(timeout_s), address]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s * count + 10)


def save_artifact(path: Path, name: str | None = None) -> Path | None:
    """Copy ``path`` into ``$L2TP_VM_RESULTS`` (when set) and return the copy's path."""
    results = os.environ.get("L2TP_VM_RESULTS")
    if not results or not path.exists():
        return None
    target = Path(results) / (name or path.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(path.read_bytes())
    return target


@dataclass(frozen=True)
class Xl2tpdPair:
    """A running LNS and LAC; the LAC entry is called :attr:`lac_name`."""

    lns: Xl2tpd
    lac: Xl2tpd
    lac_name: str = "peer"

    def dial(self) -> None:
        """``c LAC``: the LAC opens the tunnel and a session (ICRQ)."""
        self.lac.control(f"c {self.lac_name}")

    def disconnect(self) -> None:
        """``d LAC``: the LAC closes the tunnel (StopCCN)."""
        self.lac.control(f"d {self.lac_name}")

    def output(self) -> str:
        return f"LNS:\n{self.lns.output()}\nLAC:\n{self.lac.output()}"


@contextlib.contextmanager
def xl2tpd_pair(
    *,
    lns_ns: str,
    lns_addr: str,
    lac_ns: str,
    lac_addr: str,
    workdir: Path,
    auth: Auth | None = None,
    lns_ppp_ip: str = "10.57.0.1",
    lac_ppp_range: str = "10.57.0.2-10.57.0.9",
    lns_hostname: str = "lns-host",
    lac_hostname: str = "lac-host",
) -> Iterator[Xl2tpdPair]:
    """Start an xl2tpd LNS in ``lns_ns`` and an xl2tpd LAC in ``lac_ns``; stop both (and
    every pppd they started) on exit. Nothing is dialled: call :meth:`Xl2tpdPair.dial`."""
    lns_work, lac_work = workdir / "lns", workdir / "lac"
    secret_line = (lambda us, them: f"{us} {them} {auth.secret}\n") if auth else None
    lns = Xl2tpd(
        ns=lns_ns,
        workdir=lns_work,
        name="lns",
        config=lns_config(
            listen=lns_addr,
            hostname=lns_hostname,
            local_ip=lns_ppp_ip,
            ip_range=lac_ppp_range,
            pppoptfile=lns_work / "lns.ppp-options",
            auth=auth,
        ),
        secrets=secret_line(lns_hostname, lac_hostname) if secret_line else "",
    )
    lac = Xl2tpd(
        ns=lac_ns,
        workdir=lac_work,
        name="lac",
        config=lac_config(
            listen=lac_addr,
            name="peer",
            lns=lns_addr,
            hostname=lac_hostname,
            pppoptfile=lac_work / "lac.ppp-options",
            auth=auth,
        ),
        secrets=secret_line(lac_hostname, lns_hostname) if secret_line else "",
    )
    try:
        lns.start()
        lac.start()
        yield Xl2tpdPair(lns=lns, lac=lac)
    finally:
        lac.stop()
        lns.stop()
