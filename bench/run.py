"""The single entry point: ``python -m bench`` (``make bench``).

Runs every benchmark in one go, prints one Markdown table (each figure against a baseline
measured in the same run) and exits 1 when a target of issue 7 is missed, 2 when the bench
could not run. ``--profile`` prints cProfile reports of the cold and warm paths instead.
"""

from __future__ import annotations

import argparse
import contextvars
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .environment import ROOT, BenchEnvironment, BenchSetupError, bench_environment
from .fixtures import TokenMinter
from .load import CONNECTIONS, RUN_S, TURNS, WORKERS
from .memory import TOTAL_TOKENS
from .report import Row, Verdict, any_failed, ratio_row, render

if TYPE_CHECKING:  # these import Django, which starts only once the environment is set
    from .jwks import JwksResults
    from .load import LoadResults
    from .micro import MicroResults

MEMORY_TIMEOUT_S = 240
MAX_MEMORY_GROWTH_MIB = 50
MAX_COLD_RATIO_TO_PYJWT = 1.2
STRETCH_COLD_RATIO_TO_RSA = 3
MAX_WARM_RATIO_TO_RSA = 0.25
MIN_THROUGHPUT_RATIO = 0.85
MAX_P99_RATIO = 1.3


_STARTED = time.monotonic()


def progress(message: str) -> None:
    print(f"[bench {time.monotonic() - _STARTED:5.0f} s] {message}", file=sys.stderr, flush=True)


def run_memory(bench: BenchEnvironment) -> dict[str, float]:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.memory"],
        cwd=ROOT,
        env=bench.subprocess_env(),
        capture_output=True,
        text=True,
        timeout=MEMORY_TIMEOUT_S,
    )
    if completed.returncode != 0:
        raise BenchSetupError(f"the memory probe failed:\n{completed.stderr}")
    return json.loads(completed.stdout)


def micro_rows(micro: MicroResults) -> list[Row]:
    rsa, pyjwt = micro.rsa.median_us, micro.pyjwt.median_us
    return [
        Row("RS256 verification, raw `cryptography` (the floor)", f"{rsa:.1f} µs", ratio="1.00x"),
        ratio_row("PyJWT `jwt.decode`, preloaded key, same checks", pyjwt, "µs", "floor", rsa),
        ratio_row(
            "`TokenValidator.validate`, cold", micro.validate_cold.median_us, "µs", "PyJWT", pyjwt
        ),
        ratio_row(
            "`TokenValidator.validate`, warm",
            micro.validate_warm.median_us,
            "µs",
            "floor",
            rsa,
            at_most=MAX_WARM_RATIO_TO_RSA,
            digits=2,
        ),
        ratio_row(
            "`authenticate(request)`, cold",
            micro.authenticate_cold.median_us,
            "µs",
            "PyJWT",
            pyjwt,
            at_most=MAX_COLD_RATIO_TO_PYJWT,
        ),
        ratio_row(
            "`authenticate(request)`, cold, against the floor",
            micro.authenticate_cold.median_us,
            "µs",
            "floor",
            rsa,
            at_most=STRETCH_COLD_RATIO_TO_RSA,
            stretch=True,
        ),
        ratio_row(
            "`authenticate(request)`, cold, rate limits off",
            micro.authenticate_cold_no_limits.median_us,
            "µs",
            "PyJWT",
            micro.pyjwt_no_limits.median_us,
        ),
        ratio_row(
            "`authenticate(request)`, warm",
            micro.authenticate_warm.median_us,
            "µs",
            "floor",
            rsa,
            at_most=MAX_WARM_RATIO_TO_RSA,
            digits=2,
        ),
    ]


def load_rows(load: LoadResults) -> list[Row]:
    opened, protected, unthrottled = load.open, load.protected, load.unthrottled
    return [
        Row(
            "`GET /api/payments/`, auth and permissions off: throughput",
            f"{opened.requests_per_s:,.0f} req/s",
        ),
        ratio_row(
            "`GET /api/payments/`, protected: throughput",
            protected.requests_per_s,
            "req/s",
            "open",
            opened.requests_per_s,
            at_least=MIN_THROUGHPUT_RATIO,
            digits=0,
        ),
        ratio_row(
            "`GET /api/payments/`, protected: p50 latency",
            protected.p50_ms,
            "ms",
            "open",
            opened.p50_ms,
            digits=2,
        ),
        ratio_row(
            "`GET /api/payments/`, protected: p99 latency",
            protected.p99_ms,
            "ms",
            "open",
            opened.p99_ms,
            at_most=MAX_P99_RATIO,
            digits=2,
        ),
        ratio_row(
            "protected, caller rate limit off: throughput",
            unthrottled.requests_per_s,
            "req/s",
            "open",
            opened.requests_per_s,
            digits=0,
        ),
        ratio_row(
            "protected, caller rate limit off: p99 latency",
            unthrottled.p99_ms,
            "ms",
            "open",
            opened.p99_ms,
            digits=2,
        ),
    ]


