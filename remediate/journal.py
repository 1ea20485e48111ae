"""The journal: an append-only JSONL record of every apply, written as it happens.

One line per event, each flushed and fsynced before the next write to the org, so a run that
dies half-way leaves a journal that says exactly what was applied and what was not:

* ``apply.start``: run id, org, org id, plan checksum, approval (who, how, when), the changes;
* ``batch.intent``: a write request's changes and its number in the run (``batch``), written
  *before* the request is sent;
* ``batch``: that request's outcome, with ``result`` = applied | failed | unknown (and the
  error), and ``created``: the ids of the rows it inserted (what ``rollback`` deletes);
* ``interrupted``: SIGINT or SIGTERM stopped the run (the batches sent and not answered have an
  intent and no outcome: their outcome is unknown);
* ``apply.end``: status = applied | failed | nothing-to-do.
* ``rollback``: which run a rollback run undid; ``enforce``: one org's outcome in an enforce run.

A crash between an intent and its outcome leaves the intent alone: ``history`` shows the run's
batches of unknown outcome, and ``rollback`` re-reads the org for them. Each record is one line;
a line torn by a crash is skipped on reading and never glued to the next record.
Records are typed (``Record`` and its subclasses, pydantic models) for the code that reads
them back (``history``, ``rollback``).

Values are the plan's before/after values; no credential ever reaches a plan, so none reaches
the journal.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from remediate.plan import Change

_append_lock = threading.Lock()


class Record(BaseModel):
    """One journal line. Events this module does not type (``enforce``...) keep their fields."""

    model_config = ConfigDict(extra="allow")

    at: str = ""
    event: str
    run_id: str | None = None
    org: str | None = None


class ApplyStart(Record):
    event: Literal["apply.start"] = "apply.start"
    org_id: str = ""
    checksum: str | None = None
    approval: dict[str, Any] = Field(default_factory=dict)
    changes: list[dict[str, Any]] = Field(default_factory=list)


class BatchIntent(Record):
    event: Literal["batch.intent"] = "batch.intent"
    batch: int
    changes: list[dict[str, Any]] = Field(default_factory=list)


class BatchOutcome(Record):
    event: Literal["batch"] = "batch"
    batch: int | None = None  # None in journals written before intents were recorded
    result: Literal["applied", "failed", "unknown"]
    error: str | None = None
    changes: list[dict[str, Any]] = Field(default_factory=list)
    created: list[str] = Field(default_factory=list)


class Interrupted(Record):
    event: Literal["interrupted"] = "interrupted"
    signal: str = "SIGINT"


class ApplyEnd(Record):
    event: Literal["apply.end"] = "apply.end"
    status: str = ""
    applied: int = 0
    not_applied: int = 0
    unknown: int = 0


class Rollback(Record):
    event: Literal["rollback"] = "rollback"
    rollback_of: str | None = None


_TYPED: dict[str, type[Record]] = {c.model_fields["event"].default: c for c in (
    ApplyStart, BatchIntent, BatchOutcome, Interrupted, ApplyEnd, Rollback)}


def typed(raw: dict[str, Any]) -> Record | None:
    """The typed record for a journal line, or None for one that does not validate."""
    cls = _TYPED.get(str(raw.get("event")), Record)
    try:
        return cls.model_validate(raw)
    except ValidationError:
        return None


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
        line = (json.dumps(record, default=str, sort_keys=True) + "\n").encode("utf-8")
        import fcntl

        with _append_lock:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # processes of one fleet run share the journal
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # a torn last line: never glue this record onto it
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def records(self) -> Iterator[Record]:
        """The journal's lines as typed records (torn or invalid lines skipped)."""
        for raw in self.read():
            record = typed(raw)
            if record is not None:
                yield record

    def read(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                line = line.strip()
                if line:
                    try:
                        value = json.loads(line)
                    except ValueError:
                        continue  # a line cut short by a crash; the rest is still good
                    if isinstance(value, dict):
                        yield value
