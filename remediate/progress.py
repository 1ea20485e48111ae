"""Progress for long runs (a fleet pass), on stderr and only on a terminal: piped or captured
output stays quiet, so logs and CI stay clean."""

from __future__ import annotations

import sys
import threading
from typing import Any


class Progress:
    def __init__(self, total: int, label: str) -> None:
        self.total, self.label, self.done = total, label, 0
        self._lock = threading.Lock()
        self.shown = sys.stderr.isatty() and total > 1

    def step(self, item: Any = None) -> None:
        with self._lock:
            self.done += 1
            if not self.shown:
                return
            name = getattr(item, "org", "") or ""
            end = "\n" if self.done >= self.total else ""
            sys.stderr.write(f"\r\033[K{self.label}: {self.done}/{self.total} {name}"[:200] + end)
            sys.stderr.flush()


def line(text: str) -> None:
    """One progress line on stderr, on a terminal only (a retry after a backoff, a package
    install poll); piped or captured stderr stays quiet. Text from an org is made safe for the
    terminal first."""
    stream = sys.stderr
    if not stream.isatty():
        return
    from remediate.untrusted import for_terminal

    stream.write(for_terminal(text)[:300] + "\n")
    stream.flush()


def retry_line(call: str, code: str | None, attempt: int, wait_s: float) -> str:
    """What a retried call shows: which call, why, and how long until the next attempt."""
    return (f"{call}: {code or 'failed'}; retrying in {wait_s:.1f} s "
            f"(attempt {attempt + 1})")
