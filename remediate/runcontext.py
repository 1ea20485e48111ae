"""One remediate invocation's own state: the root options, the settings read once, the JSON
envelope being built. Held in one ``contextvars.ContextVar``, set for the length of a run
(``started``), so two runs in one process (tests, a library caller) never share it (issue 13).

``remediate.cli.main`` starts a run around the whole command; ``app()`` called without ``main``
(typer's ``CliRunner``) gets its own from the root callback. Threads do not inherit a context
variable: code that hands CLI work to a thread runs it in ``contextvars.copy_context()``
(``enforce.run_fleet`` does).

Outside remediate.cli_base on purpose: it is imported before the command parser, and --help must
stay light (tests/unit/test_startup.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from remediate.envelope import Envelope
    from remediate.settings import Settings


def _new_envelope() -> Envelope:
    from remediate.envelope import Envelope

    return Envelope()


@dataclass
class RunContext:
    """What one invocation of the CLI knows beyond its arguments."""

    config: Path | None = None  # --config / $REMEDIATE_CONFIG as given (None: ./remediate.toml)
    settings: Settings | None = None  # read on first use, then kept for the run
    verbose: int = 0
    log_format: str = "auto"
    in_flight: int | None = None  # --in-flight: beats every in_flight setting (issue 17)
    envelope: Envelope = field(default_factory=_new_envelope)


_ACTIVE: ContextVar[RunContext | None] = ContextVar("remediate_run", default=None)


@contextmanager
def started() -> Iterator[RunContext]:
    """A fresh context for one run, current until the block ends (then the one before it is)."""
    run = RunContext()
    token = _ACTIVE.set(run)
    try:
        yield run
    finally:
        _ACTIVE.reset(token)


def active() -> RunContext | None:
    """The current run's context, or None outside a run."""
    return _ACTIVE.get()


def current() -> RunContext:
    """The current run's context; outside a run (a library caller), a new default one each
    call, so nothing read or set there leaks into a later run."""
    return _ACTIVE.get() or RunContext()
