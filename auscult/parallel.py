"""Per-recording work on every core: libsndfile, libsoxr and numpy release the GIL, so threads suffice."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
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
    """``function`` over ``items`` on ``workers`` threads (default: one per core), results in input order.

    A chunk at a time, so at most a few results per worker are held however long ``items`` is; ``progress``
    hears how many items are done after each tenth of them.
    """
    workers = workers or available_cpus()
    chunk = 16 * workers
    report_every = max(1, len(items) // 10)
    with ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(items), chunk):
            yield from pool.map(function, items[start : start + chunk])
            done = min(start + chunk, len(items))
            if progress and (done // report_every > start // report_every or done == len(items)):
                progress(done)
