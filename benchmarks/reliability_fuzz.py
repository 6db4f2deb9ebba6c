"""The fuzz generator of the reliability suite (part 2, ``reliability_attack.fuzz_part``).

:class:`Fuzzer` turns a seed into datagrams: mutations of valid control
messages, every v2 and v3 message type of ``tests.tshark_oracle.sample_messages``
(plain and with hidden AVPs, encoded with the project's codec) plus extra plain
v2 SCCRQs (a quarter of the draws), in the spirit of ``fuzz_codec.py``'s seeds:

* header: Tunnel ID 0 (35 %), the legit tunnel's ID (25 %) or random; Session
  ID 0, a legit session's or random; Ns 0, 1 or random; Nr 0 or random; an
  L2TPv3 header (32-bit Control Connection ID) for the v3 messages;
* then, in 85 % of the datagrams, 1-4 mutations: of the body (a random AVP
  inserted at an AVP boundary, any vendor / type / M and H bits, right or wrong
  length; an AVP's value randomised; an AVP duplicated or removed; an AVP's
  length bits corrupted; the message type changed) or of the whole datagram
  (bit flip, byte overwrite, truncation with or without the length field
  fixed, bytes appended, the version nibble changed).
"""

from __future__ import annotations

import random
import struct

from reliability_lib import sccrq

from l2tp.protocol import encode_body

_V2_HEADER = struct.Struct("!HHHHHH")
_V3_HEADER = struct.Struct("!HHIHH")


def avp_spans(body: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each AVP of an encoded body, Message Type included."""
    spans = []
    pos = 0
    while pos + 6 <= len(body):
        length = ((body[pos] << 8) | body[pos + 1]) & 0x3FF
        if length < 6 or pos + length > len(body):
            break
        spans.append((pos, length))
        pos += length
    return spans


def _corpus() -> list[tuple[int, bytes]]:
    from tests.tshark_oracle import sample_messages

    def rv(n: int) -> bytes:
        return b"r" * n

    out = []
    for version in (2, 3):
        for hidden in (False, True):
            for message in sample_messages(version, hidden=hidden):
                out.append(
                    (version, encode_body(message, version=version, secret=b"k", random_bytes=rv))
                )
    return out


class Fuzzer:
    """Seeded datagrams for :func:`fuzz_part`; see the module docstring."""

    def __init__(self, seed: int, legit_tunnel: int, legit_sessions: list[int]) -> None:
        self.rng = random.Random(seed)
        self.corpus = _corpus()
        self.sccrq_bodies = [
            encode_body(sccrq(i, host_name=f"fuzz-{i}"), version=2) for i in range(1, 65)
        ]
        self.legit_tunnel = legit_tunnel
        self.legit_sessions = legit_sessions or [0]

    def _ids(self) -> tuple[int, int, int, int]:
        r = self.rng
        x = r.random()
        tid = 0 if x < 0.35 else self.legit_tunnel if x < 0.6 else r.getrandbits(16)
        y = r.random()
        sid = 0 if y < 0.5 else r.choice(self.legit_sessions) if y < 0.75 else r.getrandbits(16)
        z = r.random()
        ns = 0 if z < 0.3 else 1 if z < 0.45 else r.getrandbits(16)
        nr = 0 if r.random() < 0.5 else r.getrandbits(16)
        return tid, sid, ns, nr

    def _mutate_body(self, body: bytearray) -> bytearray:
        r = self.rng
        spans = avp_spans(bytes(body))
        kind = r.randrange(6)
        if kind == 0:  # a random AVP at an AVP boundary
            flags = r.choice((0, 0x8000, 0x4000, 0xC000))
            vendor = 0 if r.random() < 0.8 else r.getrandbits(16)
            attr = r.randrange(80) if r.random() < 0.8 else r.getrandbits(16)
            value = r.randbytes(r.randrange(41))
            length = 6 + len(value) if r.random() < 0.9 else r.getrandbits(10)
            avp = struct.pack("!HHH", flags | (length & 0x3FF), vendor, attr) + value
            at = r.choice([s[0] for s in spans[1:]] + [len(body)])
            body[at:at] = avp
        elif spans and kind == 1:  # an AVP's value randomised (lengths kept)
            pos, length = r.choice(spans[1:] or spans)
            body[pos + 6 : pos + length] = r.randbytes(length - 6)
        elif len(spans) > 1 and kind == 2:  # an AVP duplicated
            pos, length = r.choice(spans[1:])
            body[pos:pos] = body[pos : pos + length]
        elif len(spans) > 1 and kind == 3:  # an AVP removed
            pos, length = r.choice(spans[1:])
            del body[pos : pos + length]
        elif spans and kind == 4:  # an AVP's length corrupted
            pos, _length = r.choice(spans)
            word = (body[pos] << 8) | body[pos + 1]
            word = (word & 0xFC00) | r.getrandbits(10)
            body[pos : pos + 2] = word.to_bytes(2, "big")
        elif len(body) >= 8:  # the message type changed
            body[6:8] = r.randrange(32).to_bytes(2, "big")
        return body

    def _mutate_datagram(self, data: bytearray) -> bytearray:
        r = self.rng
        kind = r.randrange(5)
        if kind == 0 and data:
            i = r.randrange(len(data))
            data[i] ^= 1 << r.randrange(8)
        elif kind == 1 and data:
            data[r.randrange(len(data))] = r.getrandbits(8)
        elif kind == 2:
            cut = r.randrange(len(data) + 1)
            del data[cut:]
            if r.random() < 0.5 and len(data) >= 4:
                data[2:4] = len(data).to_bytes(2, "big")
        elif kind == 3:
            data += r.randbytes(r.randrange(1, 64))
        elif len(data) >= 2:
            data[1] = (data[1] & 0xF0) | r.randrange(16)
        return data

    def datagram(self) -> bytes:
        r = self.rng
        if r.random() < 0.25:
            version, body = 2, r.choice(self.sccrq_bodies)
        else:
            version, body = r.choice(self.corpus)
        mutable = bytearray(body)
        rounds = 0 if r.random() < 0.15 else r.randint(1, 4)
        datagram_rounds = 0
        for _ in range(rounds):
            if r.random() < 0.6:
                mutable = self._mutate_body(mutable)
            else:
                datagram_rounds += 1
        tid, sid, ns, nr = self._ids()
        if version == 2:
            header = _V2_HEADER.pack(0xC802, 12 + len(mutable), tid, sid, ns, nr)
        else:
            ccid = tid if r.random() < 0.7 else r.getrandbits(32)
            header = _V3_HEADER.pack(0xC803, 12 + len(mutable), ccid, ns, nr)
        data = bytearray(header) + mutable
        if len(data) > 0xFFFF:
            del data[0xFFFF:]
        for _ in range(datagram_rounds):
            data = self._mutate_datagram(data)
        return bytes(data)
