"""Throughput and latency of the payments list under gunicorn, driven by wrk (loopback only).

One server with 2 workers serves three copies of ``GET /api/payments/``: the protected route
as deployed, the same without the per-caller rate limit, and the same with authentication and
permissions off (the baseline). wrk runs them in turns, each for a fixed time, so drift on
the machine is shared; the median of the turns is reported.

Every request says ``Connection: close``, as gunicorn sees it behind nginx (HTTP/1.0 to the
upstream by default): with keep-alive, wrk's connections are placed on workers once per run
and all of them often land on one worker, which halves throughput at random.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
from dataclasses import dataclass, field

from .environment import BenchEnvironment, BenchSetupError
from .paths import OPEN_PATH, PROTECTED_PATH, UNTHROTTLED_PATH
from .server import GunicornServer

WORKERS = 2
CONNECTIONS = 16
WARMUP_S = 2
RUN_S = 3
TURNS = 10
WRK_TIMEOUT_S = 10
# High enough that the single bench caller never meets it, so the limiter runs but never 429s.
NEVER_REACHED_RATE = "100000000/m"
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
_PERCENTILE = re.compile(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors:.*")


@dataclass
class WrkRun:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    failures: int


@dataclass
class RouteLoad:
    """Every turn of one route; figures are medians over the turns."""

    path: str
    runs: list[WrkRun] = field(default_factory=list)

    @property
    def requests_per_s(self) -> float:
        return statistics.median(run.requests_per_s for run in self.runs)

    @property
    def p50_ms(self) -> float:
        return statistics.median(run.p50_ms for run in self.runs)

    @property
    def p99_ms(self) -> float:
        return statistics.median(run.p99_ms for run in self.runs)

    @property
    def failures(self) -> int:
        return sum(run.failures for run in self.runs)


@dataclass
class LoadResults:
    open: RouteLoad
    protected: RouteLoad
    unthrottled: RouteLoad


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise BenchSetupError("wrk is not installed: apt-get install wrk (make bench does)")
    return path


def run_wrk(url: str, token: str | None, duration_s: int) -> WrkRun:
    command = [
        wrk_path(),
        "-H",
        "Connection: close",
        "-t1",
        f"-c{CONNECTIONS}",
        f"-d{duration_s}s",
        f"--timeout={WRK_TIMEOUT_S}s",
        "--latency",
        url,
    ]
    if token is not None:
        command[1:1] = ["-H", f"Authorization: Bearer {token}"]
    completed = subprocess.run(  # noqa: S603 (wrk, loopback URL, fixed arguments)
        command, capture_output=True, text=True, check=True, timeout=duration_s + 30
    )
    output = completed.stdout
    percentiles = {
        name: float(value) * _UNITS_MS[unit] for name, value, unit in _PERCENTILE.findall(output)
    }
    rate = _RATE.search(output)
    if rate is None or set(percentiles) != {"50", "99"}:
        raise BenchSetupError(f"could not read wrk's output:\n{output}")
    non_2xx = _NON_2XX.search(output)
    socket_errors = _SOCKET_ERRORS.search(output)
    failures = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        failures += sum(int(number) for number in re.findall(r"\d+", socket_errors.group(0)))
    return WrkRun(float(rate.group(1)), percentiles["50"], percentiles["99"], failures)


def run_load(bench: BenchEnvironment, token: str) -> LoadResults:
    env = bench.subprocess_env(BENCH_API_RATE_LIMIT=NEVER_REACHED_RATE)
    results = LoadResults(
        RouteLoad(OPEN_PATH), RouteLoad(PROTECTED_PATH), RouteLoad(UNTHROTTLED_PATH)
    )
    routes = [(results.open, None), (results.protected, token), (results.unthrottled, token)]
    with GunicornServer(
        workers=WORKERS, env=env, log_path=bench.workdir / "gunicorn-load.log"
    ) as server:
        server.wait_until_serving()
        for route, bearer in routes:
            run_wrk(server.base_url + route.path, bearer, WARMUP_S)
        for _ in range(TURNS):
            for route, bearer in routes:
                route.runs.append(run_wrk(server.base_url + route.path, bearer, RUN_S))
    return results
