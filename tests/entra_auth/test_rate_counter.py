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

from entra_auth.rate_counter import (
    PROBE_INTERVAL_S,
    BatchedRateCounter,
    Rate,
    batch_size,
    window_end,
)

KEY = "11111111-1111-4111-8111-111111111111:user:22222222-2222-4222-8222-222222222222"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FlakyCache:
    """A shared cache that can be made to fail (an outage), or to hold writes until released
    (a write in flight), and can lose its counters (flushed)."""

    def __init__(self) -> None:
        self.cache = LocMemCache(f"rate-counter-{uuid.uuid4()}", {})
        self.down = False
        self.operations = 0
        self.hold: threading.Event | None = None  # writes wait for it when set
        self.holding = threading.Event()  # set once a write waits

    def _check(self) -> None:
        self.operations += 1
        if self.hold is not None:
            self.holding.set()
            self.hold.wait()
        if self.down:
            raise ConnectionError("cache unreachable")

    def clear(self) -> None:
        self.cache.clear()

    def incr(self, key: str, delta: int) -> int:
        self._check()
        return self.cache.incr(key, delta)

    def add(self, key: str, value: int, timeout: int) -> bool:
        self._check()
        return self.cache.add(key, value, timeout)


def processes(
    count: int,
    cache: FlakyCache,
    clock: Clock,
    max_batch: int = 10,
    monotonic: Clock | None = None,
    max_keys: int = 10_000,
) -> list[Any]:
    return [
        BatchedRateCounter(
            "test",
            cache=lambda: cache,
            max_batch=lambda: max_batch,
            clock=clock,
            monotonic=monotonic or Clock(0.0),
            max_keys=max_keys,
        )
        for _ in range(count)
    ]


def wait_until(condition: Any) -> None:
    """Until another thread has reached a point (a condition on shared state), at most 10 s."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the other thread never got there"
        time.sleep(0)


def in_thread(call: Any) -> tuple[threading.Thread, list[Any]]:
    """Start ``call`` in a thread of its own; its result lands in the returned list."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()))
    thread.start()
    return thread, result


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


def test_a_clock_reading_from_before_the_window_counts_in_the_current_window():
    # A thread that read the clock just before the window turned, or a clock stepped back.
    clock, cache = Clock(), FlakyCache()
    (counter,) = processes(1, cache, clock)
    rate = Rate(100, 60)
    end = window_end(KEY, 60, clock.now)
    clock.now = end  # the next window
    assert [counter.hit(KEY, rate).over for _ in range(101)] == [False] * 100 + [True]

    clock.now = end - 1  # late
    late = counter.hit(KEY, rate)
    clock.now = end + 1
    after = counter.hit(KEY, rate)

    assert (late.over, late.count) == (True, 102)
    assert (after.over, after.count) == (True, 103)


def test_keys_are_counted_apart():
    clock, cache = Clock(), FlakyCache()
    (counter,) = processes(1, cache, clock)
    rate = Rate(1, 60)

    assert counter.hit("a", rate).over is False
    assert counter.hit("b", rate).over is False
    assert counter.hit("a", rate).over is True


def test_when_the_keys_in_memory_are_too_many_the_least_recently_used_goes():
    clock, cache = Clock(), FlakyCache()
    (counter,) = processes(1, cache, clock, max_keys=3)
    rate = Rate(100, 60)
    for _ in range(101):
        counter.hit("busy", rate)  # over the limit; its last 5 counts not written yet

    for key in ("a", "b", "c", "d", "e"):
        counter.hit(key, rate)
        assert counter.hit("busy", rate).over  # used all along: kept

    assert list(counter._windows) == ["d", "e", "busy"]


def test_during_an_outage_counts_stay_in_memory_and_are_written_once_the_cache_is_back():
    clock, cache, monotonic = Clock(), FlakyCache(), Clock(0.0)
    first, second = processes(2, cache, clock, monotonic=monotonic)
    rate = Rate(100, 3600)  # batches of 5

    cache.down = True
    during = [first.hit(KEY, rate) for _ in range(7)]
    cache.down = False
    before_probe = first.hit(KEY, rate)  # within the probe interval: not tried
    monotonic.now += PROBE_INTERVAL_S
    probe = first.hit(KEY, rate)  # tries the cache again, and writes all 9
    other = [second.hit(KEY, rate) for _ in range(5)]  # its first write sees the first's 9

    assert [count.shared for count in during] == [True] * 4 + [False] * 3
    assert [count.count for count in during] == list(range(1, 8))  # still counted exactly
    assert not before_probe.shared
    assert probe.shared and probe.count == 9
    assert other[-1].count == 14


def test_while_the_cache_fails_one_request_per_interval_tries_it():
    clock, cache, monotonic = Clock(), FlakyCache(), Clock(0.0)
    (counter,) = processes(1, cache, clock, monotonic=monotonic)
    rate = Rate(100, 3600)
    cache.down = True
    for _ in range(5):
        counter.hit(KEY, rate)  # the 5th write fails
    tried = cache.operations

    answers = [counter.hit(KEY, rate) for _ in range(50)]
    during_interval = cache.operations - tried
    monotonic.now += PROBE_INTERVAL_S
    counter.hit(KEY, rate)

    assert during_interval == 0
    assert cache.operations - tried == 1
    assert not any(answer.shared for answer in answers)
    assert not any(answer.over for answer in answers)


