"""JWKS fetches, counted at the fake Entra server: a cold start of 4 gunicorn workers sharing
Redis under 200 concurrent requests, then a flood of tokens naming random ``kid``s.

One "round" is what one cold process fetches: each version's metadata plus each distinct
JWKS once (measured in-process by ``bench.micro``; 4 requests for v1 + v2). The targets are one
round for the cold start, and at most one round per ``KEY_REFRESH_MIN_INTERVAL`` during the
flood. The failed-authentication limit is off for this server, as for an attacker spread over
many addresses: the flood must reach the key store.
"""

from __future__ import annotations

import http.client
import math
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from entra_auth.conf import entra_settings

from .environment import BenchEnvironment
from .fixtures import random_kid_tokens
from .paths import PROTECTED_PATH
from .server import GunicornServer

COLD_START_WORKERS = 4
COLD_START_CONCURRENCY = 200
FLOOD_TOKENS = 10_000
FLOOD_CLIENTS = 16
REQUEST_TIMEOUT_S = 60


@dataclass
class JwksResults:
    cold_start_requests: int
    cold_start_statuses: Counter
    flood_requests: int
    flood_statuses: Counter
    flood_seconds: float
    refresh_interval_s: float

    @property
    def flood_intervals(self) -> int:
        """Refresh intervals the flood overlapped (one unless it outlasted an interval)."""
        return max(1, math.ceil(self.flood_seconds / self.refresh_interval_s))


def _get(
    port: int,
    token: str,
    connection: http.client.HTTPConnection | None = None,
    *,
    close: bool = False,
) -> int:
    connection = connection or http.client.HTTPConnection(
        "127.0.0.1", port, timeout=REQUEST_TIMEOUT_S
    )
    headers = {"Authorization": f"Bearer {token}"}
    if close:
        headers["Connection"] = "close"
    connection.request("GET", PROTECTED_PATH, headers=headers)
    response = connection.getresponse()
    response.read()
    return response.status


def _concurrent_burst(port: int, tokens: list[str]) -> Counter:
    """Every token in its own connection, all released at once by a barrier."""
    barrier = threading.Barrier(len(tokens))
    statuses: Counter = Counter()
    lock = threading.Lock()

    def one(token: str) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
        try:
            connection.connect()
            barrier.wait(timeout=REQUEST_TIMEOUT_S)
            status: int | str = _get(port, token, connection)
        except (OSError, http.client.HTTPException, threading.BrokenBarrierError) as exc:
            status = type(exc).__name__
        finally:
            connection.close()
        with lock:
            statuses[status] += 1

    threads = [threading.Thread(target=one, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def _flood(port: int, tokens: list[str]) -> Counter:
    """Every token once, from a few client threads, a new connection per request.

    Kept-alive connections would stay on the workers that accepted them, and a worker that
    got none would never see the flood: a new connection each time reaches every worker.
    """
    chunks = [tokens[index::FLOOD_CLIENTS] for index in range(FLOOD_CLIENTS)]

    def send(chunk: list[str]) -> list[int | str]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
        statuses: list[int | str] = []
        try:
            for token in chunk:
                try:
                    statuses.append(_get(port, token, connection, close=True))
                except (OSError, http.client.HTTPException) as exc:
                    statuses.append(type(exc).__name__)
                    connection.close()
        finally:
            connection.close()
        return statuses

    with ThreadPoolExecutor(FLOOD_CLIENTS) as pool:
        return Counter(status for statuses in pool.map(send, chunks) for status in statuses)


def run_jwks(bench: BenchEnvironment, cold_tokens: list[str]) -> JwksResults:
    fake = bench.fake
    env = bench.subprocess_env(BENCH_AUTH_FAILURE_RATE_LIMIT="off")
    flood_tokens = random_kid_tokens(fake, FLOOD_TOKENS)
    with GunicornServer(
        workers=COLD_START_WORKERS, env=env, log_path=bench.workdir / "gunicorn-jwks.log"
    ) as server:
        before = fake.requests_to("all")
        server.wait_for_workers()
        cold_statuses = _concurrent_burst(server.port, cold_tokens[:COLD_START_CONCURRENCY])
        cold_requests = fake.requests_to("all") - before

        before = fake.requests_to("all")
        started = time.monotonic()
        flood_statuses = _flood(server.port, flood_tokens)
        flood_seconds = time.monotonic() - started
        flood_requests = fake.requests_to("all") - before
    return JwksResults(
        cold_start_requests=cold_requests,
        cold_start_statuses=cold_statuses,
        flood_requests=flood_requests,
        flood_statuses=flood_statuses,
        flood_seconds=flood_seconds,
        refresh_interval_s=float(entra_settings.KEY_REFRESH_MIN_INTERVAL),
    )
