"""What a CLI run holds and how it ends: the org locks apply and rollback take, SIGTERM treated
like Ctrl-C (so the journal gets its ``interrupted`` record), and internal errors logged with
their traceback when asked (issue 12, points 4, 5 and 9)."""

from __future__ import annotations

import signal
import sys
import threading
import traceback as tb
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from remediate.errors import OrgBusy

_held: list[ExitStack] = []


class Terminated(KeyboardInterrupt):
    """SIGTERM: handled like Ctrl-C (exit 130), so every ``finally`` and journal record runs."""


def lock_org(name: str) -> None:
    """Take ``name``'s org lock (enforce.org_lock) until the command ends, or raise OrgBusy."""
    from remediate.enforce import org_lock

    stack = ExitStack()
    held = stack.enter_context(org_lock(name))
    if not held:
        stack.close()
        raise OrgBusy(f"org {name!r} is locked by another run (an apply, a rollback or an "
                      "enforce); nothing was written. Try again when it has finished")
    _held.append(stack)


def release_locks() -> None:
    while _held:
        _held.pop().close()


@contextmanager
def guarded() -> Iterator[None]:
    """SIGTERM raises ``Terminated`` in the main thread for the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: Any) -> None:
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not settable here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def log_internal(exc: BaseException, *, traceback: bool, raw: bool = False) -> None:
    """Log a bug in remediate; with ``traceback`` the log line carries the whole traceback,
    and ``raw`` also prints it as Python does (``-vv``)."""
    from remediate.logging import get_logger, redact_text

    fields: dict[str, Any] = {"error": type(exc).__name__,
                              "detail": redact_text(str(exc))[:300]}
    if traceback:
        fields["traceback"] = redact_text("".join(tb.format_exception(exc)))
    get_logger().error("internal_error", **fields)
    if traceback and raw:
        sys.stderr.write(fields["traceback"])
    sys.stderr.flush()
