import threading
import time

import pytest

from auscult.parallel import ordered_map


def test_results_come_in_input_order_from_several_threads():
    seen_threads = set()

    def slow_square(value: int) -> int:
        seen_threads.add(threading.get_ident())
        time.sleep(0.001 * (value % 3))  # later items often finish first
        return value * value

    assert list(ordered_map(slow_square, list(range(100)), workers=4)) == [v * v for v in range(100)]
    assert len(seen_threads) > 1


def test_progress_hears_of_every_item_in_order():
    done = []
    list(ordered_map(lambda v: v, list(range(1000)), workers=2, progress=done.append))
    assert done == list(range(1, 1001))


def test_work_is_pulled_a_few_items_ahead():
    started = []
    results = ordered_map(started.append, list(range(10_000)), workers=2)
    next(results)
    assert len(started) <= 16  # a few per worker, not the whole list


def test_an_error_reaches_the_caller_at_its_item():
    def fail_on_three(value: int) -> int:
        if value == 3:
            raise ValueError("three")
        return value

    results = ordered_map(fail_on_three, list(range(10)), workers=2)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="three"):
        next(results)
