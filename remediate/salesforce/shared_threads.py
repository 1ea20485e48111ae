"""Threads a process keeps instead of starting new ones per request (issue 17, the fleet).

A fleet run makes thousands of requests: starting a ``threading.Timer`` per request (the
transport's total deadline) and a thread pool per wave cost about a thread start per request,
which on a loaded machine is the largest CPU cost after the client stack's own work. Here:

* ``deadlines``: one watchdog thread per process runs every request's deadline action (a heap
  of deadlines; a cancelled one is dropped when it comes up);
* ``pool()``: one thread pool per process runs the calls of every wave (``waves.run_wave``
  still bounds each wave's calls in flight to its own limit).

Both are made again in a forked child (``remediate.fleet``): a child has no thread of its
parent's.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

#: Threads of the shared wave pool: 32 orgs at once with 8 calls each fit.
POOL_THREADS = 256


class Deadline:
    """One scheduled action; ``cancel`` stops it if it has not run yet."""

    __slots__ = ("action", "cancelled")

    def __init__(self, action: Callable[[], None]) -> None:
        self.action = action
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Watchdog:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def schedule(self, delay: float, action: Callable[[], None]) -> Deadline:
        entry = Deadline(action)
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), entry))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="remediate-deadlines",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()
        return entry

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][2].cancelled:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._cond.wait()
                        continue
                    due = self._heap[0][0] - time.monotonic()
                    if due <= 0:
                        entry = heapq.heappop(self._heap)[2]
                        break
                    self._cond.wait(due)
            if not entry.cancelled:
                with contextlib.suppress(Exception):  # one action's failure stops no other
                    entry.action()


deadlines = Watchdog()
_pool: list[ThreadPoolExecutor] = []
_pool_lock = threading.Lock()


def pool() -> ThreadPoolExecutor:
    with _pool_lock:
        if not _pool:
            _pool.append(ThreadPoolExecutor(max_workers=POOL_THREADS,
                                            thread_name_prefix="remediate-wave"))
        return _pool[0]


def _after_fork_in_child() -> None:
    global deadlines, _pool_lock
    deadlines = Watchdog()
    _pool.clear()  # the parent's pool has no thread here; a new one is made on first use
    _pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
