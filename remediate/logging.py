"""structlog set-up: readable on a terminal, JSON otherwise (or when asked), secrets redacted.

Log lines go to stderr; results go to stdout, so ``remediate audit --format json | jq`` works.
Redaction runs last before rendering, by key (anything named like a secret) and by pattern
(session ids, bearer/basic headers, PEM blocks), so a careless ``log.info(..., token=t)`` still
prints nothing sensitive.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import ModuleType

SECRET_KEYS = re.compile(r"secret|password|passwd|token|private_?key|assertion|authorization|"
                         r"session_?id|api_?key|credential", re.IGNORECASE)
#: The one set of secret shapes: logs, error messages (salesforce.errors.scrub), webhooks.
SECRET_PATTERNS = (
    re.compile(r"00D\w{12,15}![\w.\-~]+"),  # Salesforce session ids
    re.compile(r"(?i)\b(bearer|basic)\s+[\w.\-+/=!~]+"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+"),  # JWTs
)
REDACTED = "[redacted]"


def redact_text(text: str) -> str:
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: REDACTED if SECRET_KEYS.search(str(k)) else _redact_value(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key != "event" and SECRET_KEYS.search(key):
            event[key] = REDACTED
        else:
            event[key] = _redact_value(event[key])
    return event


#: Levels by method name, for dropping a call below the configured level before structlog is
#: even imported (importing structlog is 20-40 ms of CPU, issue 17; an audit that logs nothing
#: at warning never loads it).
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "warn": logging.WARNING, "error": logging.ERROR, "exception": logging.ERROR,
           "critical": logging.CRITICAL, "fatal": logging.CRITICAL}
#: The level configure() set (None: never configured, every call goes to structlog as is).
_threshold: int | None = None
#: configure()'s arguments while structlog is not loaded yet; applied when it is.
_pending: list[tuple[bool, int]] = []


def _structlog() -> ModuleType:
    """structlog, imported (and configured as configure() asked) on first use."""
    if "structlog" not in sys.modules:
        # structlog.dev imports rich when it is installed (typer brings it), for pretty
        # tracebacks remediate never shows: about a third of structlog's import time (issue 17).
        # Hide it while structlog loads; rich stays importable afterwards for anyone else.
        hide_rich = "rich" not in sys.modules
        if hide_rich:
            sys.modules["rich"] = None  # type: ignore[assignment]
        try:
            import structlog
        finally:
            if hide_rich:
                del sys.modules["rich"]
    import structlog

    try:
        pending = _pending.pop()  # one thread applies it
    except IndexError:
        pass
    else:
        _apply(*pending)
    return structlog


def configure(fmt: str = "auto", level: str = "warning") -> None:
    """Log lines at ``level`` and above to stderr, as JSON or console text. structlog is set up
    now if it is loaded, else when the first line at that level is logged."""
    global _threshold
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    _threshold = getattr(logging, level.upper(), logging.WARNING)
    _pending[:] = [(as_json, _threshold)]
    if "structlog" in sys.modules:
        _structlog()


def _apply(as_json: bool, threshold: int) -> None:
    import structlog

    renderer: Any = structlog.processors.JSONRenderer() if as_json else \
        structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def _dropped(*_: Any, **__: Any) -> None:
    return None


class _Logger:
    """A structlog logger made on first use: a call below the configured level is dropped
    without importing structlog (structlog's filtering logger would drop it too)."""

    __slots__ = ("_bound",)

    def __init__(self, bound: dict[str, Any]) -> None:
        self._bound = bound

    def __getattr__(self, name: str) -> Any:
        level = _LEVELS.get(name)
        if level is not None and _threshold is not None and level < _threshold \
                and "structlog" not in sys.modules:
            return _dropped
        return getattr(_structlog().get_logger(**self._bound), name)


def get_logger(**bound: Any) -> Any:
    return _Logger(bound)
