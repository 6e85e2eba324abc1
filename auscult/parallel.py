"""Per-recording work on every core: libsndfile, libsoxr and numpy release the GIL, so threads suffice."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from auscult.resources import available_cpus

Item = TypeVar("Item")
Result = TypeVar("Result")


def ordered_map(
    function: Callable[[Item], Result],
    items: Sequence[Item],
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[Result]:
    """``function`` over ``items`` on ``workers`` threads (default: the CPUs this process may use), results in
    input order.

    At most a few items per worker are in flight or waiting to be taken, however long ``items`` is, and a
    slow item holds up only the results behind it, not the workers. ``progress`` hears how many items are done
    after each one (:class:`auscult.progress.Tracker` decides how often a person hears of it).
    """
    workers = workers or available_cpus()
    ahead = 4 * workers
    with ThreadPoolExecutor(workers) as pool:
        pending: deque[Future[Result]] = deque(pool.submit(function, item) for item in items[:ahead])
        for done, upcoming in enumerate(range(ahead, len(items) + ahead), start=1):
            result = pending.popleft().result()
            if upcoming < len(items):
                pending.append(pool.submit(function, items[upcoming]))
            yield result
            if progress:
                progress(done)
