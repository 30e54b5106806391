"""Resident memory growth while validating 100,000 distinct valid tokens.

Run in a process of its own (``python -m bench.memory``, started by the driver) so nothing
else the driver holds is counted; it prints one JSON object. Tokens are minted by a pool of
helper processes and streamed in, never all held at once. The growth once the validated-token
cache is full (10,000 entries by default) is the baseline: with a bounded cache, 100,000
tokens cost about as much as 10,000.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time

from .environment import configure_process_environment, start_django
from .fixtures import TokenMinter

TOTAL_TOKENS = 100_000
BASELINE_TOKENS = 10_000
WARMUP_TOKENS = 200
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


def resident_bytes() -> int:
    """Resident set size now (Linux ``/proc/self/statm``), not the peak."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


def settled_resident_bytes() -> int:
    gc.collect()
    return resident_bytes()


def measure() -> dict[str, float]:
    from tests.fake_entra import FakeEntra

    fake = FakeEntra().start()
    fake.reset()
    try:
        configure_process_environment(fake, os.environ["DATABASE_URL"])
        start_django()
        from entra_auth.validation import get_validator

        validator = get_validator()
        with TokenMinter(fake) as minter:
            for token in minter.mint(WARMUP_TOKENS):
                validator.validate(token)
            validator.token_cache.clear()
            start = settled_resident_bytes()
            at_baseline = start
            validated = 0
            started = time.monotonic()
            for chunk in minter.chunks(TOTAL_TOKENS):
                for token in chunk:
                    validator.validate(token)
                validated += len(chunk)
                if validated == BASELINE_TOKENS:
                    at_baseline = settled_resident_bytes()
            seconds = time.monotonic() - started
            end = settled_resident_bytes()
        return {
            "tokens": validated,
            "baseline_tokens": BASELINE_TOKENS,
            "growth_baseline_mib": (at_baseline - start) / MIB,
            "growth_mib": (end - start) / MIB,
            "cache_entries": len(validator.token_cache),
            "cache_max_entries": validator.token_cache.max_entries,
            "seconds": seconds,
        }
    finally:
        fake.stop()


if __name__ == "__main__":
    json.dump(measure(), sys.stdout)
