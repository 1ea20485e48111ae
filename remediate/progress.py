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
