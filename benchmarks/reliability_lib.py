"""Shared pieces of the reliability suite (``bench_reliability.py``).

* :func:`daemon_defaults`: the control-plane policy the daemons run with when
  their file names only the addresses, built by the daemons' own loader and
  mapping (:func:`l2tp.config.loads`, :mod:`l2tp.daemons.configmap`), so the
  suite follows any change of the defaults.
* :class:`LnsDaemon`: an ``l2tp-lns`` child (``--null-dataplane``) on a fresh
  127.0.0.1 port, with its RSS, peak RSS, CPU time and descriptors read from
  ``/proc/PID``, its tunnel and session counts read from the summary it prints
  on SIGHUP (a reload of an unchanged file changes nothing), and its stderr kept
  in a file and scanned for tracebacks and ERROR lines.
* :class:`RawPeer`: a scripted L2TPv2 peer on a raw UDP socket, built on the
  project's codec (``serialize_message`` / ``parse_message``), that numbers
  what it sends, acknowledges (or not) what it receives, and records every
  message the LNS sends it.
* :func:`udp_socket_queue`: receive queue and drops of a UDP socket
  (``/proc/net/udp``), for back-pressure and to report what the kernel dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _path in (HERE, REPO):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import l2tp  # noqa: E402
from l2tp import config as cfg  # noqa: E402
from l2tp.protocol import (  # noqa: E402
    CodecError,
    ControlMessage,
    FramingBits,
    MessageType,
    ProtocolVersion,
    parse_message,
    serialize_message,
)
from l2tp.protocol.events import CallParams  # noqa: E402
from l2tp.protocol.header import ControlHeader  # noqa: E402
from l2tp.protocol.listener import ListenerConfig  # noqa: E402
from l2tp.protocol.tunnel import TunnelConfig  # noqa: E402
from l2tp.runtime.control import ListenOptions  # noqa: E402

try:  # the daemons' TOML -> policy mapping; l2tp.runtime.configmap in trees before d632bdd
    configmap = importlib.import_module("l2tp.daemons.configmap")
except ImportError:
    configmap = importlib.import_module("l2tp.runtime.configmap")

Address = tuple[str, int]
HOST = "127.0.0.1"
"""Where the LNS listens and the legitimate LAC lives."""
ATTACK_HOST = "127.0.0.2"
"""Where floods and fuzz come from (also loopback on Linux): a different peer address
from the legitimate LAC's, as an attacker's would be, so per-peer limits apply to it."""
L2TP_SRC = str(Path(l2tp.__file__).resolve().parent.parent)


# ------------------------------------------------------------ the daemons' defaults


@dataclass(frozen=True, slots=True)
class Defaults:
    """The policy of an LAC tunnel and an LNS listener whose files give only addresses."""

    version: int
    lac: TunnelConfig
    call: CallParams
    listener: ListenerConfig
    options: ListenOptions
    lac_daemon: str
    lns_daemon: str

    def describe(self) -> dict[str, Any]:
        lt, nt = self.lac.transport, self.listener.tunnel.transport
        return {
            "from": f"{self.lac_daemon} [tunnel] / {self.lns_daemon} [listener] files "
            "with only the addresses (l2tp.config.loads + l2tp.daemons.configmap)",
            "lac_max_retries": lt.retries_for(self.version),
            "lns_max_retries": nt.retries_for(self.version),
            "initial_timeout_s": lt.initial_timeout,
            "max_timeout_s": lt.max_timeout,
            "lac_hello_s": lt.hello_interval,
            "lns_hello_s": nt.hello_interval,
            "receive_window": lt.receive_window,
            "setup_timeout_s": self.listener.tunnel.setup_timeout,
            "max_tunnels": self.listener.max_tunnels,
            "max_pending_tunnels": getattr(self.listener, "max_pending_tunnels", None),
            "max_pending_per_peer": getattr(self.listener, "max_pending_per_peer", None),
            "v3_call_pseudowire_type": self.call.pseudowire_type if self.version == 3 else None,
        }


def daemon_defaults(version: int, *, listener_extra: str = "", tunnel_extra: str = "") -> Defaults:
    """The LAC (kl2tpd / l2tpd) and LNS (l2tp-lns / l2tpd) policy of a minimal file.

    ``listener_extra`` / ``tunnel_extra`` are TOML lines added to the ``[listener]``
    / ``[tunnel]`` table (e.g. ``"max_retries = 10"``) to measure other settings.
    """
    lac_daemon, lns_daemon = ("kl2tpd", "lns") if version == 2 else ("l2tpd", "l2tpd")
    lns_file = cfg.loads(
        f'[listener.lns]\nlisten = "{HOST}:1701"\n{listener_extra}\n',
        file="<lns>",
        daemon=lns_daemon,
        hostname="lns",
    )
    listener: ListenerConfig = configmap.listener_config(lns_file.listener("lns"))
    # A v3 call must name a pseudowire type the listener offers (RFC 3931 5.4.3).
    pseudowire = "ppp" if version == 2 or 7 in listener.tunnel.pseudowire_capabilities else "eth"
    lac_file = cfg.loads(
        f'[tunnel.lac]\npeer = "{HOST}:1701"\n{tunnel_extra}\n'
        f'[tunnel.lac.session.s]\npseudowire = "{pseudowire}"\n',
        file="<lac>",
        daemon=lac_daemon,
        hostname="lac",
    )
    lc = lns_file.listener("lns")
    t = lac_file.tunnel("lac")
    return Defaults(
        version=version,
        lac=configmap.tunnel_config(t),
        call=configmap.session_call(t.session("s")),
        listener=listener,
        options=configmap.listen_options(lc),
        lac_daemon=lac_daemon,
        lns_daemon=lns_daemon,
    )


# ------------------------------------------------------------ /proc


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 free right now (bound, read, closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of ``pid`` in KiB; empty once it has exited."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        pass
    return out


def proc_cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def udp_socket_queue(port: int) -> tuple[int, int]:
    """(receive queue bytes, datagrams dropped) of the unconnected UDP socket bound to
    127.0.0.1:``port`` (the LNS's listen socket, not its per-tunnel connected ones)."""
    local = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/udp") as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[1] == local and parts[2] == "00000000:0000":
                    return int(parts[4].split(":")[1], 16), int(parts[-1])
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    return 0, 0


def rmem_default() -> int:
    try:
        return int(Path("/proc/sys/net/core/rmem_default").read_text())
    except (OSError, ValueError):
        return 212992


# ------------------------------------------------------------ the l2tp-lns child

_SUMMARY = re.compile(r"\((\d+) tunnels, (\d+) sessions\)")


@dataclass(slots=True)
class Summary:
    tunnels: int
    sessions: int
    at: float


class LnsDaemon:
    """``python -m l2tp.daemons.lns`` (the ``l2tp-lns`` entry point) with the null data
    plane on a fresh 127.0.0.1 port, configured by a file with only the listen address
    (plus ``extra`` TOML lines); use as a context manager."""

    def __init__(
        self, workdir: Path, name: str = "lns", *, extra: str = "", wait: bool = True
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_udp_port()
        self.address: Address = (HOST, self.port)
        self.config_file = workdir / f"{name}.toml"
        self.config_file.write_text(f'[listener.lns]\nlisten = "{HOST}:{self.port}"\n{extra}\n')
        self.stderr_file = workdir / f"{name}.stderr"
        self.ready_file = ready = workdir / f"{name}.ready"
        ready.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "l2tp.daemons.lns", str(self.config_file)]
        argv += ["--null-dataplane", "--ready-file", str(ready)]
        argv += ["--control", str(workdir / f"{name}.sock")]  # not the shared /run/l2tp one
        env = dict(os.environ)
        # The daemon runs the same l2tp package as this process (a tree under test may
        # be given with PYTHONPATH).
        env["PYTHONPATH"] = os.pathsep.join(p for p in (L2TP_SRC, env.get("PYTHONPATH", "")) if p)
        self._err = self.stderr_file.open("w")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
            env=env,
            cwd=workdir,
        )
        self.pid = self.proc.pid
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        self.exit_seconds: float | None = None
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"l2tp-lns did not start: {self.stderr_tail()}")
            time.sleep(0.02)

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    # -- figures

    def rss_kib(self) -> int:
        return proc_status(self.pid).get("VmRSS", 0)

    def hwm_kib(self) -> int:
        return proc_status(self.pid).get("VmHWM", 0)

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid)

    def fds(self) -> int:
        return proc_fds(self.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def summary(self, timeout: float = 10.0) -> Summary | None:
        """SIGHUP; the tunnel and session counts of the "configuration reloaded" line
        (None when it does not come within ``timeout``: the daemon is busy or gone)."""
        if not self.alive():
            return None
        with self._cond:
            seen = len(self.lines)
            try:
                os.kill(self.pid, signal.SIGHUP)
            except OSError:
                return None
            deadline = time.monotonic() + timeout
            while True:
                for line in self.lines[seen:]:
                    if "reloaded" in line and (m := _SUMMARY.search(line)):
                        return Summary(int(m.group(1)), int(m.group(2)), time.monotonic())
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or not self.alive():
                    return None
                self._cond.wait(min(left, 0.5))

    async def asummary(self, timeout: float = 10.0) -> Summary | None:
        """:meth:`summary` without blocking the event loop."""
        return await asyncio.to_thread(self.summary, timeout)

    async def wait_until(
        self,
        done: Callable[[Summary], bool],
        limit: float,
        *,
        every: float = 1.0,
        on_sample: Callable[[Summary], None] | None = None,
    ) -> float | None:
        """Poll :meth:`asummary` until ``done`` holds; seconds it took, None past ``limit``."""
        t0 = time.monotonic()
        while True:
            s = await self.asummary(timeout=max(1.0, min(10.0, limit)))
            if s is not None:
                if on_sample is not None:
                    on_sample(s)
                if done(s):
                    return round(time.monotonic() - t0, 2)
            if time.monotonic() - t0 >= limit:
                return None
            await asyncio.sleep(every)

    # -- stopping and the log

    def terminate(self, timeout: float = 30.0) -> float | None:
        """SIGTERM; seconds until the process exited (None: killed after ``timeout``)."""
        if not self.alive():
            return self.exit_seconds
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        self.exit_seconds = round(time.monotonic() - t0, 3)
        return self.exit_seconds

    def kill(self) -> None:
        """SIGKILL (when how it exits does not matter), then :meth:`close`."""
        if self.alive():
            self.proc.kill()
            self.proc.wait()
        self.close()

    def close(self) -> None:
        if self.alive():
            self.terminate(timeout=15.0)
        self._reader.join(5)
        with contextlib.suppress(OSError):
            self._err.close()

    def __enter__(self) -> LnsDaemon:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def stderr_text(self) -> str:
        with contextlib.suppress(OSError, ValueError):  # ValueError: closed already
            self._err.flush()
        try:
            return self.stderr_file.read_text(errors="replace")
        except OSError:
            return ""

    def stderr_tail(self, lines: int = 6) -> str:
        return " | ".join(self.stderr_text().splitlines()[-lines:])

    def log_report(self) -> dict[str, Any]:
        """Tracebacks, unhandled-exception and ERROR lines in the daemon's stderr."""
        text = self.stderr_text()
        lines = text.splitlines()
        errors = [ln for ln in lines if " ERROR " in ln or " CRITICAL " in ln]
        unhandled = [
            ln
            for ln in lines
            if "Traceback (most recent call last)" in ln
            or "exception was never retrieved" in ln
            or "Unhandled exception" in ln
        ]
        first = next(iter(errors), "") or next(iter(unhandled), "")
        return {
            "tracebacks": text.count("Traceback (most recent call last)"),
            "unhandled_lines": len(unhandled),
            "error_lines": len(errors),
            "warning_lines": sum(1 for ln in lines if " WARNING " in ln),
            "first_error": first[:300],
        }


# ------------------------------------------------------------ a scripted raw peer


def sccrq(assigned_tunnel_id: int, host_name: str = "raw-peer") -> ControlMessage:
    """A valid L2TPv2 SCCRQ (RFC 2661 6.1), no challenge."""
    return ControlMessage.of(
        MessageType.SCCRQ,
        protocol_version=ProtocolVersion(version=1, revision=0),
        host_name=host_name,
        framing_capabilities=FramingBits.SYNC | FramingBits.ASYNC,
        assigned_tunnel_id=assigned_tunnel_id,
        receive_window_size=4,
    )


@dataclass(slots=True)
class Received:
    at: float
    header: ControlHeader
    message: ControlMessage | None

    @property
    def kind(self) -> str:
        return "ZLB" if self.message is None else self.message.name


@dataclass(slots=True)
class RawPeer:
    """An L2TPv2 peer scripted message by message on its own UDP socket.

    It sends with consecutive Ns (from ``first_ns``), keeps Nr as the next
    in-order Ns it expects, and acknowledges every message it receives with a
    ZLB while :attr:`acking` (duplicates included). Everything the LNS sends is
    kept in :attr:`received`. No retransmission: loopback does not lose.
    """

    lns: Address
    tunnel_id: int
    first_ns: int = 0
    acking: bool = True
    peer_tunnel_id: int = 0
    ns: int = 0
    nr: int = 0
    received: list[Received] = field(default_factory=list)
    sock: socket.socket = field(init=False)
    t0: float = field(init=False)
    changed: asyncio.Event = field(init=False)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.setblocking(False)
        self.ns = self.first_ns
        self.t0 = time.monotonic()
        self.changed = asyncio.Event()
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._readable)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()

    def send(self, message: ControlMessage | None, session_id: int = 0) -> None:
        data = serialize_message(
            message,
            version=2,
            tunnel_id=self.peer_tunnel_id,
            session_id=session_id,
            ns=self.ns,
            nr=self.nr,
        )
        if message is not None:
            self.ns = (self.ns + 1) & 0xFFFF
        with contextlib.suppress(OSError):
            self.sock.sendto(data, self.lns)

    def _readable(self) -> None:
        while True:
            try:
                data, _addr = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            try:
                header, message = parse_message(data)
            except CodecError:
                continue
            self.received.append(Received(time.monotonic(), header, message))
            self.changed.set()
            if message is None:
                continue
            if header.ns == self.nr:
                self.nr = (self.nr + 1) & 0xFFFF
            if message.message_type == MessageType.SCCRP and message.assigned_tunnel_id:
                self.peer_tunnel_id = message.assigned_tunnel_id
            if self.acking:
                self.send(None)

    async def wait_for(self, kind: str, timeout: float) -> Received | None:
        """The first received message of ``kind`` (its name, e.g. ``"SCCRP"``)."""
        deadline = time.monotonic() + timeout
        while True:
            for r in self.received:
                if r.kind == kind:
                    return r
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)

    def first(self, *kinds: str) -> Received | None:
        return next((r for r in self.received if r.kind in kinds), None)


def result_text(message: ControlMessage | None) -> str:
    """``"StopCCN 2/4: text"`` / ``"CDN 3"`` for a teardown message, else its name."""
    if message is None:
        return "ZLB"
    rc = message.result_code
    if rc is None:
        return message.name
    error = f"/{int(rc.error)}" if rc.error is not None else ""
    text = f": {rc.message}" if rc.message else ""
    return f"{message.name} {int(rc.result)}{error}{text}"[:120]


def mib(kib: int | float) -> float:
    return round(kib / 1024, 1)
