"""The journal: an append-only JSONL record of every apply, written as it happens.

One line per event, each flushed and fsynced before the next write to the org, so a run that
dies half-way leaves a journal that says exactly what was applied and what was not:

* ``apply.start``: run id, org, org id, plan checksum, approval (who, how, when), the changes;
* ``batch``: one write request's changes with ``result`` = applied | failed | unknown (the
  write may have been committed, ADR 0009) and the error, and ``created``: the ids of the rows
  it inserted (what ``rollback`` deletes);
* ``apply.end``: status = applied | failed (a run with nothing to apply writes no line);
* ``rollback``: which run a rollback run undid; ``enforce``: one org's outcome in an enforce run.

Values are the plan's before/after values; no credential ever reaches a plan, so none reaches
the journal.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from remediate.plan import Change


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


def change_record(change: Change) -> dict[str, Any]:
    return change.data(write=True)


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, event: str, **fields: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {"at": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": event,
                  **fields}
        line = json.dumps(record, default=str, sort_keys=True) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if line:
                    try:
                        yield json.loads(line)
                    except ValueError:
                        continue  # a line cut short by a crash; the rest is still good
