"""mf2.overlap.ordered_map: simulate finishes pairs in a helper thread; rows must come back in
order, memory must stay bounded, and an error must surface at its own item."""

from __future__ import annotations

import threading
import time

import pytest

from mf2.overlap import ordered_map


def test_results_keep_the_items_order_whatever_finishes_first() -> None:
    def slow_evens(i: int) -> int:
        time.sleep(0.003 if i % 2 == 0 else 0)
        return i * i

    for threads in (0, 1, 3):
        assert list(ordered_map(slow_evens, range(40), threads=threads)) == [i * i for i in range(40)]


def test_work_runs_beside_the_producer_with_at_most_ahead_items_in_flight() -> None:
    produced, names, lock = [], set(), threading.Lock()
    done = [0]

    def items():
        for i in range(30):
            with lock:  # items produced but not yet finished never exceed `ahead`
                assert len(produced) - done[0] <= 4
            produced.append(i)
            yield i

    def work(i: int) -> int:
        names.add(threading.current_thread().name)
        time.sleep(0.002)  # slower than the producer: an unbounded map would run ahead
        with lock:
            done[0] += 1
        return i

    out = []
    for r in ordered_map(work, items(), threads=1, ahead=4):
        out.append(r)
    assert out == list(range(30))
    assert names and all(n.startswith("mf2-overlap") for n in names)


def test_an_error_is_raised_at_its_item_after_the_items_before_it() -> None:
    def work(i: int) -> int:
        if i == 5:
            raise OSError("No space left on device")
        return i

    got = []
    with pytest.raises(OSError, match="No space"):
        for r in ordered_map(work, range(20), threads=1):
            got.append(r)
    assert got == [0, 1, 2, 3, 4]


def test_no_threads_is_the_plain_loop_in_this_thread() -> None:
    names = []
    list(ordered_map(lambda i: names.append(threading.current_thread().name), range(3), threads=0))
    assert names == [threading.current_thread().name] * 3
