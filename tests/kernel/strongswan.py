"""strongSwan's charon, one per network namespace, for the L2TP/IPsec kernel tests (issue 16).

The IPsec SA of ``test_networkmanager.py`` is negotiated by IKEv2 with a pre-shared key
between two charon from Debian 12 (``strongswan-charon`` / ``strongswan-swanctl``
5.9.8, installed by tools/setup), one in each namespace, with the swanctl configurations
of docs/networkmanager.md (:func:`client_swanctl_conf`, :func:`server_swanctl_conf`;
``tests/unit/test_networkmanager_docs.py`` checks the docs show exactly these).

What it takes to run two charon on one machine, found by running them in the test VM
(the host's filesystem shared read-only, /etc and /tmp in-memory overlays, one /run):

* **Configuration.** libstrongswan reads the file named by ``STRONGSWAN_CONF`` instead of
  /etc/strongswan.conf, and the private one here (:func:`strongswan_conf`) does not
  include Debian's modular /etc/strongswan.d, so ``charon.load`` lists the plugins: the
  ones Debian ships in /usr/lib/ipsec/plugins that IKEv2 with a PSK and the kernel's
  XFRM need (no ``openssl``: Debian puts it in another package; ``aes``, ``sha2``,
  ``hmac``, ``gmp`` do IKE's crypto, the kernel does ESP's). swanctl reads the same file
  (``swanctl.load``, without charon's plugins) and takes its swanctl.conf from
  ``--file``; it reads credentials from the folders beside that file (``x509``,
  ``private`` ...), created empty here, else it warns about each. It reaches its charon
  through ``--uri``, a Unix socket path, so it runs outside the namespace.
* **PID file.** charon 5.9.8 writes the compiled-in ``/var/run/charon.pid`` and refuses
  to start while it names a live process: the second charon logged ``charon already
  running ('/var/run/charon.pid' exists)`` and exited. ``ip netns exec`` gives each
  charon its own mount namespace (a slave of the initial one), so a private folder
  is bind-mounted over /run there before ``exec charon``: the PID files do not meet and
  the guest's /run is untouched.
* **Routes.** ``install_routes = no``: transport mode needs no routes in charon's table
  220, and none are left behind.
* **Privileges.** Root, as the kernel tier runs: charon keeps ``CAP_NET_ADMIN`` for XFRM
  and binds UDP 500 and 4500 in its namespace (each namespace has its own ports, so the
  defaults serve both).

Measured in the emulated VM: from starting both charon to the CHILD_SA installed
2.4 s (each answers on its vici socket ~1 s after it starts; both start at once), and
5.6-10.9 s (6 runs) when this is the boot's first ESP AES-GCM SA: the kernel loads and
self-tests its crypto modules then (a manually keyed ``ip xfrm state add`` took 5.7 s
for the first SA of a fresh boot and 0.13 s for the next).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers import require_tool
from tests.kernel.daemons import ManagedProcess

CHARON = "/usr/lib/ipsec/charon"
"""Debian's charon (package strongswan-charon); not on PATH."""

SWANCTL_FOLDERS = (
    "x509 x509ca x509ocsp x509aa x509ac x509crl pubkey private rsa ecdsa bliss pkcs8 pkcs12"
)
"""Credential folders swanctl 5.9.8 reads beside its swanctl.conf."""

CHARON_PLUGINS = (
    "random nonce aes sha1 sha2 hmac gmp kdf pem pkcs1 x509 revocation constraints pubkey"
)
"""Plugins both charon and swanctl load; charon adds its sockets, XFRM and vici."""


def strongswan_conf(vici: Path) -> str:
    """The private strongswan.conf: plugins, the vici socket, log to stderr only."""
    return f"""charon {{
    load = {CHARON_PLUGINS} socket-default kernel-netlink vici
    install_routes = no
    install_virtual_ip = no
    plugins {{
        vici {{
            socket = unix://{vici}
        }}
    }}
    filelog {{
        stderr {{
            default = 1
            time_format = %T
        }}
    }}
    syslog {{
        daemon {{
            default = -1
        }}
    }}
}}
swanctl {{
    load = {CHARON_PLUGINS}
}}
"""


