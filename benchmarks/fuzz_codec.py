"""Long fuzz run of the codec: arbitrary and mutated datagrams, CodecError only.

Run: ``.venv/bin/python benchmarks/fuzz_codec.py [EXAMPLES]`` (default 100,000
per strategy). Uses Hypothesis without a database so every run explores anew.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.test_codec_fuzz import SECRETS, SEEDS, _exercise


def main() -> None:
    examples = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    config = settings(
        max_examples=examples,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )

    @config
    @given(st.binary(max_size=300), SECRETS, st.booleans())
    def arbitrary(data: bytes, secret: bytes | None, ip_encap: bool) -> None:
        _exercise(data, secret, ip_encap)

    @config
    @given(
        st.sampled_from(SEEDS),
        st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=8),
        st.integers(0, 400),
        SECRETS,
    )
    def mutated(seed: bytes, flips: list[tuple[int, int]], cut: int, secret: bytes | None) -> None:
        data = bytearray(seed)
        for pos, value in flips:
            if pos < len(data):
                data[pos] = value
        _exercise(bytes(data[:cut]) if cut < len(data) else bytes(data), secret)

    for test in (arbitrary, mutated):
        start = time.perf_counter()
        test()
        print(f"{test.__name__}: {examples:,} examples OK in {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()
