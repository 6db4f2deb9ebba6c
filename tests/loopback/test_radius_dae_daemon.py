"""``[radius.dae]`` in the daemons: :class:`DaeService` over real UDP (start, re-configure
on the same socket, move, a failed move keeping the old socket, removal), then l2tp-lns
as a process (null data plane) whose session ``radclient`` disconnects.

The daemon's sessions here have no PPP in-process (``--null-dataplane``), so they are
found by their Calling-Station-Id: the Calling Number AVP of the LAC's call (RFC 2661
4.4.5), which the in-process LAC sets.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from pyrad import packet as rpacket
from pyrad.dictionary import Dictionary

from l2tp.config.model import DaeClientEntry, DaeSection, Endpoint, RadiusSection
from l2tp.daemons.dae_setup import DaeService
from l2tp.daemons.preflight import StartError
from l2tp.protocol.constants import CdnResult
from l2tp.protocol.events import CallParams, Role
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.radius import DICTIONARY_PATH
from l2tp.radius.dae_runtime import DISCONNECT_MESSAGE
from l2tp.runtime.control import L2tpContext
from tests.loopback.daemon import Daemon
from tests.loopback.scrape import scrape
from tests.loopback.test_ctl_daemons import _free_port, _run, cli, result
from tests.loopback.test_radius_dae import radclient

pytestmark = pytest.mark.loopback

DICT = Dictionary(str(DICTIONARY_PATH))
LOCALHOST = IPv4Address("127.0.0.1")


def dae_section(port: int, *clients: DaeClientEntry, window: float = 300.0) -> RadiusSection:
    return RadiusSection(
        nas_identifier="lns1",
        dae=DaeSection(
            listen=Endpoint(address=LOCALHOST, port=port),
            clients=clients or (DaeClientEntry(address=LOCALHOST, secret="one"),),
            window=window,
        ),
    )


async def ask(port: int, secret: bytes, ident: int, timeout: float = 0.3) -> int | None:
    """One Disconnect-Request for a session nobody has: the reply's code (a NAK when
    the server answers us at all), None when nothing came back in ``timeout``."""
    pkt = rpacket.CoAPacket(code=rpacket.DisconnectRequest, id=ident, secret=secret, dict=DICT)
    pkt.AddAttribute("User-Name", "nobody")
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect(("127.0.0.1", port))
        sock.send(bytes(pkt.RequestPacket()))
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), timeout)
        except (TimeoutError, ConnectionRefusedError):  # refused: nothing listens there
            return None
    reply = pkt.CreateReply(packet=data)
    assert pkt.VerifyReply(reply, data)
    return int(reply.code)


def test_service_reconfigures_moves_and_keeps_the_old_socket_when_a_move_fails(
    tmp_path: Path,
) -> None:
    secret_file = tmp_path / "dae.secret"
    secret_file.write_text("from-file\n")

    async def scenario() -> None:
        async with L2tpContext() as ctx:
            service = DaeService(ctx)
            port = _free_port()
            try:
                assert await service.configure(dae_section(port))
                server = service.server
                assert server is not None and server.address == ("127.0.0.1", port)
                assert await ask(port, b"one", 1) == rpacket.DisconnectNAK
                assert not await service.configure(dae_section(port))  # nothing changed

                # New secret (from a file), same address: the same socket, new secret.
                by_file = DaeClientEntry(address=LOCALHOST, secret_file=str(secret_file))
                assert await service.configure(dae_section(port, by_file, window=60))
                assert service.server is server and server.processor.window == 60
                assert await ask(port, b"one", 2) is None
                assert await ask(port, b"from-file", 3) == rpacket.DisconnectNAK

                # A new address that is taken: StartError, the old socket still answers.
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
                    busy.bind(("127.0.0.1", 0))
                    taken = busy.getsockname()[1]
                    with pytest.raises(StartError) as info:
                        await service.configure(dae_section(taken, by_file))
                assert str(info.value).startswith(
                    f'[radius.dae] listen = "127.0.0.1:{taken}": Address already in use'
                )
                assert service.server is server
                assert await ask(port, b"from-file", 4) == rpacket.DisconnectNAK

                # A free new address: the old port is closed, the new one answers.
                moved = _free_port()
                assert await service.configure(dae_section(moved, by_file))
                assert service.server is not server
                assert await ask(moved, b"from-file", 5) == rpacket.DisconnectNAK
                assert await ask(port, b"from-file", 6) is None

                # A secret file that cannot be read: StartError, nothing changes.
                missing = DaeClientEntry(address=LOCALHOST, secret_file=str(tmp_path / "no"))
                with pytest.raises(StartError, match=r"\[radius.dae\] clients\[0\] secret_file"):
                    await service.configure(dae_section(moved, missing))
                assert await ask(moved, b"from-file", 7) == rpacket.DisconnectNAK

                snapshot = service.snapshot()
                assert snapshot is not None and snapshot["listen"] == f"127.0.0.1:{moved}"
                # The counters run on across the move: 5 NAKs (503), 2 wrong secrets.
                assert snapshot["disconnect_naks"] == 5 and snapshot["naks_by_cause"] == {503: 5}
                assert snapshot["bad_authenticator"] == 1
                assert "from-file" not in repr(snapshot)

                assert await service.configure(RadiusSection(auth_servers=()))  # no dae
                assert service.server is None and service.snapshot() is None
                assert await ask(moved, b"from-file", 8) is None
            finally:
                await service.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_l2tp_lns_disconnects_a_session_for_radclient(tmp_path: Path) -> None:
    port, dae_port, metrics_port = _free_port(), _free_port(), _free_port()
    conf = tmp_path / "lns.toml"
    listener = f'[listener.edge]\nlisten = "127.0.0.1:{port}"\n'
    dae = (
        '[radius]\nnas_identifier = "lns1"\n[radius.dae]\n'
        f'listen = "127.0.0.1:{dae_port}"\n'
        'clients = [{ address = "127.0.0.1", secret = "SECRET", name = "radclient" }]\n'
    )
    conf.write_text(listener + dae.replace("SECRET", "s3cret"))
    daemon = Daemon("l2tp.daemons.lns", conf, "-v", "--metrics", f"127.0.0.1:{metrics_port}")
    sock = daemon.control

    async def scenario() -> None:
        await daemon.wait_ready()
        async with L2tpContext() as lac:
            th = await lac.open_tunnel(("127.0.0.1", port), config=TunnelConfig(role=Role.LAC))
            alice = await th.open_session(CallParams(calling_number="5551234"))
            bob = await th.open_session(CallParams(calling_number="5559999"))

            # Disconnect-Request by Calling-Station-Id: ACK, and the LAC gets the CDN.
            rc, out = await radclient(
                dae_port, "disconnect", "Calling-Station-Id = 5551234\nNAS-Identifier = lns1"
            )
            assert rc == 0 and "Received Disconnect-ACK" in out, out
            closed = await asyncio.wait_for(alice.wait_closed(), 10)
            assert closed.by_peer and closed.reason is not None
            assert (closed.reason.result, closed.reason.message) == (
                CdnResult.ADMINISTRATIVE,
                DISCONNECT_MESSAGE,
            )
            assert bob.closed is None  # only the session asked for

            # Unknown session: NAK 503. Wrong secret: no reply at all.
            rc, out = await radclient(dae_port, "disconnect", "Calling-Station-Id = 5551234")
            assert rc != 0 and "Received Disconnect-NAK" in out, out
            assert "Error-Cause = Session-Context-Not-Found" in out
            rc, out = await radclient(
                dae_port,
                "disconnect",
                "Calling-Station-Id = 5559999",
                secret="wrong",
                timeout=0.5,
            )
            assert rc != 0 and "No reply from server" in out, out
            assert bob.closed is None

            status = await result(sock, "status")
            counters = status["radius"]["dae"]
            assert counters["listen"] == f"127.0.0.1:{dae_port}"
            assert (counters["disconnect_acks"], counters["disconnect_naks"]) == (1, 1)
            assert counters["bad_authenticator"] == 1
            assert "servers" not in status["radius"]  # DAE only: no RADIUS client
            rc, out, _ = await cli(sock, "status")
            assert rc == 0, out
            assert (
                f"radius dae  127.0.0.1:{dae_port}: 2 disconnect (1 ack, 1 nak),"
                " 0 coa (0 ack, 0 nak), nak 503 x1, 1 bad authenticator" in out
            ), out
            samples = await scrape(f"127.0.0.1:{metrics_port}")
            replies = "l2tp_radius_dae_replies_total"
            assert samples[replies, (("kind", "disconnect"), ("reply", "ack"))] == 1
            assert samples["l2tp_radius_dae_naks_total", (("cause", "503"),)] == 1
            assert samples["l2tp_radius_dae_sessions_disconnected_total", ()] == 1

            # Reload with a new secret: the same socket, the session untouched.
            conf.write_text(listener + dae.replace("SECRET", "rotated"))
            reloaded = await result(sock, "reload")
            assert reloaded["applied"] is True and reloaded["errors"] == [], reloaded
            rc, out = await radclient(
                dae_port, "disconnect", "Calling-Station-Id = 5559999", timeout=0.5
            )
            assert "No reply from server" in out, out
            assert bob.closed is None
            # A listen address that is taken: the reload is incomplete, the old server
            # stays and answers with the new secret.
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
                busy.bind(("127.0.0.1", 0))
                taken = busy.getsockname()[1]
                moved = dae.replace(f":{dae_port}", f":{taken}").replace("SECRET", "rotated")
                conf.write_text(listener + moved)
                reloaded = await result(sock, "reload")
            assert reloaded["applied"] is True
            (error,) = reloaded["errors"]
            assert error.startswith(
                f'[radius.dae] listen = "127.0.0.1:{taken}": Address already in use'
            ), reloaded
            rc, out = await radclient(
                dae_port, "disconnect", "Calling-Station-Id = 5559999", secret="rotated"
            )
            assert rc == 0 and "Received Disconnect-ACK" in out, out
            await asyncio.wait_for(bob.wait_closed(), 10)

    _run(scenario(), [daemon])
    out = daemon.output()
    assert f"dynamic authorization: 127.0.0.1:{dae_port}, clients radclient (window 300 s)" in out
    assert "s3cret" not in out and "rotated" not in out


def test_a_dae_address_in_use_is_a_start_error(tmp_path: Path) -> None:
    conf = tmp_path / "lns.toml"
    control = tmp_path / "lns.sock"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        conf.write_text(
            f'[listener.edge]\nlisten = "127.0.0.1:{_free_port()}"\n'
            f'[radius.dae]\nlisten = "127.0.0.1:{port}"\n'
            'clients = [{ address = "127.0.0.1", secret = "s" }]\n'
        )
        proc = subprocess.run(
            [
                *(sys.executable, "-m", "l2tp.daemons.lns", str(conf), "--null-dataplane"),
                *("--control", str(control)),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines()[-1].startswith(
        f'l2tp-lns: cannot start: [radius.dae] listen = "127.0.0.1:{port}": Address already in use'
    ), proc.stderr
    assert "started" not in proc.stdout
