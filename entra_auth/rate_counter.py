"""Request counts per key and time window, shared through Django's cache in batches.

The per-caller limit counts every authenticated request. Counting each one in the shared
cache (as django-ratelimit does) costs cache round trips on every request; here each process
counts in memory and adds its counts to the shared cache:

- once ``batch`` of a key's requests are counted and not yet written (``batch_size``: 1 for
  small limits, so those are counted exactly; at most ``max_batch``);
- on every request once the key is within ``batch`` of its limit.

A request's count is its place among this process's requests in the window (exact) plus what
the other processes had written when this process last wrote. That never exceeds the true
count, so a refusal is never wrong, with one exception: a write whose answer is lost (a
timeout after the cache applied it) is sent again, and its requests then count twice. A key
can get past its limit by at most what the other processes counted and have not written yet:
``(processes - 1) x (batch - 1)`` requests per window. Once a process knows a key is over,
it refuses it for the rest of the window without asking the cache, so a caller hammering the
API costs no round trips.

When a write fails, the counts stay in memory for the next one, and the counter stops writing:
one request per ``PROBE_INTERVAL_S`` tries the cache again, the others are answered from what
the process knows (``Count.shared`` is False), so an unreachable cache slows no request down.
If the cache loses a counter mid-window (flushed, evicted), the count restarts from what is
written afterwards: still a lower bound, the overshoot unbounded for that window.

Windows are fixed, ``period`` seconds long, each key's offset by a hash of the key (as
django-ratelimit staggers them) so that callers' windows do not all reset at once. A request
whose clock reading falls before its key's current window (a thread that read the clock just
before the window turned) counts in the current window.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("entra_auth.throttling")

PERIODS_S = {"s": 1, "m": 60, "h": 60 * 60, "d": 24 * 60 * 60}
_RATE = re.compile(r"([1-9][0-9]{0,8})/([1-9][0-9]{0,5})?([smhd])")
# A shared count outlives its window by this much (clocks of processes differ slightly).
EXPIRY_MARGIN_S = 5
# While the cache fails, one request per interval (per process) tries it again.
PROBE_INTERVAL_S = 1.0
# A batch never exceeds this share of the limit: the overshoot per other process stays small.
BATCH_SHARE_OF_LIMIT = 20
MAX_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` requests per ``period_s`` seconds."""

    limit: int
    period_s: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``"300/m"``, ``"10/5s"``, ``"1000/h"``, ``"5000/d"`` (django-ratelimit's syntax,
        strictly); ValueError for anything else."""
        match = _RATE.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(
                f"{text!r} is not a rate: expected '<count>/<unit>' or '<count>/<n><unit>' "
                "with a unit of s, m, h or d (e.g. '300/m')."
            )
        count, multiplier, unit = match.groups()
        return cls(int(count), int(multiplier or 1) * PERIODS_S[unit])


def batch_size(limit: int, max_batch: int) -> int:
    """Requests a process counts before writing: 1 below ``2 x BATCH_SHARE_OF_LIMIT``."""
    return max(1, min(max_batch, limit // BATCH_SHARE_OF_LIMIT))


@dataclass(frozen=True, slots=True)
class Count:
    """A key's count after one more request, as far as this process knows."""

    count: int  # a lower bound of the true count in this window
    limit: int
    seconds_left: int  # until the window ends (at least 1)
    shared: bool  # False while the cache fails: the count is what this process knows

    @property
    def over(self) -> bool:
        return self.count > self.limit


class _Window:
    __slots__ = (
        "ends_at",
        "external",
        "hits",
        "inflight",
        "last_write_ok",
        "ours_in_shared",
        "pending",
        "write_lock",
    )

    def __init__(self, ends_at: float) -> None:
        self.ends_at = ends_at
        self.hits = 0  # every request this process counted in the window: exact
        self.pending = 0  # counted, not written yet
        self.inflight = 0  # being written now (one write at a time per window)
        self.ours_in_shared = 0  # this process's part of the shared count
        self.external = 0  # the other processes' part, as of this process's last write
        self.last_write_ok = True
        self.write_lock = threading.Lock()

    @property
    def shared_count(self) -> int:
        """The shared count as of this process's last write."""
        return self.ours_in_shared + self.external


