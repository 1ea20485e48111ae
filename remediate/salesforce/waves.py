"""Independent calls to one org, sent together: a *wave*.

A round trip costs 100-300 ms against a real org. Calls that do not depend on each other (the
composite query, the Tooling query, one ``readMetadata`` per type, an integration's token
request...) need not wait for each other: the gateway sends them as one wave, at most
``limit`` at a time, and the wave costs one round trip of latency when it fits in the limit
(ADR 0010). Each call still counts as one API call against the org's daily allowance.

Results come back in the order of the calls. When calls fail, every call of the wave still
finishes (no half-sent wave is abandoned) and the first failure, in call order, is raised.
"""

from __future__ import annotations

import contextvars
import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from remediate.salesforce import shared_threads

T = TypeVar("T")
_in_wave: contextvars.ContextVar[bool] = contextvars.ContextVar("remediate_in_wave", default=False)

#: Requests one org may have in flight at once, by default (the ``in_flight`` setting and
#: ``--in-flight`` change it, up to ``MAX_PARALLEL``). Salesforce limits concurrent requests
#: of 20 s or longer only, to 25 per production org or sandbox (5 in Developer Edition and
#: trial orgs), and sets no limit on shorter ones ("API Request Limits and Allocations",
#: developer.salesforce.com/docs/platform/salesforce-app-limits-cheatsheet/guide/
#: salesforce-app-limits-platform-api.html); ours are short, and even if all of them ran long
#: 25 stays within a production org's limit. 25 keeps the reads of a 200-integration playbook
#: (20 ``readMetadata`` of 10 apps, 3 composites) in one wave: 2 round trips (issue 17).
DEFAULT_PARALLEL = 25
MAX_PARALLEL = 25


def inside() -> bool:
    """Is this code running as one call of a wave? (Its latency is the wave's, not its own.)"""
    return _in_wave.get()


def _as_wave_call(call: Callable[[], T]) -> T:
    _in_wave.set(True)  # in the call's own copy of the context
    return call()


def rounds_for(calls: int, limit: int) -> int:
    """Round trips of latency a wave of ``calls`` costs with ``limit`` in flight."""
    return math.ceil(calls / max(1, limit)) if calls else 0


def run_wave(calls: Sequence[Callable[[], T]], limit: int = DEFAULT_PARALLEL) -> list[T]:
    if not calls:
        return []
    if len(calls) == 1 or limit <= 1:
        return [contextvars.copy_context().run(_as_wave_call, call) for call in calls]
    # each call runs in a copy of the caller's context (structlog's bound variables); at most
    # ``limit`` lanes take the calls in order from one queue, on the process's shared pool
    # (no threads started per wave: shared_threads)
    contexts = [contextvars.copy_context() for _ in calls]
    outcomes: list[tuple[bool, Any]] = [(False, None)] * len(calls)
    queue = iter(range(len(calls)))
    taking = threading.Lock()

    def lane() -> None:
        while True:
            with taking:
                i = next(queue, None)
            if i is None:
                return
            try:
                outcomes[i] = (True, contexts[i].run(_as_wave_call, calls[i]))
            except BaseException as exc:  # re-raised below, after the wave
                outcomes[i] = (False, exc)

    width = min(limit, len(calls))
    if inside():  # a wave inside a wave: its own threads, so the shared pool never starves
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="remediate-wave") as own:
            for future in [own.submit(lane) for _ in range(width)]:
                future.result()
    else:
        for future in [shared_threads.pool().submit(lane) for _ in range(width)]:
            future.result()
    for ok, value in outcomes:
        if not ok:
            raise value
    return [value for _, value in outcomes]
