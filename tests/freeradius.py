"""FreeRADIUS (Debian's ``freeradius`` package) as a test server on 127.0.0.1.

:class:`FreeRadius` writes a private configuration directory (no system service, nothing
under /etc touched) and runs ``freeradius -f -l stdout -d DIR`` in the foreground:

* one client, 127.0.0.1, with :data:`SECRET`;
* authentication and accounting listeners on ports picked free on 127.0.0.1
  (:attr:`FreeRadius.auth_port`, :attr:`FreeRadius.acct_port`), in the test's
  namespace or (``netns``) in a kernel test's fresh one, where any port is free; or on
  fixed ports (``auth_port=1812`` for l2tpns, which has no setting for the port);
* the ``files`` module reading a ``users`` file (the test's, or :data:`USERS`: PAP,
  CHAP-MD5 and MS-CHAPv2 users with reply attributes), and the ``pap``, ``chap`` and
  ``mschap`` modules to check each method;
* the ``detail`` module writing every Accounting-Request to :attr:`FreeRadius.detail`,
  which tests read (:meth:`FreeRadius.detail_records`).

The configuration is the least FreeRADIUS 3.2 runs with (no EAP, SQL or certificates,
which the packaged configuration loads: slow in the emulated VM, and nothing here needs
them); the loopback tier and the kernel tier (tests/kernel/test_radius.py,
tests/kernel/test_l2tpns.py) share it.
It must run as root (FreeRADIUS's own rule for reading its configuration is not the
problem; the packaged binary wants to open its log and pid paths): the loopback tier
does. :meth:`FreeRadius.start` waits for "Ready to process requests";
:meth:`FreeRadius.stop` sends SIGTERM and waits. ``start(wait=False)`` then
:meth:`FreeRadius.wait_ready` lets a test start other processes meanwhile. Unlike l2tpns,
FreeRADIUS does not signal its process group on exit, so it needs no ``setsid``.
"""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

from tests.helpers import require_tool, wait_until

SECRET = "radius-s3cret"
USERS = """\
pap-user Cleartext-Password := "pap-pass"
\tFramed-IP-Address = 10.77.0.10,
\tFramed-MTU = 1400,
\tSession-Timeout = 3600,
\tAcct-Interim-Interval = 300,
\tClass = "cls-pap",
\tMS-Primary-DNS-Server = 192.0.2.53,
\tMS-Secondary-DNS-Server = 192.0.2.54

chap-user Cleartext-Password := "chap-pass"
\tFramed-IP-Address = 10.77.0.11

ms-user Cleartext-Password := "ms-pass"
\tFramed-IP-Address = 10.77.0.12

short-user Cleartext-Password := "short-pass"
\tFramed-IP-Address = 10.77.0.13,
\tSession-Timeout = 1
"""
"""Users every method can authenticate (each with its own Framed-IP-Address)."""


def free_udp_port() -> int:
    """A UDP port free on 127.0.0.1 now (bound and released: FreeRADIUS binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def radiusd_conf(raddb: Path, auth_port: int, acct_port: int, secret: str) -> str:
    return f"""\
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
libdir = /usr/lib/freeradius
raddbdir = {raddb}
confdir = {raddb}
logdir = {raddb}
run_dir = {raddb}
db_dir = {raddb}
pidfile = {raddb}/radiusd.pid
name = freeradius
max_request_time = 10
cleanup_delay = 1
max_requests = 1024
hostname_lookups = no
log {{
    destination = stdout
    auth = yes
    auth_badpass = no
    auth_goodpass = no
}}
security {{
    allow_core_dumps = no
}}
client localhost {{
    ipaddr = 127.0.0.1
    secret = {secret}
}}
modules {{
    files {{
        filename = {raddb}/users
    }}
    pap {{
    }}
    chap {{
    }}
    mschap {{
    }}
    detail {{
        filename = {raddb}/detail
        permissions = 0600
        locking = no
    }}
}}
server default {{
    listen {{
        type = auth
        ipaddr = 127.0.0.1
        port = {auth_port}
    }}
    listen {{
        type = acct
        ipaddr = 127.0.0.1
        port = {acct_port}
    }}
    authorize {{
        chap
        mschap
        files
        pap
    }}
    authenticate {{
        Auth-Type PAP {{
            pap
        }}
        Auth-Type CHAP {{
            chap
        }}
        Auth-Type MS-CHAP {{
            mschap
        }}
    }}
    preacct {{
    }}
    accounting {{
        detail
    }}
    post-auth {{
    }}
}}
"""


class FreeRadius:
    """One FreeRADIUS process with a private configuration in ``workdir`` (module doc)."""

    def __init__(
        self,
        workdir: Path,
        users: str = USERS,
        secret: str = SECRET,
        *,
        netns: str | None = None,
        auth_port: int = 0,
        acct_port: int = 0,
    ) -> None:
        self.netns = netns
        """Run inside this network namespace (``ip netns exec``; the kernel tier's LNS)."""
        self.fixed_ports = (auth_port, acct_port)
        """Ports to listen on (0: one picked free at each start)."""
        self.dir = workdir / "raddb"
        self.log = workdir / "freeradius.log"
        self.users = users
        self.secret = secret
        self.auth_port = 0
        self.acct_port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def detail(self) -> Path:
        return self.dir / "detail"

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, timeout: float = 30.0, *, keep_ports: bool = False, wait: bool = True) -> None:
        """Start (``keep_ports``: again on the ports of the last start, as a server that
        was restarted; its ``detail`` file is kept either way) and, with ``wait``, wait
        until it is ready (else call :meth:`wait_ready`)."""
        freeradius = require_tool("freeradius")
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (keep_ports and self.auth_port and self.acct_port):
            fixed_auth, fixed_acct = self.fixed_ports
            self.auth_port = fixed_auth or free_udp_port()
            self.acct_port = fixed_acct or free_udp_port()
            while self.acct_port == self.auth_port and not fixed_acct:
                self.acct_port = free_udp_port()
        (self.dir / "users").write_text(self.users)
        conf = radiusd_conf(self.dir, self.auth_port, self.acct_port, self.secret)
        (self.dir / "radiusd.conf").write_text(conf)
        wrap = [] if self.netns is None else ["ip", "netns", "exec", self.netns]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*wrap, freeradius, "-f", "-l", "stdout", "-d", str(self.dir)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait for "Ready to process requests"; AssertionError with the log (the
        process stopped) if it exits or is late."""

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"freeradius exited {self.proc.returncode}:\n{self.output()}")
            return "Ready to process requests" in self.output()

        try:
            wait_until(ready, timeout, "freeradius to be ready")
        except AssertionError:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def detail_records(self) -> list[dict[str, str]]:
        """The ``detail`` file's records: attribute name -> value text (quotes removed)."""
        try:
            text = self.detail.read_text(errors="replace")
        except FileNotFoundError:
            return []
        records: list[dict[str, str]] = []
        for block in text.split("\n\n"):
            record: dict[str, str] = {}
            for line in block.splitlines()[1:]:  # the first line is the timestamp
                name, sep, value = line.strip().partition(" = ")
                if sep:
                    record[name] = value.strip('"')
            if record:
                records.append(record)
        return records