class BatchedRateCounter:
    """Counts hits per key in fixed windows; thread-safe; one per process and purpose."""

    def __init__(
        self,
        namespace: str,
        *,
        cache: Callable[[], Any],
        max_batch: Callable[[], int],
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.namespace = namespace
        self.cache = cache
        self.max_batch = max_batch
        self.clock = clock
        self.monotonic = monotonic
        self.max_keys = max_keys
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        self._lock = threading.Lock()
        self._failing = False
        self._next_probe_at = 0.0

    def reset(self) -> None:
        """Forget every count held in memory (settings changed)."""
        with self._lock:
            self._windows.clear()
            self._failing = False

    def hit(self, key: str, rate: Rate) -> Count:
        """Count one request for ``key``; write to the shared cache when a batch is due."""
        now = self.clock()
        batch = batch_size(rate.limit, self.max_batch())
        with self._lock:
            window = self._window(key, rate.period_s, now)
            window.hits += 1
            window.pending += 1
            own = window.hits
            if window.shared_count > rate.limit:
                due = False  # the window's outcome is settled: nothing to learn or tell
            elif self._failing:
                due = self._claim_probe()
            else:
                due = (
                    window.pending + window.inflight >= batch
                    or own + window.external > rate.limit - batch
                )
            shared = not self._failing
            known = own + window.external
        if due:
            shared = self._write(key, window, now)
            with self._lock:
                known = own + window.external  # what the write learnt of the others
        seconds_left = max(1, math.ceil(window.ends_at - now))
        return Count(known, rate.limit, seconds_left, shared)

    def _claim_probe(self) -> bool:
        """Whether this request may try the failing cache (one per interval); lock held."""
        now = self.monotonic()
        if now < self._next_probe_at:
            return False
        self._next_probe_at = now + PROBE_INTERVAL_S
        return True

    def _window(self, key: str, period_s: int, now: float) -> _Window:
        """The key's current window (a new one once the last has ended); lock held.

        The most recently used keys are kept when the map is full.
        """
        window = self._windows.get(key)
        if window is not None and now < window.ends_at:
            self._windows.move_to_end(key)
            return window  # also for a clock reading from before the window began
        if window is None and len(self._windows) >= self.max_keys:
            self._windows.popitem(last=False)
        window = self._windows[key] = _Window(window_end(key, period_s, now))
        self._windows.move_to_end(key)
        return window

    def _write(self, key: str, window: _Window, now: float) -> bool:
        """Add what the window counted to the shared count; False when the cache failed.

        Writes of one window take turns, so each total read back holds this process's part
        as counted in ``ours_in_shared``.
        """
        with window.write_lock:
            with self._lock:
                delta, window.pending = window.pending, 0
                window.inflight = delta
                if not delta:  # a write that just ended took this request's count along
                    return window.last_write_ok
            cache_key = f"entra_auth:rate:{self.namespace}:{key}:{int(window.ends_at)}"
            try:
                total = add_to_shared_count(
                    self.cache(),
                    cache_key,
                    delta,
                    math.ceil(window.ends_at - now) + EXPIRY_MARGIN_S,
                )
            except Exception:  # the cache is down: keep the counts for the next write
                with self._lock:
                    window.inflight = 0
                    window.pending += delta
                    window.last_write_ok = False
                    newly_failing, self._failing = not self._failing, True
                    self._next_probe_at = self.monotonic() + PROBE_INTERVAL_S
                if newly_failing:
                    logger.warning(
                        "rate-limit cache unavailable for %s: answering from the counts in "
                        "memory until it is back",
                        self.namespace,
                        exc_info=True,
                    )
                return False
            with self._lock:
                window.inflight = 0
                window.ours_in_shared += delta
                if total < window.ours_in_shared:  # the counter was lost and started again
                    window.ours_in_shared = delta
                window.external = total - window.ours_in_shared
                window.last_write_ok = True
                recovered, self._failing = self._failing, False
            if recovered:
                logger.warning("rate-limit cache for %s answers again", self.namespace)
            return True


def add_to_shared_count(cache: Any, cache_key: str, delta: int, timeout_s: int) -> int:
    """Add ``delta`` to a counter in ``cache``, created with ``timeout_s``; the new total.

    Once the counter exists, one ``incr`` (one round trip with ``project.cache.RedisCache``;
    Django's own Redis backend takes two). Creating it takes an ``add``, and a second ``incr``
    when another process created it first.
    """
    try:
        return int(cache.incr(cache_key, delta))
    except ValueError:  # not there yet: the first write of this window
        if cache.add(cache_key, delta, timeout_s):
            return delta
        return int(cache.incr(cache_key, delta))


def window_end(key: str, period_s: int, now: float) -> float:
    """When the fixed window holding ``now`` ends, offset per key within the period."""
    offset = zlib.crc32(key.encode()) % period_s
    start = math.floor((now - offset) / period_s) * period_s + offset
    return float(start + period_s)
