"""The batched rate counter: what several processes sharing one cache let through.

Each ``BatchedRateCounter`` below stands for one process; they share one in-memory cache and
one clock the test moves by hand, so every interleaving hypothesis picks is reproducible.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from django.core.cache.backends.locmem import LocMemCache
from hypothesis import given, settings
from hypothesis import strategies as st

from entra_auth.rate_counter import BatchedRateCounter, Rate, batch_size, window_end

KEY = "11111111-1111-4111-8111-111111111111:user:22222222-2222-4222-8222-222222222222"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FlakyCache:
    """A shared cache whose next operations can be made to fail (an outage)."""

    def __init__(self) -> None:
        self.cache = LocMemCache(f"rate-counter-{uuid.uuid4()}", {})
        self.down = False
        self.operations = 0

    def _check(self) -> None:
        self.operations += 1
        if self.down:
            raise ConnectionError("cache unreachable")

    def incr(self, key: str, delta: int) -> int:
        self._check()
        return self.cache.incr(key, delta)

    def add(self, key: str, value: int, timeout: int) -> bool:
        self._check()
        return self.cache.add(key, value, timeout)


def processes(count: int, cache: FlakyCache, clock: Clock, max_batch: int = 10) -> list[Any]:
    return [
        BatchedRateCounter("test", cache=lambda: cache, max_batch=lambda: max_batch, clock=clock)
        for _ in range(count)
    ]


# -- rates --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit", "period_s"),
    [
        ("300/m", 300, 60),
        ("1/s", 1, 1),
        ("10/5s", 10, 5),
        ("1000/h", 1000, 3600),
        ("5000/d", 5000, 86400),
        ("2/15m", 2, 900),
    ],
)
def test_rates_in_django_ratelimit_syntax_parse(text, limit, period_s):
    assert Rate.parse(text) == Rate(limit, period_s)


@pytest.mark.parametrize(
    "text", ["", "300", "300/", "300/minute", "0/m", "-1/m", "3.5/m", "300/0m", " 300/m", "m/300"]
)
def test_anything_else_is_not_a_rate(text):
    with pytest.raises(ValueError, match="is not a rate"):
        Rate.parse(text)


@given(st.text(max_size=20))
def test_parsing_any_text_gives_a_positive_rate_or_a_value_error(text):
    try:
        rate = Rate.parse(text)
    except ValueError:
        return
    assert rate.limit >= 1 and rate.period_s >= 1


@given(
    st.integers(1, 10**6),
    st.one_of(st.none(), st.integers(1, 999)),
    st.sampled_from(["s", "m", "h", "d"]),
)
def test_every_well_formed_rate_parses_to_what_it_says(limit, multiplier, unit):
    text = f"{limit}/{'' if multiplier is None else multiplier}{unit}"
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]

    assert Rate.parse(text) == Rate(limit, (multiplier or 1) * seconds)


def test_batches_are_one_for_small_limits_and_capped_for_large_ones():
    assert [batch_size(limit, 10) for limit in (1, 5, 39, 40, 100, 200, 300, 10_000)] == [
        1,
        1,
        1,
        2,
        5,
        10,
        10,
        10,
    ]
    assert batch_size(10_000, 1) == 1


@given(st.text(max_size=40), st.integers(1, 86400 * 7), st.floats(0, 4e9, allow_nan=False))
def test_the_window_holds_now_and_its_offset_depends_on_the_key_alone(key, period_s, now):
    end = window_end(key, period_s, now)

    assert end - period_s <= now < end
    assert window_end(key, period_s, end - period_s) == end  # the window's first instant
    assert window_end(key, period_s, end) == end + period_s  # the next window's


# -- one process ----------------------------------------------------------------------------------


def test_one_process_lets_exactly_the_limit_through_per_window():
    clock, cache = Clock(), FlakyCache()
    (counter,) = processes(1, cache, clock)
    rate = Rate(300, 60)

    counts = [counter.hit(KEY, rate) for _ in range(305)]

    assert [count.over for count in counts] == [False] * 300 + [True] * 5
    assert [count.count for count in counts] == list(range(1, 306))
    # Writes: every 10th request up to 290 (29), each of the last 10 before the limit, and the
    # one that went over; nothing after (the window's outcome is settled). The first write of
    # the window is an increment that finds no counter, then an add: 41 cache operations.
    assert cache.operations == 41


def test_a_new_window_starts_from_zero_and_retry_after_is_the_time_left():
    clock, cache = Clock(), FlakyCache()
    (counter,) = processes(1, cache, clock)
    rate = Rate(2, 60)
    end = window_end(KEY, 60, clock.now)

    assert [counter.hit(KEY, rate).over for _ in range(3)] == [False, False, True]
    clock.now = end - 10.5
    assert counter.hit(KEY, rate).seconds_left == 11
    clock.now = end
    assert counter.hit(KEY, rate).over is False


def test_keys_are_counted_apart():
    clock, cache = Clock(), FlakyCache()
    (counter,) = processes(1, cache, clock)
    rate = Rate(1, 60)

    assert counter.hit("a", rate).over is False
    assert counter.hit("b", rate).over is False
    assert counter.hit("a", rate).over is True


def test_the_keys_held_in_memory_are_bounded():
    clock, cache = Clock(), FlakyCache()
    counter = BatchedRateCounter(
        "test", cache=lambda: cache, max_batch=lambda: 10, clock=clock, max_keys=3
    )

    for key in "abcde":
        counter.hit(key, Rate(1000, 60))

    assert len(counter._windows) == 3


def test_during_an_outage_counts_are_kept_and_written_once_the_cache_is_back():
    clock, cache = Clock(), FlakyCache()
    first, second = processes(2, cache, clock)
    rate = Rate(100, 3600)  # batches of 5

    cache.down = True
    during = [first.hit(KEY, rate) for _ in range(7)]
    cache.down = False
    after = first.hit(KEY, rate)  # writes every request until one succeeds
    other = [second.hit(KEY, rate) for _ in range(5)]  # its first write sees the first's 8

    assert [count.shared for count in during] == [True] * 4 + [False] * 3
    assert after.shared and after.count == 8
    assert other[-1].count == 13


def test_reset_forgets_what_was_counted_in_memory():
    clock, cache = Clock(), FlakyCache()
    (counter,) = processes(1, cache, clock)
    rate = Rate(1000, 60)
    for _ in range(5):
        counter.hit(KEY, rate)  # below a batch: in memory only

    counter.reset()

    assert counter.hit(KEY, rate).count == 1


def test_threads_of_one_process_let_exactly_the_limit_through():
    cache = FlakyCache()
    yielding_incr = cache.incr

    def incr(key: str, delta: int) -> int:
        time.sleep(0)  # let another thread run while a write is in flight
        return yielding_incr(key, delta)

    cache.incr = incr
    (counter,) = processes(1, cache, Clock())
    rate = Rate(500, 3600)
    refused: list[bool] = []

    def work() -> None:
        for _ in range(100):
            refused.append(counter.hit(KEY, rate).over)  # list.append is atomic

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Counter(refused) == {False: 500, True: 300}
    assert counter.hit(KEY, rate).count == 801


# -- several processes ------------------------------------------------------------------------


@st.composite
def schedules(draw: Any) -> tuple[int, Rate, int, list[tuple[int, float, bool]]]:
    process_count = draw(st.integers(1, 4))
    rate = Rate(draw(st.integers(1, 80)), draw(st.sampled_from([1, 10, 60])))
    max_batch = draw(st.integers(1, 12))
    events = draw(
        st.lists(
            st.tuples(
                st.integers(0, process_count - 1),
                # Mostly within a window, sometimes past it.
                st.one_of(st.just(0.0), st.floats(0, rate.period_s / 20), st.floats(0, 90)),
                st.booleans() if draw(st.booleans()) else st.just(False),  # cache down?
            ),
            max_size=400,
        )
    )
    return process_count, rate, max_batch, events


@settings(max_examples=150, deadline=None)
@given(schedules())
def test_processes_sharing_a_cache_refuse_only_over_the_limit_and_overshoot_boundedly(schedule):
    process_count, rate, max_batch, events = schedule
    clock, cache = Clock(), FlakyCache()
    counters = processes(process_count, cache, clock, max_batch)
    hits: Counter[float] = Counter()
    allowed: Counter[float] = Counter()
    outage_windows = set()

    for process, elapsed, down in events:
        clock.now += elapsed
        cache.down = down
        window = window_end(KEY, rate.period_s, clock.now)
        hits[window] += 1
        if down:
            outage_windows.add(window)
        count = counters[process].hit(KEY, rate)
        # What a process knows never exceeds the truth: a refusal is never wrong.
        assert count.count <= hits[window]
        if count.over:
            assert hits[window] > rate.limit
        else:
            allowed[window] += 1

    batch = batch_size(rate.limit, max_batch)
    for window, passed in allowed.items():
        if process_count == 1:  # one process knows the exact count, outage or not
            assert passed == min(hits[window], rate.limit)
        elif window not in outage_windows:  # an outage lets through what cannot be counted
            assert passed <= rate.limit + (process_count - 1) * (batch - 1)
