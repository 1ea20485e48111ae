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
from typing import Any

# structlog.dev imports rich when it is installed (typer brings it), for pretty tracebacks
# remediate never shows: about a third of structlog's import time (issue 17). Hide it while
# structlog loads; rich stays importable afterwards for anyone else.
_hide_rich = "rich" not in sys.modules
if _hide_rich:
    sys.modules["rich"] = None  # type: ignore[assignment]
try:
    import structlog
finally:
    if _hide_rich:
        del sys.modules["rich"]

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


def configure(fmt: str = "auto", level: str = "warning") -> None:
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = structlog.processors.JSONRenderer() if as_json else \
        structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.WARNING)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(**bound: Any) -> Any:
    return structlog.get_logger(**bound)
