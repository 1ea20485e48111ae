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
"""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

SCHEMA_VERSION = 1

#: exit code -> status word (README, "Exit codes").
STATUSES: dict[int, str] = {0: "ok", 1: "failed", 2: "drift", 3: "refused", 4: "not_verified",
                            64: "bad_input", 75: "locked", 130: "interrupted"}

#: Root options that take a value, so their value is not mistaken for the command's name.
_ROOT_VALUE_OPTIONS = {"--config", "-c", "--log-format"}
#: Groups whose first argument is a sub-command: "playbook validate", "sandbox scenarios".
_GROUPS = {"playbook", "sandbox", "config", "history"}


@dataclass
class _Envelope:
    active: bool = False
    command: str = ""
    result: Any = None
    has_result: bool = False
    warnings: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    stdout: TextIO | None = None  # the real stdout while commands write to a buffer
    held: io.StringIO | None = None


STATE = _Envelope()


def reset() -> None:
    global STATE
    STATE = _Envelope()


def active() -> bool:
    return STATE.active


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
    if wanted and not {"--help", "-h"} & set(out) and command_name(out) != "sandbox serve":
        STATE.active = True
        STATE.command = command_name(out)
        STATE.stdout = sys.stdout
        STATE.held = io.StringIO()
        sys.stdout = STATE.held
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
    STATE.result = data
    STATE.has_result = True


def warn(message: str) -> None:
    STATE.warnings.append(message)


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
    STATE.errors.append(data)


def document(exit_code: int) -> dict[str, Any]:
    from remediate import __version__

    result = STATE.result
    if (not STATE.has_result and not STATE.errors and STATE.held is not None
            and STATE.held.getvalue().strip()):
        result = {"text": STATE.held.getvalue().rstrip("\n")}  # a command with no data shape
    return {"schema_version": SCHEMA_VERSION, "remediate_version": __version__,
            "command": STATE.command, "status": STATUSES.get(exit_code, "failed"),
            "exit_code": exit_code, "result": result, "warnings": list(STATE.warnings),
            "errors": list(STATE.errors)}


def finish(exit_code: int) -> None:
    """Print the envelope on the real stdout (JSON mode only) and restore stdout."""
    if not STATE.active or STATE.stdout is None:
        return
    sys.stdout = STATE.stdout
    STATE.stdout.write(json.dumps(document(exit_code), indent=2, default=str) + "\n")
    STATE.stdout.flush()
    reset()
