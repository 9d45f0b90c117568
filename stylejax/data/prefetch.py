"""Computing batches ahead of the train step in background threads."""

import collections
import concurrent.futures
from collections.abc import Callable, Iterator
from typing import Any


class Prefetcher(Iterator[Any]):
    """Yields make(start), make(start + 1), ... in order, up to `size` of them made ahead.

    `threads` background threads make batches concurrently: decoding releases the GIL, so one
    batch's Python work overlaps another's decoding. Work starts at construction, so the first
    batches are ready while the train step compiles. An error in `make` is raised by `next` in
    the consumer. `close()` (or leaving a `with` block) cancels what is queued.
    """

    def __init__(self, make: Callable[[int], Any], start: int, size: int = 2, threads: int = 2):
        if size < 1 or threads < 1:
            raise ValueError(f"prefetch size and threads must be >= 1, got {size}, {threads}")
        self._make = make
        self._executor = concurrent.futures.ThreadPoolExecutor(
            threads, thread_name_prefix="stylejax-prefetch")
        self._pending = collections.deque(
            self._executor.submit(make, step) for step in range(start, start + size))
        self._next_step = start + size
        self._closed = False

    def __next__(self) -> Any:
        if self._closed:
            raise StopIteration
        future = self._pending.popleft()
        self._pending.append(self._executor.submit(self._make, self._next_step))
        self._next_step += 1
        try:
            return future.result()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Cancels queued batches and waits for the running ones; `next` then stops."""
        self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if hasattr(self, "_executor"):
            self._executor.shutdown(wait=False, cancel_futures=True)
