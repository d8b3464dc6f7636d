"""Work done ahead on worker threads, handed out in order: decoding images while the network runs.

OpenCV and file reads release the GIL, so a few threads decode images in parallel while the calling thread
runs the forward pass. At most `ahead` results wait at any time: memory depends on that depth, never on how
many items there are.
"""

import collections
import itertools
import os
from concurrent.futures import ThreadPoolExecutor


def num_threads():
    """The cores this process may run on (its CPU affinity where the system tells it, else all of them)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def ordered_map(function, items, ahead, threads=None):
    """Yields `function(item)` for every item, in the items' order, computed up to `ahead` items in advance.

    Args:
        function: called on worker threads; what it raises is raised here, at its item's turn.
        items: any iterable; read lazily, `ahead` items beyond the one handed out.
        ahead: results computed or being computed at most (at least 1).
        threads: worker threads (default: `num_threads()`, at most `ahead`).

    Yields:
        the results, in order.
    """
    ahead = max(1, int(ahead))
    items = iter(items)
    pool = ThreadPoolExecutor(max_workers=min(threads or num_threads(), ahead), thread_name_prefix='prefetch')
    try:
        pending = collections.deque(pool.submit(function, item) for item in itertools.islice(items, ahead))
        while pending:
            result = pending.popleft().result()
            pending.extend(pool.submit(function, item) for item in itertools.islice(items, 1))
            yield result
    finally:  # also when the consumer stops early: drop what has not started, wait for what has
        pool.shutdown(wait=True, cancel_futures=True)
