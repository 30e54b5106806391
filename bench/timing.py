"""Micro-benchmark timing: batches timed with ``perf_counter_ns``, interleaved, medians.

Each measured operation runs in batches (one clock read per batch, so the clock's own cost
is spread thin); the benchmarks take turns batch group by batch group, so a burst of noise
on this shared machine hits every figure alike instead of skewing one ratio. The garbage
collector is off inside a timed batch (it would charge one batch for everyone's garbage)
and collects between groups.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class TimedOperation:
    """``run_batch()`` performs ``batch_size`` operations; samples are ns per operation."""

    name: str
    run_batch: Callable[[], None]
    batch_size: int
    samples: list[float] = field(default_factory=list)

    @property
    def median_ns(self) -> float:
        return statistics.median(self.samples)

    @property
    def median_us(self) -> float:
        return self.median_ns / 1000


def measure_interleaved(
    operations: Sequence[TimedOperation], *, rounds: int, batches_per_round: int, warmup: int
) -> None:
    """Warm every operation up, then take ``rounds`` turns of ``batches_per_round`` batches."""
    for operation in operations:
        for _ in range(warmup):
            operation.run_batch()
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for operation in operations:
            gc.collect()
            gc.disable()
            try:
                for _ in range(batches_per_round):
                    started = clock()
                    operation.run_batch()
                    elapsed = clock() - started
                    operation.samples.append(elapsed / operation.batch_size)
            finally:
                gc.enable()


def batches_needed(*, rounds: int, batches_per_round: int, warmup: int) -> int:
    """How many batches one operation runs: what a never-seen-token supply must cover."""
    return warmup + rounds * batches_per_round
