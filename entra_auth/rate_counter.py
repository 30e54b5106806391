"""Request counts per key and time window, shared through Django's cache in batches.

The per-caller limit counts every authenticated request. Counting each one in the shared
cache (as django-ratelimit does) costs cache round trips on every request; here each process
counts in memory and adds its counts to the shared cache:

- every ``batch`` requests of a key (``batch_size``: 1 for small limits, so those are
  counted exactly; at most ``max_batch``);
- on every request once the key is within ``batch`` of its limit;
- on every request while the cache is failing (so its recovery is seen at once).

What a process knows (the shared count at its last write, plus what it counted since) never
exceeds the true count, so a refusal is never wrong. A key can get past its limit by at most
what the other processes counted and have not written yet: ``(processes - 1) x (batch - 1)``
requests per window. Once a process knows a key is over, it refuses it for the rest of the
window without asking the cache, so a caller hammering the API costs no round trips.

Windows are fixed, ``period`` seconds long, each key's offset by a hash of the key (as
django-ratelimit staggers them) so that callers' windows do not all reset at once.
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
    shared: bool  # False when the cache could not be reached for a write this needed

    @property
    def over(self) -> bool:
        return self.count > self.limit


class _Window:
    __slots__ = ("ends_at", "external", "inflight", "pending", "write_lock", "written")

    def __init__(self, ends_at: float) -> None:
        self.ends_at = ends_at
        self.written = 0  # what this process added to the shared count
        self.inflight = 0  # being added now (one write at a time per window)
        self.pending = 0  # counted here, not written yet
        self.external = 0  # other processes' counts, as of this process's last write
        self.write_lock = threading.Lock()

    @property
    def own(self) -> int:
        """What this process counted in the window: exact."""
        return self.written + self.inflight + self.pending

    @property
    def shared(self) -> int:
        """The shared count after this process's last write."""
        return self.written + self.external


class BatchedRateCounter:
    """Counts hits per key in fixed windows; thread-safe; one per process and purpose."""

    def __init__(
        self,
        namespace: str,
        *,
        cache: Callable[[], Any],
        max_batch: Callable[[], int],
        clock: Callable[[], float] = time.time,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.namespace = namespace
        self.cache = cache
        self.max_batch = max_batch
        self.clock = clock
        self.max_keys = max_keys
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        self._lock = threading.Lock()
        self._cache_failing = False

    def reset(self) -> None:
        """Forget every count held in memory (settings changed)."""
        with self._lock:
            self._windows.clear()
            self._cache_failing = False

    def hit(self, key: str, rate: Rate) -> Count:
        """Count one request for ``key``; write to the shared cache when a batch is due.

        The request's count is its place among this process's requests (exact) plus what
        the other processes had written when this process last wrote (a lower bound).
        """
        now = self.clock()
        batch = batch_size(rate.limit, self.max_batch())
        with self._lock:
            window = self._window(key, rate.period_s, now)
            window.pending += 1
            own = window.own
            known = own + window.external
            due = window.shared <= rate.limit and (  # past it, the window's outcome is settled
                window.pending >= batch or known > rate.limit - batch or self._cache_failing
            )
        shared = True
        if due:
            shared = self._write(key, window, now)
            with self._lock:
                known = own + window.external
        return Count(known, rate.limit, max(1, math.ceil(window.ends_at - now)), shared)

    def _window(self, key: str, period_s: int, now: float) -> _Window:
        """The key's current window (a new one when the last has ended); lock held."""
        window = self._windows.get(key)
        if window is not None and window.ends_at - period_s <= now < window.ends_at:
            return window
        if window is None and len(self._windows) >= self.max_keys:
            self._windows.popitem(last=False)
        window = self._windows[key] = _Window(window_end(key, period_s, now))
        self._windows.move_to_end(key)  # the oldest windows go first
        return window

    def _write(self, key: str, window: _Window, now: float) -> bool:
        """Add what the window counted to the shared count; False when the cache failed.

        Writes of one window take turns, so each total read back is this process's written
        counts plus the others' at that moment.
        """
        with window.write_lock:
            with self._lock:
                delta, window.pending = window.pending, 0
                window.inflight = delta
                if not delta:  # a write that just ended took this request's count along
                    return not self._cache_failing
            cache_key = f"entra_auth:rate:{self.namespace}:{key}:{int(window.ends_at)}"
            try:
                total = add_to_shared_count(
                    self.cache(),
                    cache_key,
                    delta,
                    math.ceil(window.ends_at - now) + EXPIRY_MARGIN_S,
                )
            except Exception:  # the cache is down: keep the counts for the next write
                logger.warning("rate-limit cache unavailable for %s", self.namespace, exc_info=True)
                with self._lock:
                    window.inflight = 0
                    window.pending += delta
                    self._cache_failing = True
                return False
            with self._lock:
                window.inflight = 0
                window.written += delta
                # Never negative: the counter may have expired or been evicted meanwhile.
                window.external = max(0, total - window.written)
                self._cache_failing = False
            return True


def add_to_shared_count(cache: Any, cache_key: str, delta: int, timeout_s: int) -> int:
    """Add ``delta`` to a counter in ``cache``, created with ``timeout_s``; the new total.

    One round trip once the counter exists (an atomic increment); creating it takes an
    ``add``, and a second increment when another process created it first.
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
