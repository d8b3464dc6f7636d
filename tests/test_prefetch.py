"""Tests of `utils/base/prefetch.py`: work done ahead on threads, handed out in order, bounded."""

import threading
import time

import pytest

from utils.base.prefetch import num_threads, ordered_map


def test_results_come_in_the_items_order_whatever_finishes_first():
    def slow_for_small(item):
        time.sleep(0.02 * (5 - item))  # the first items finish last
        return item * item
    assert list(ordered_map(slow_for_small, range(6), ahead=4, threads=4)) == [0, 1, 4, 9, 16, 25]


def test_no_more_than_ahead_items_are_started_before_theirs_is_taken():
    started = []
    lock = threading.Lock()

    def record(item):
        with lock:
            started.append(item)
        return item

    results = ordered_map(record, range(100), ahead=3, threads=2)
    for taken in range(10):
        assert next(results) == taken
        time.sleep(0.01)
        with lock:
            assert len(started) <= taken + 1 + 3, (taken, started)
    results.close()
    assert len(started) <= 14


def test_an_error_is_raised_at_its_items_turn():
    def fail_on_two(item):
        if item == 2:
            raise ValueError('item 2 is bad')
        return item
    results = ordered_map(fail_on_two, range(5), ahead=5)
    assert [next(results), next(results)] == [0, 1]
    with pytest.raises(ValueError, match='item 2 is bad'):
        next(results)


def test_items_are_read_lazily():
    def items():
        yield from range(3)
        raise AssertionError('read beyond what was asked for')
    results = ordered_map(str, items(), ahead=2)
    assert next(results) == '0'
    results.close()


def test_threads_are_at_least_one():
    assert num_threads() >= 1