def test_requests_waiting_for_a_write_in_flight_are_written_once_and_counted_in_order():
    clock, cache = Clock(), FlakyCache()
    (counter,) = processes(1, cache, clock, max_batch=1)  # every request writes
    rate = Rate(1000, 3600)
    cache.hold = threading.Event()
    writer, first = in_thread(lambda: counter.hit(KEY, rate))
    cache.holding.wait()
    window = counter._windows[KEY]
    waiting = [in_thread(lambda: counter.hit(KEY, rate)) for _ in range(2)]
    wait_until(lambda: window.pending == 2)  # both counted, both waiting to write
    cache.hold.set()
    for thread, _ in [(writer, first), *waiting]:
        thread.join()

    answers = [first[0], *(result[0] for _, result in waiting)]
    assert sorted(answer.count for answer in answers) == [1, 2, 3]
    assert all(answer.shared for answer in answers)
    # One write for the first request, one carrying both waiting ones (the second to get the
    # lock found nothing left to write), after the first write's increment-then-add.
    assert cache.operations == 3


def test_a_counter_lost_mid_window_is_counted_again_from_what_is_written():
    clock, cache = Clock(), FlakyCache()
    first, second = processes(2, cache, clock, max_batch=5)
    rate = Rate(100, 3600)  # batches of 5
    for _ in range(10):
        first.hit(KEY, rate)  # 10 written

    cache.clear()
    for _ in range(5):
        second.hit(KEY, rate)  # the counter starts again: 5
    for _ in range(4):
        first.hit(KEY, rate)
    after = first.hit(KEY, rate)  # writes 5: the counter says 10, 5 of them its own

    assert after.count == 15 + 5  # its own 15, and the 5 the other wrote since


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


def test_requests_counted_during_a_write_in_flight_stay_within_the_bound():
    # Process 2 has a write in flight; another of its threads must not be let through on a
    # fresh batch meanwhile, or process 1 (which sees none of it) overshoots the bound.
    clock, cache = Clock(), FlakyCache()
    first, second = processes(2, cache, clock)
    rate = Rate(40, 3600)  # batches of 2: at most 40 + 1 x 1 through
    allowed = [not second.hit(KEY, rate).over]  # pending 1
    held = cache.hold = threading.Event()
    writer, written = in_thread(lambda: second.hit(KEY, rate))  # pending 2: a write, held
    cache.holding.wait()
    cache.hold = None  # process 1's writes go through
    window = second._windows[KEY]
    other, other_result = in_thread(lambda: second.hit(KEY, rate))
    wait_until(lambda: window.pending == 1)  # counted while the write is in flight
    allowed += [not first.hit(KEY, rate).over for _ in range(45)]
    held.set()
    writer.join()
    other.join()
    allowed += [not written[0].over, not other_result[0].over]

    assert sum(allowed) <= 41


@st.composite
def schedules(draw: Any) -> tuple[int, Rate, int, list[tuple[int, float, str]]]:
    process_count = draw(st.integers(1, 4))
    rate = Rate(draw(st.integers(1, 80)), draw(st.sampled_from([1, 10, 60])))
    max_batch = draw(st.integers(1, 12))
    events = draw(
        st.lists(
            st.tuples(
                st.integers(0, process_count - 1),
                # Mostly within a window, sometimes past it, sometimes a step back.
                st.one_of(
                    st.just(0.0),
                    st.floats(0, rate.period_s / 20),
                    st.floats(0, 90),
                    st.floats(-rate.period_s, 0),
                ),
                st.sampled_from(["up", "up", "up", "down", "flushed"])
                if draw(st.booleans())
                else st.just("up"),
            ),
            max_size=400,
        )
    )
    return process_count, rate, max_batch, events


@settings(max_examples=200, deadline=None)
@given(schedules())
def test_processes_sharing_a_cache_refuse_only_over_the_limit_and_overshoot_boundedly(schedule):
    process_count, rate, max_batch, events = schedule
    clock, cache, monotonic = Clock(), FlakyCache(), Clock(0.0)
    counters = processes(process_count, cache, clock, max_batch, monotonic=monotonic)
    hits: Counter[tuple[int, float]] = Counter()
    allowed: Counter[tuple[int, float]] = Counter()
    current: dict[int, float] = {}  # each process's current window for the key
    troubled = set()  # windows with an outage or a lost counter: no bound on overshoot

    for process, elapsed, cache_state in events:
        clock.now += elapsed
        monotonic.now += abs(elapsed)
        cache.down = cache_state == "down"
        if cache_state == "flushed":
            cache.clear()
            troubled.update(end for _, end in hits)  # every counter so far is lost
        # A process counts a request in the window it is in, or a later one it already opened
        # (a clock reading from before its current window).
        window = max(window_end(KEY, rate.period_s, clock.now), current.get(process, 0.0))
        current[process] = window
        hits[process, window] += 1
        if cache_state != "up":
            troubled.add(window)
        count = counters[process].hit(KEY, rate)
        total = sum(n for (_, end), n in hits.items() if end == window)
        # What a process knows never exceeds the truth: a refusal is never wrong.
        assert count.count <= total
        if count.over:
            assert total > rate.limit
        else:
            allowed[process, window] += 1

    batch = batch_size(rate.limit, max_batch)
    for window in {end for _, end in hits}:
        passed = sum(n for (_, end), n in allowed.items() if end == window)
        total = sum(n for (_, end), n in hits.items() if end == window)
        if process_count == 1:  # one process knows its exact count, whatever the cache does
            assert passed == min(total, rate.limit)
        elif window not in troubled:
            assert passed <= rate.limit + (process_count - 1) * (batch - 1)