def client_swanctl_conf(server: str, psk: str) -> str:
    """swanctl.conf of the L2TP/IPsec client (docs/networkmanager.md shows it as is):
    IKEv2, PSK, an ESP transport-mode CHILD_SA for UDP 1701 to 1701 only."""
    return f"""connections {{
    l2tp {{
        version = 2
        remote_addrs = {server}
        proposals = aes256-sha256-modp2048
        local {{
            auth = psk
        }}
        remote {{
            auth = psk
            id = {server}
        }}
        children {{
            l2tp {{
                mode = transport
                local_ts = dynamic[udp/l2tp]
                remote_ts = dynamic[udp/l2tp]
                esp_proposals = aes256gcm16
            }}
        }}
    }}
}}
secrets {{
    ike-l2tp {{
        id = {server}
        secret = "{psk}"
    }}
}}
"""


def server_swanctl_conf(address: str, psk: str) -> str:
    """swanctl.conf of the server in front of ``l2tp-lns`` (docs/networkmanager.md shows
    it as is): any client with the PSK, IKEv1 or IKEv2, any client UDP port (NAT)."""
    return f"""connections {{
    road {{
        version = 0
        local_addrs = {address}
        proposals = aes256-sha256-modp2048,aes128-sha256-modp2048
        local {{
            auth = psk
        }}
        remote {{
            auth = psk
        }}
        children {{
            l2tp {{
                mode = transport
                local_ts = dynamic[udp/l2tp]
                remote_ts = dynamic[udp]
                esp_proposals = aes256gcm16,aes128-sha1
            }}
        }}
    }}
}}
secrets {{
    ike-road {{
        secret = "{psk}"
    }}
}}
"""


def require_charon() -> None:
    """Skip, or fail under ``L2TP_REQUIRE_TOOLS=1``, without Debian's charon."""
    if not os.access(CHARON, os.X_OK):
        message = f"{CHARON} is not installed (strongswan-charon; run tools/setup)"
        if os.environ.get("L2TP_REQUIRE_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)


class Charon(ManagedProcess):
    """One charon in namespace ``ns`` with everything private under ``workdir``."""

    def __init__(self, ns: str, workdir: Path, swanctl_conf: str) -> None:
        super().__init__(f"charon {ns}", workdir / "charon.log")
        self.ns = ns
        self.workdir = workdir
        self.swanctl_conf = swanctl_conf
        self.vici = workdir / "charon.vici"
        self.conf = workdir / "strongswan.conf"

    def is_ready(self) -> bool:
        return self.vici.is_socket()

    def spawn_charon(self) -> None:
        """Start charon (not waiting): /run made private, then ``exec`` it."""
        require_charon()
        run = self.workdir / "run"
        run.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(strongswan_conf(self.vici))
        (self.workdir / "swanctl.conf").write_text(self.swanctl_conf)
        for folder in SWANCTL_FOLDERS.split():
            (self.workdir / folder).mkdir(exist_ok=True)
        script = 'mount --bind "$1" /run && export STRONGSWAN_CONF="$2" && exec "$3"'
        args = [str(run), str(self.conf), CHARON]
        self.spawn(["ip", "netns", "exec", self.ns, "sh", "-c", script, "sh", *args])

    def swanctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``swanctl ARGS --uri`` this charon; its output, AssertionError on failure."""
        argv = [require_tool("swanctl"), *args, "--uri", f"unix://{self.vici}"]
        env = {**os.environ, "STRONGSWAN_CONF": str(self.conf)}
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
        text = done.stdout + done.stderr
        if done.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {done.returncode}:\n{text}\n{self.tail()}"
            )
        return text

    def load(self) -> None:
        """Load the connection and its PSK (``swanctl --load-all``)."""
        text = self.swanctl(
            "--load-all", "--noprompt", "--file", str(self.workdir / "swanctl.conf")
        )
        assert "successfully loaded 1 connections" in text, text

    def initiate(self, child: str) -> tuple[int, int]:
        """Negotiate ``child`` (IKE_SA first) and return its SPIs (inbound, outbound)
        as charon reports them; swanctl returns once the CHILD_SA is installed."""
        text = self.swanctl("--initiate", "--child", child, "--timeout", "60")
        found = re.search(r"established with SPIs ([0-9a-f]{8})_i ([0-9a-f]{8})_o", text)
        assert found, text
        return int(found.group(1), 16), int(found.group(2), 16)

    def terminate(self) -> None:
        """SIGTERM (charon deletes its SAs and policies), SIGKILL after 10 s."""
        self.stop(signal.SIGTERM, 10.0, raise_on_timeout=False)
