"""Parts 2 and 3 of the reliability suite: fuzzed datagrams and SCCRQ floods at l2tp-lns.

Both attack an ``l2tp-lns`` child (:class:`reliability_lib.LnsDaemon`, daemon
defaults, null data plane) from a spawned sender process with many UDP source
ports, while a legitimate LAC (:class:`L2tpContext`, kl2tpd defaults) in this
process holds or keeps opening tunnels and sessions. The sender reports what
it sent and counts what came back; this process samples the LNS's RSS and (via
SIGHUP) its tunnel count, and reads its stderr afterwards.

Fuzz (:func:`fuzz_part`): the datagrams of :class:`reliability_fuzz.Fuzzer`.
The sender waits while the LNS's listen socket has more than half its receive
buffer queued, so the LNS sees (nearly) every datagram; kernel drops are
reported.

Flood (:func:`flood_part`): valid SCCRQs, each with a distinct (source port,
Assigned Tunnel ID), Ns = 0 or 1, at a fixed rate from 500 ports; nothing is
ever acknowledged. Meanwhile the legit LAC (:class:`LegitLac`) opens a tunnel
with one call every 1/``legit_rate`` s and keeps what comes up.

The attack comes from :data:`reliability_lib.ATTACK_HOST` (127.0.0.2), the
legit LAC from 127.0.0.1: per-peer-address limits must tell them apart, as
they would an attacker's address from an LAC's.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import socket
import struct
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from reliability_fuzz import Fuzzer, avp_spans
from reliability_lib import (
    ATTACK_HOST,
    HOST,
    Address,
    LnsDaemon,
    Summary,
    daemon_defaults,
    mib,
    rmem_default,
    sccrq,
    udp_socket_queue,
)
from setup_lib import raise_fd_limit

from l2tp.protocol import LocalProtocolError, serialize_message
from l2tp.protocol.events import CallParams
from l2tp.protocol.tunnel import TunnelConfig
from l2tp.runtime.control import L2tpContext
from l2tp.runtime.handles import SessionFailed, SessionHandle, TunnelFailed, TunnelHandle

_SPAWN = mp.get_context("spawn")


# ------------------------------------------------------------ the sender process


def _avp_value_offset(datagram: bytes, attribute: int) -> int:
    for pos, _length in avp_spans(datagram[12:]):
        if struct.unpack_from("!H", datagram, 12 + pos + 4)[0] == attribute:
            return 12 + pos + 6
    raise ValueError(f"no AVP {attribute}")


def _drain(socks: list[socket.socket], counts: dict[str, int]) -> None:
    for s in socks:
        while True:
            try:
                data = s.recv(2048)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            if len(data) <= 12:
                kind = "ZLB"
            elif len(data) >= 20 and data[1] & 0x0F == 2:
                kind = str(struct.unpack_from("!H", data, 18)[0])
            else:
                kind = "other"
            counts[kind] = counts.get(kind, 0) + 1


def attack_sources(count: int) -> list[str]:
    """:data:`ATTACK_HOST` alone, or ``count`` loopback addresses 127.0.1.1, 127.0.1.2 ...
    (never the legit LAC's 127.0.0.1): a flood from many peer addresses."""
    if count <= 1:
        return [ATTACK_HOST]
    return [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(count)]


def sender_main(conn: Connection, spec: dict[str, Any]) -> None:
    """Child process: open ``ports`` sockets, say "ready", wait for "go", send, report."""
    raise_fd_limit()
    target: Address = (HOST, spec["port"])
    socks = []
    sources = attack_sources(spec.get("addresses", 1))
    for i in range(spec["ports"]):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((sources[i % len(sources)], 0))
        s.setblocking(False)
        socks.append(s)
    count = spec["count"]
    replies: dict[str, int] = {}
    conn.send("ready")
    conn.recv()
    sent = errors = waits = 0
    t0 = time.monotonic()
    last_drain = t0
    if spec["kind"] == "fuzz":
        fuzzer = Fuzzer(spec["seed"], spec["legit_tunnel"], spec["legit_sessions"])
        threshold = spec.get("queue_threshold") or rmem_default() // 2
        n = len(socks)
        for i in range(count):
            if i % 64 == 0:
                while udp_socket_queue(spec["port"])[0] > threshold:
                    waits += 1
                    time.sleep(0.001)
                now = time.monotonic()
                if now - last_drain > 0.25:
                    _drain(socks, replies)
                    last_drain = now
            try:
                socks[i % n].sendto(fuzzer.datagram(), target)
                sent += 1
            except OSError:
                errors += 1
    else:
        template = bytearray(
            serialize_message(sccrq(1, "flood"), version=2, tunnel_id=0, ns=spec["ns"], nr=0)
        )
        at = _avp_value_offset(bytes(template), 9)  # Assigned Tunnel ID
        n = len(socks)
        rate = spec["rate"]
        for i in range(count):
            if i % 50 == 0:
                due = t0 + i / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                now = time.monotonic()
                if now - last_drain > 0.25:
                    _drain(socks, replies)
                    last_drain = now
            tid = (i // n) % 0xFFFF + 1
            template[at : at + 2] = tid.to_bytes(2, "big")
            try:
                socks[i % n].sendto(template, target)
                sent += 1
            except OSError:
                errors += 1
    seconds = time.monotonic() - t0
    time.sleep(0.2)
    _drain(socks, replies)
    conn.send(
        {
            "sent": sent,
            "send_errors": errors,
            "seconds": round(seconds, 2),
            "rate_per_s": round(sent / seconds) if seconds else 0,
            "backpressure_waits": waits,
            "replies": replies,
        }
    )
    conn.recv()
    for s in socks:
        s.close()


class Sender:
    """A spawned :func:`sender_main`; :meth:`go` starts it, :meth:`result` waits."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.conn, theirs = _SPAWN.Pipe()
        self.proc = _SPAWN.Process(target=sender_main, args=(theirs, spec), daemon=True)
        self.proc.start()
        theirs.close()
        if not self.conn.poll(60) or self.conn.recv() != "ready":
            raise RuntimeError("the sender did not start")

    def go(self) -> None:
        self.conn.send("go")

    def done(self) -> bool:
        return self.conn.poll()

    def result(self) -> dict[str, Any]:
        report: dict[str, Any] = self.conn.recv()
        self.conn.send("bye")
        self.proc.join(10)
        return report

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)


# ------------------------------------------------------------ the legit LAC


class LegitLac:
    """The legitimate LAC of the flood part: SCCRQs at a fixed rate, each tunnel with one
    call; tunnels that came up are kept (not closed) so that the LNS's tunnel count is
    the flood's plus :attr:`open_tunnels`, and no StopCCN churn adds close-wait state."""

    def __init__(
        self,
        ctx: L2tpContext,
        address: Address,
        config: TunnelConfig,
        call: CallParams,
        timeout: float,
    ) -> None:
        self.ctx = ctx
        self.address = address
        self.config = config
        self.call = call
        self.timeout = timeout
        self.tunnels: list[TunnelHandle] = []

    @property
    def open_tunnels(self) -> int:
        return sum(1 for th in self.tunnels if th.closed is None)

    async def attempt(self) -> tuple[bool, float, str]:
        """Open a tunnel and place one call, each step within ``timeout``:
        (both up, seconds, why not); a tunnel that fails is closed."""
        t0 = time.monotonic()
        th: TunnelHandle | None = None
        try:
            th = await self.ctx.open_tunnel(self.address, config=self.config, wait=False)
            await asyncio.wait_for(th.wait_established(), self.timeout)
            session = th.place_call(self.call)
            await asyncio.wait_for(session.wait_established(), self.timeout)
            self.tunnels.append(th)
            return True, time.monotonic() - t0, ""
        except TimeoutError:
            why = "timeout"
        except (TunnelFailed, SessionFailed, LocalProtocolError) as exc:
            why = str(exc)[:100]
        if th is not None:
            th.begin_close()
        return False, time.monotonic() - t0, why

    async def window(self, until: asyncio.Future[None] | float, rate: float) -> dict[str, Any]:
        """One :meth:`attempt` every 1/``rate`` s until ``until`` (a deadline or a future),
        then wait for the last ones; the accept share is per attempt started."""

        def over() -> bool:
            if isinstance(until, float):
                return time.monotonic() >= until
            return until.done()

        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        tasks: list[asyncio.Task[tuple[bool, float, str]]] = []
        while not over():
            tasks.append(loop.create_task(self.attempt()))
            due = t0 + len(tasks) / rate
            while not over() and time.monotonic() < due:
                await asyncio.sleep(min(0.02, max(0.0, due - time.monotonic())))
        window = max(time.monotonic() - t0, 1e-6)
        results = await asyncio.gather(*tasks)
        latencies = sorted(r[1] for r in results if r[0])
        whys: dict[str, int] = {}
        for ok, _seconds, why in results:
            if not ok:
                whys[why] = whys.get(why, 0) + 1
        succeeded = len(latencies)
        return {
            "window_s": round(window, 2),
            "attempts": len(results),
            "succeeded": succeeded,
            "accept_share": round(succeeded / len(results), 3) if results else 0.0,
            "latency_p50_ms": _ms(latencies, 0.5),
            "latency_p90_ms": _ms(latencies, 0.9),
            "failures": whys,
        }


def _ms(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


# ------------------------------------------------------------ part 2: fuzz


@dataclass(frozen=True, slots=True)
class FuzzPlan:
    datagrams: int = 1_000_000
    ports: int = 8
    addresses: int = 1
    """Source addresses the ports are spread over (1: :data:`ATTACK_HOST`)."""
    legit_sessions: int = 10
    seed: int = 2661
    reap_wait: float = 120.0
    probe_every: float = 2.0
    rss_growth_mib: float = 20.0
    listener_extra: str = ""
    tunnel_extra: str = ""


async def _fuzz(plan: FuzzPlan, workdir: Path) -> dict[str, Any]:
    d = daemon_defaults(2, listener_extra=plan.listener_extra, tunnel_extra=plan.tunnel_extra)
    with LnsDaemon(workdir / "fuzz", extra=plan.listener_extra) as lns:
        async with L2tpContext() as ctx:
            th = await ctx.open_tunnel(lns.address, config=d.lac)
            legit: list[SessionHandle] = [th.place_call(d.call) for _ in range(plan.legit_sessions)]
            await asyncio.gather(*(s.wait_established() for s in legit))
            await asyncio.sleep(0.5)
            before = await lns.asummary()
            rss_before, cpu_before = lns.rss_kib(), lns.cpu_seconds()
            drops_before = udp_socket_queue(lns.port)[1]
            sender = await asyncio.to_thread(
                Sender,
                {
                    "kind": "fuzz",
                    "addresses": plan.addresses,
                    "port": lns.port,
                    "ports": plan.ports,
                    "count": plan.datagrams,
                    "seed": plan.seed,
                    "legit_tunnel": th.peer_tunnel_id,
                    "legit_sessions": [s.peer_session_id for s in legit],
                },
            )
            probes_ok = probes_failed = 0
            rss_peak = rss_before
            try:
                sender.go()
                t0 = time.monotonic()
                next_probe = t0 + plan.probe_every
                while not sender.done():
                    await asyncio.sleep(0.2)
                    rss_peak = max(rss_peak, lns.rss_kib())
                    if time.monotonic() >= next_probe:
                        next_probe += plan.probe_every
                        try:
                            probe = th.place_call(d.call)
                            await asyncio.wait_for(probe.wait_established(), 10)
                            probes_ok += 1
                            await asyncio.wait_for(probe.close(), 10)
                        except (TimeoutError, SessionFailed, LocalProtocolError):
                            probes_failed += 1
                sent = await asyncio.to_thread(sender.result)
            finally:
                sender.kill()
            fuzz_seconds = time.monotonic() - t0
            drops = udp_socket_queue(lns.port)[1] - drops_before
            cpu_fuzz = lns.cpu_seconds() - cpu_before
            rss_end = lns.rss_kib()
            after = await lns.asummary(timeout=10)
            legit_alive = sum(1 for s in legit if s.established) if th.closed is None else 0
            new_ok = False
            try:
                new = th.place_call(d.call)
                await asyncio.wait_for(new.wait_established(), 10)
                new_ok = True
            except (TimeoutError, SessionFailed, LocalProtocolError):
                pass
            samples: list[Summary] = []
            reaped = await lns.wait_until(
                lambda s: s.tunnels <= 1, plan.reap_wait, on_sample=samples.append
            )
            rss_after = lns.rss_kib()
            hwm = lns.hwm_kib()
            last = samples[-1] if samples else None
    log = lns.log_report()  # its shutdown included
    growth = mib(rss_after - rss_before)
    unhandled = log["tracebacks"] + log["unhandled_lines"] + log["error_lines"]
    checks = {
        "no unhandled exception or ERROR line": unhandled == 0,
        "0 legit sessions lost": legit_alive == plan.legit_sessions,
        "new session after the fuzz": new_ok,
        "fuzz tunnels reaped": reaped is not None,
        f"RSS growth < {plan.rss_growth_mib:g} MiB once reaped": (
            reaped is not None and growth < plan.rss_growth_mib
        ),
    }
    return {
        "case": f"{plan.datagrams:,} datagrams",
        "datagrams_sent": sent["sent"],
        "send_seconds": round(fuzz_seconds, 1),
        "per_second": sent["rate_per_s"],
        "kernel_drops": drops,
        "lns_cpu_s": round(cpu_fuzz, 1),
        "replies_by_type": sent["replies"],
        "tunnels_after_fuzz": after.tunnels if after else None,
        "sessions_after_fuzz": after.sessions if after else None,
        "tracebacks": log["tracebacks"],
        "unhandled_lines": log["unhandled_lines"],
        "error_lines": log["error_lines"],
        "warning_lines": log["warning_lines"],
        "first_error": log["first_error"],
        "legit_sessions": plan.legit_sessions,
        "legit_alive": legit_alive,
        "legit_lost": plan.legit_sessions - legit_alive,
        "probes_during_ok": probes_ok,
        "probes_during_failed": probes_failed,
        "new_session_after": new_ok,
        "reaped_after_s": reaped,
        "tunnels_at_end_of_wait": last.tunnels if last else None,
        "rss_before_mib": mib(rss_before),
        "rss_peak_mib": mib(max(rss_peak, hwm)),
        "rss_at_fuzz_end_mib": mib(rss_end),
        "rss_after_mib": mib(rss_after),
        "rss_growth_mib": growth,
        "tunnels_before": before.tunnels if before else None,
        "checks": checks,
        "pass": all(checks.values()),
    }


def fuzz_part(plan: FuzzPlan, workdir: Path) -> dict[str, Any]:
    from l2tp.runtime.loop import run as run_loop

    raise_fd_limit()
    case = run_loop(_fuzz(plan, workdir))
    return {
        "conditions": {
            "what": "l2tp-lns child (daemon defaults, --null-dataplane) holding one legit "
            "tunnel from our LAC (kl2tpd defaults) with sessions; a spawned sender "
            "sends seeded mutated control messages from several source ports (see "
            "reliability_attack.py); a legit call is placed and cleared every "
            "probe_every s during the fuzz; afterwards a new legit call, then up to "
            "reap_wait s for the LNS to hold only the legit tunnel (SIGHUP summary)",
            "datagrams": plan.datagrams,
            "source": (
                f"{ATTACK_HOST}, {plan.ports} ports"
                if plan.addresses <= 1
                else f"{plan.ports} ports over {plan.addresses} addresses from 127.0.1.1"
            )
            + f" (the legit LAC is on {HOST})",
            "legit_sessions": plan.legit_sessions,
            "seed": plan.seed,
            "reap_wait_s": plan.reap_wait,
            "probe_every_s": plan.probe_every,
            "pacing": "sender waits while the LNS listen socket has > rmem_default/2 queued",
            "rss": "VmRSS of the daemon; growth = after the reap wait - before the fuzz",
            "extra_listener_toml": plan.listener_extra,
        },
        "cases": [case],
    }


# ------------------------------------------------------------ part 3: flood


@dataclass(frozen=True, slots=True)
class FloodPlan:
    sccrqs: int = 100_000
    ports: int = 500
    addresses: int = 1
    """Source addresses the ports are spread over (1: :data:`ATTACK_HOST`)."""
    rate: float = 5000.0
    probe_window: float = 5.0
    legit_rate: float = 5.0
    attempt_timeout: float = 5.0
    after_window: float = 3.0
    reap_wait: float = 60.0
    sample_every: float = 1.0
    peak_growth_mib: float = 100.0
    rss_growth_mib: float = 20.0
    min_accept_ratio: float = 0.5
    listener_extra: str = ""
    tunnel_extra: str = ""


async def _flood(plan: FloodPlan, ns: int, workdir: Path) -> dict[str, Any]:
    d = daemon_defaults(2, listener_extra=plan.listener_extra, tunnel_extra=plan.tunnel_extra)
    # (seconds since the flood began, LNS tunnels, legit tunnels open, LNS RSS MiB)
    samples: list[tuple[float, int | None, int, float]] = []
    with LnsDaemon(workdir / f"flood-ns{ns}", extra=plan.listener_extra) as lns:
        rss_start = lns.rss_kib()
        async with L2tpContext() as ctx:
            legit = LegitLac(ctx, lns.address, d.lac, d.call, plan.attempt_timeout)
            unloaded = await legit.window(time.monotonic() + plan.probe_window, plan.legit_rate)
            rss_before = lns.rss_kib()
            drops_before = udp_socket_queue(lns.port)[1]
            sender = await asyncio.to_thread(
                Sender,
                {
                    "kind": "flood",
                    "addresses": plan.addresses,
                    "port": lns.port,
                    "ports": plan.ports,
                    "count": plan.sccrqs,
                    "rate": plan.rate,
                    "ns": ns,
                },
            )
            loop = asyncio.get_running_loop()
            flood_over: asyncio.Future[None] = loop.create_future()
            t0 = time.monotonic()

            def sample(s: Summary | None) -> None:
                samples.append(
                    (
                        round(time.monotonic() - t0, 1),
                        s.tunnels if s else None,
                        legit.open_tunnels,
                        mib(lns.rss_kib()),
                    )
                )

            async def sampler() -> None:
                while not flood_over.done():
                    sample(await lns.asummary(timeout=5))
                    await asyncio.sleep(plan.sample_every)

            async def watch_sender() -> dict[str, Any]:
                while not sender.done():
                    await asyncio.sleep(0.05)
                result = await asyncio.to_thread(sender.result)
                flood_over.set_result(None)
                return result

            try:
                sender.go()
                sampling = loop.create_task(sampler())
                watching = loop.create_task(watch_sender())
                during = await legit.window(flood_over, plan.legit_rate)
                sent = await watching
                await sampling
            finally:
                sender.kill()
            flood_s = time.monotonic() - t0
            drops = udp_socket_queue(lns.port)[1] - drops_before
            at_end = await lns.asummary(timeout=10)
            sample(at_end)
            after = await legit.window(time.monotonic() + plan.after_window, plan.legit_rate)
            t_reap = time.monotonic()
            reaped = await lns.wait_until(
                lambda s: s.tunnels <= legit.open_tunnels, plan.reap_wait, on_sample=sample
            )
            if reaped is not None:
                reaped = round(time.monotonic() - t_reap, 1)
            rss_final = lns.rss_kib()
            peak_kib = lns.hwm_kib()
            legit_open = legit.open_tunnels
            await ctx.close(ack_timeout=1.0)
    log = lns.log_report()  # its shutdown included
    share0, share = unloaded["accept_share"], during["accept_share"]
    ratio = round(share / share0, 3) if share0 else 0.0
    peak_growth = mib(peak_kib - rss_before)
    growth = mib(rss_final - rss_before)
    checks = {
        "legit tunnel+session during the flood": during["succeeded"] > 0,
        "legit tunnel+session after the flood": after["succeeded"] > 0,
        f"legit accept share during >= {plan.min_accept_ratio:g} x unloaded": ratio
        >= plan.min_accept_ratio,
        f"peak RSS growth < {plan.peak_growth_mib:g} MiB (placeholder bound)": peak_growth
        < plan.peak_growth_mib,
        f"RSS growth < {plan.rss_growth_mib:g} MiB once the flood's tunnels are gone": (
            reaped is not None and growth < plan.rss_growth_mib
        ),
        "no unhandled exception or ERROR line": (
            log["tracebacks"] + log["unhandled_lines"] + log["error_lines"] == 0
        ),
    }
    flood_held = [n - legit_n for _t, n, legit_n, _r in samples if n is not None]
    last = next((x for x in reversed(samples) if x[1] is not None), None)
    return {
        "case": f"{plan.sccrqs:,} SCCRQs Ns={ns}"
        + (f" from {plan.addresses} addresses" if plan.addresses > 1 else ""),
        "ns": ns,
        "sent": sent["sent"],
        "flood_seconds": round(flood_s, 1),
        "sent_per_s": sent["rate_per_s"],
        "kernel_drops": drops,
        "replies_by_type": sent["replies"],
        "unloaded_accept_share": share0,
        "during_accept_share": share,
        "accept_ratio": ratio,
        "unloaded_attempts": unloaded["attempts"],
        "during_attempts": during["attempts"],
        "during_succeeded": during["succeeded"],
        "during_failures": during["failures"],
        "after_attempts": after["attempts"],
        "after_succeeded": after["succeeded"],
        "after_failures": after["failures"],
        "unloaded_latency_p50_ms": unloaded["latency_p50_ms"],
        "during_latency_p50_ms": during["latency_p50_ms"],
        "during_latency_p90_ms": during["latency_p90_ms"],
        "flood_tunnels_max": max(flood_held) if flood_held else None,
        "flood_tunnels_at_end": (at_end.tunnels - legit_open) if at_end else None,
        "flood_tunnels_final": (last[1] - last[2]) if last and last[1] is not None else None,
        "legit_tunnels_open": legit_open,
        "reaped_after_s": reaped,
        "rss_start_mib": mib(rss_start),
        "rss_before_mib": mib(rss_before),
        "rss_peak_mib": mib(peak_kib),
        "rss_final_mib": mib(rss_final),
        "rss_peak_growth_mib": peak_growth,
        "rss_final_growth_mib": growth,
        "tracebacks": log["tracebacks"],
        "error_lines": log["error_lines"],
        "first_error": log["first_error"],
        "samples": samples,
        "checks": checks,
        "pass": all(checks.values()),
    }


def flood_part(plan: FloodPlan, workdir: Path) -> dict[str, Any]:
    from l2tp.runtime.loop import run as run_loop

    raise_fd_limit()
    cases = [run_loop(_flood(plan, ns, workdir)) for ns in (0, 1)]
    return {
        "conditions": {
            "what": "l2tp-lns child (daemon defaults, --null-dataplane); a spawned sender "
            "sends valid SCCRQs (distinct source port + Assigned Tunnel ID each, never "
            "acknowledged) at a fixed rate; our LAC (kl2tpd defaults, this process) opens "
            "a tunnel + one call every 1/legit_rate s, each step within attempt_timeout, "
            "before (unloaded), during and after the flood, and keeps what came up",
            "sccrqs": plan.sccrqs,
            "source": (
                f"{ATTACK_HOST}, {plan.ports} ports"
                if plan.addresses <= 1
                else f"{plan.ports} ports over {plan.addresses} addresses from 127.0.1.1"
            )
            + f" (the legit LAC is on {HOST})",
            "rate_per_s": plan.rate,
            "legit_rate_per_s": plan.legit_rate,
            "unloaded_window_s": plan.probe_window,
            "attempt_timeout_s": plan.attempt_timeout,
            "after_window_s": plan.after_window,
            "reap_wait_s": plan.reap_wait,
            "accept": "share of legit attempts (tunnel + call) that succeeded; ratio = "
            "during / unloaded",
            "flood_tunnels": "LNS tunnels (SIGHUP summary) minus the legit tunnels open",
            "rss": "peak = VmHWM; growth from just before the flood (after the unloaded "
            "window); final = after up to reap_wait s for the flood's tunnels to go",
            "peak_bound_note": "peak_growth_mib is a placeholder until max_pending_tunnels "
            "and the per-tunnel cost are settled (issue 13)",
            "samples": "(s since the flood began, LNS tunnels, legit tunnels open, RSS MiB)",
            "extra_listener_toml": plan.listener_extra,
        },
        "cases": cases,
    }
