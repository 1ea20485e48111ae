"""Colour for text output on a terminal. Off when stdout is not a terminal, and whenever
NO_COLOR is set to anything non-empty (https://no-color.org)."""

from __future__ import annotations

import os
import re

_RED, _GREEN, _YELLOW, _BOLD, _RESET = "\033[31m", "\033[32m", "\033[33m", "\033[1m", "\033[0m"

_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^\s*(DRIFT|NOT verified|error:).*|.*FAILED.*"), _RED),
    (re.compile(r"^\s*(MANUAL|!|\?).*"), _YELLOW),
    (re.compile(r"^\s*~ .*"), _YELLOW),
    (re.compile(r"^\s*(\+ .*|ok\b.*|Verified\.)"), _GREEN),
    (re.compile(r"^(Org |Plan for |Playbook ).*"), _BOLD),
]


def enabled() -> bool:
    return not os.environ.get("NO_COLOR")


def paint(text: str) -> str:
    if not enabled():
        return text
    out = []
    for line in text.split("\n"):
        for pattern, code in _RULES:
            if pattern.match(line):
                line = f"{code}{line}{_RESET}"
                break
        out.append(line)
    return "\n".join(out)