def jwks_rows(jwks: JwksResults, per_round: int) -> list[Row]:
    from .jwks import COLD_START_CONCURRENCY, COLD_START_WORKERS, FLOOD_TOKENS

    cold_ok = set(jwks.cold_start_statuses) == {200}
    cold_rounds = jwks.cold_start_requests / per_round
    flood_rounds = jwks.flood_requests / per_round
    return [
        Row("JWKS: one round (a cold process: metadata v1+v2, each JWKS)", f"{per_round} requests"),
        Row(
            f"JWKS: cold start, {COLD_START_WORKERS} workers + Redis, "
            f"{COLD_START_CONCURRENCY} concurrent requests",
            f"{jwks.cold_start_requests} requests",
            f"one round, {per_round} requests",
            f"{cold_rounds:.2f} rounds",
            "1 round, all 200 OK",
            Verdict.MET if cold_rounds <= 1 and cold_ok else Verdict.MISSED,
        ),
        Row(
            f"JWKS: flood of {FLOOD_TOKENS:,} random `kid`s ({jwks.flood_seconds:.0f} s)",
            f"{jwks.flood_requests} requests",
            f"one round, {per_round} requests",
            f"{flood_rounds:.2f} rounds",
            f"≤ 1 round per {jwks.refresh_interval_s:.0f} s",
            Verdict.MET if flood_rounds <= jwks.flood_intervals else Verdict.MISSED,
        ),
    ]


def memory_rows(memory: dict[str, float]) -> list[Row]:
    growth, baseline = memory["growth_mib"], memory["growth_baseline_mib"]
    return [
        Row(
            f"RSS growth, first {memory['baseline_tokens']:,.0f} distinct tokens (cache full)",
            f"{baseline:.1f} MiB",
        ),
        Row(
            f"RSS growth, {memory['tokens']:,.0f} distinct tokens "
            f"({memory['cache_entries']:,.0f} cached, max {memory['cache_max_entries']:,.0f})",
            f"{growth:.1f} MiB",
            f"first {memory['baseline_tokens']:,.0f}: {baseline:.1f} MiB",
            f"{growth / baseline:.2f}x" if baseline > 0 else "",
            f"≤ {MAX_MEMORY_GROWTH_MIB} MiB",
            Verdict.MET if growth <= MAX_MEMORY_GROWTH_MIB else Verdict.MISSED,
        ),
    ]


def _statuses(counts: dict) -> str:
    return ", ".join(f"{count} x {status}" for status, count in sorted(counts.items(), key=str))


def notes(micro: MicroResults, load: LoadResults, jwks: JwksResults) -> list[str]:
    from entra_auth.conf import entra_settings

    failures = {
        route.path: route.failures
        for route in (load.open, load.protected, load.unthrottled)
        if route.failures
    }
    return [
        "Micro-benchmarks: medians over "
        f"{len(micro.rsa.samples)} batches per figure, interleaved, gc off in timed batches; "
        "cold = a never-seen token per call, warm = the same token again; keys preloaded.",
        f"Load: gunicorn (project/gunicorn.conf.py), {WORKERS} workers x 4 threads; "
        f"wrk -c{CONNECTIONS} with `Connection: close` (as behind nginx); medians of "
        f"{TURNS} alternating {RUN_S} s runs per route; one warm token. Protected = as "
        "deployed, with the per-caller rate limit counting in Redis in batches of "
        f"{entra_settings.API_RATE_LIMIT_BATCH} (set high enough never to answer 429).",
        f"Cold-start answers: {_statuses(jwks.cold_start_statuses)}; flood answers: "
        f"{_statuses(jwks.flood_statuses)}.",
        "wrk errors (non-2xx or socket): "
        + (", ".join(f"{path} {count}" for path, count in failures.items()) or "none")
        + ".",
    ]


def run_all() -> tuple[list[Row], list[str]]:
    with bench_environment() as bench:
        # Django is configured now: the modules that use it can be imported.
        from .jwks import COLD_START_CONCURRENCY, run_jwks
        from .load import run_load
        from .micro import run_micro

        with TokenMinter(bench.fake) as minter:
            progress("micro-benchmarks (RSA, PyJWT, validator, DRF class)")
            micro = contextvars.copy_context().run(run_micro, bench, minter)
            load_token, *cold_tokens = minter.mint(1 + COLD_START_CONCURRENCY)
        progress(f"memory: {TOTAL_TOKENS:,} distinct tokens in a fresh process")
        memory = run_memory(bench)
        progress("load: gunicorn, 2 workers, wrk")
        load = run_load(bench, load_token)
        progress("JWKS fetches: cold start of 4 workers, then the random-kid flood")
        jwks = run_jwks(bench, cold_tokens)
    rows = [
        *micro_rows(micro),
        *load_rows(load),
        *jwks_rows(jwks, micro.requests_per_key_round),
        *memory_rows(memory),
    ]
    return rows, notes(micro, load, jwks)


def run_profile() -> None:
    with bench_environment() as bench, TokenMinter(bench.fake) as minter:
        from .profiling import run_profiles

        print(contextvars.copy_context().run(run_profiles, bench, minter))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--profile", action="store_true", help="print cProfile reports of the hot paths instead"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        if args.profile:
            run_profile()
            return 0
        rows, run_notes = run_all()
    except BenchSetupError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    print(render(rows, run_notes, time.monotonic() - started))
    return 1 if any_failed(rows) else 0
