"""The JSON envelope: what every command prints on stdout with ``--format json`` or ``--json``.

Outside remediate.render on purpose: importing that package loads the engine, and --help must
stay light (tests/unit/test_startup.py).

One object, whatever the command and however it ended (docs/json.md, docs/envelope.schema.json)::

    {"schema_version": 1, "remediate_version": "0.1.0", "command": "audit",
     "status": "drift", "exit_code": 2, "result": {...}, "warnings": [], "errors": []}

``result`` is the command's own data, unchanged (``assessment_data`` for audit, ``plan_data`` for
plan, ...), so what a command adds to its data appears in the envelope with no change here. On an
error, ``result`` is whatever the command had produced (usually null) and ``errors`` holds the
error as data: type, message, hint, exit code and, for a partial apply, what was and was not
applied.

JSON mode is chosen once, from the command line, before the command runs (``activate``): while it
is on, everything else a command writes to stdout is held back, so stdout carries exactly one JSON
document.

The envelope being built belongs to the run (``remediate.runcontext``): outside a run JSON mode is
off and what a command records is dropped.
"""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from remediate import runcontext

SCHEMA_VERSION = 1

#: exit code -> status word (README, "Exit codes").
STATUSES: dict[int, str] = {0: "ok", 1: "failed", 2: "drift", 3: "refused", 4: "not_verified",
                            64: "bad_input", 75: "locked", 130: "interrupted"}

#: Root options that take a value, so their value is not mistaken for the command's name.
_ROOT_VALUE_OPTIONS = {"--config", "-c", "--log-format"}
#: Groups whose first argument is a sub-command: "playbook validate", "sandbox scenarios".
_GROUPS = {"playbook", "sandbox", "config", "history"}


@dataclass
class Envelope:
    active: bool = False
    command: str = ""
    result: Any = None
    has_result: bool = False
    warnings: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    stdout: TextIO | None = None  # the real stdout while commands write to a buffer
    held: io.StringIO | None = None


def _current() -> Envelope:
    """The current run's envelope (a throwaway one outside a run)."""
    return runcontext.current().envelope


def active() -> bool:
    run = runcontext.active()
    return run is not None and run.envelope.active


def activate(argv: list[str]) -> list[str]:
    """Strip ``--json`` / ``--format json`` from ``argv`` and turn JSON mode on when present.

    Returns the arguments for the command parser. ``--help`` keeps plain output.
    """
    out: list[str] = []
    wanted = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out.extend(argv[i:])
            break
        if arg == "--json" or arg in ("--format=json", "-fjson"):
            wanted = True
        elif arg in ("--format", "-f") and i + 1 < len(argv) and argv[i + 1] == "json":
            wanted = True
            i += 1
        else:
            out.append(arg)
        i += 1
    # 'sandbox serve' prints its own JSON start-up line and then serves until stopped: holding
    # stdout back would hide that line, so it keeps its output
    run = runcontext.active()
    if wanted and run is not None and not {"--help", "-h"} & set(out) \
            and command_name(out) != "sandbox serve":
        state = run.envelope
        state.active = True
        state.command = command_name(out)
        state.stdout = sys.stdout
        state.held = io.StringIO()
        sys.stdout = state.held
    return out


def command_name(argv: list[str]) -> str:
    words: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg.startswith("-"):
            skip = arg in _ROOT_VALUE_OPTIONS and not words
            continue
        words.append(arg)
        if len(words) == 2 or words[0] not in _GROUPS:
            break
    return " ".join(words) or "remediate"


def set_result(data: Any) -> None:
    state = _current()
    state.result = data
    state.has_result = True


def warn(message: str) -> None:
    _current().warnings.append(message)


def error(err: BaseException, exit_code: int, message: str | None = None) -> None:
    data: dict[str, Any] = {"type": type(err).__name__, "message": message or str(err),
                            "exit_code": exit_code}
    hint = getattr(err, "hint", None)
    if hint:
        data["hint"] = hint
    code = getattr(err, "code", None)
    if isinstance(code, str):
        data["code"] = code
    if getattr(err, "applied", None) is not None:
        data["applied"] = list(getattr(err, "applied", []))
        data["not_applied"] = list(getattr(err, "not_applied", []))
        data["unknown"] = list(getattr(err, "unknown", None) or [])
    _current().errors.append(data)


def document(exit_code: int) -> dict[str, Any]:
    from remediate import __version__

    state = _current()
    result = state.result
    if (not state.has_result and not state.errors and state.held is not None
            and state.held.getvalue().strip()):
        result = {"text": state.held.getvalue().rstrip("\n")}  # a command with no data shape
    return {"schema_version": SCHEMA_VERSION, "remediate_version": __version__,
            "command": state.command, "status": STATUSES.get(exit_code, "failed"),
            "exit_code": exit_code, "result": result, "warnings": list(state.warnings),
            "errors": list(state.errors)}


def finish(exit_code: int) -> None:
    """Print the envelope on the real stdout (JSON mode only), restore stdout and turn JSON
    mode off."""
    state = _current()
    if not state.active or state.stdout is None:
        return
    sys.stdout = state.stdout
    state.stdout.write(json.dumps(document(exit_code), indent=2, default=str) + "\n")
    state.stdout.flush()
    state.active, state.stdout, state.held = False, None, None
