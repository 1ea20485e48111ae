"""The one place a value becomes a SOQL string literal.

SOQL string literals are single-quoted; inside them a backslash escapes ``\\n \\r \\t \\b \\f
\\" \\' \\\\`` (SOQL and SOSL Reference, "Quoted String Escape Sequences"). Any other value is
written as it is. Every query remediate builds from a value it did not write itself (a name from
a playbook, an id from the journal) goes through ``quote`` or ``in_list``.
"""

from __future__ import annotations

from collections.abc import Iterable

_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "\b": "\\b", "\f": "\\f"}


def quote(value: str) -> str:
    """``value`` as a quoted SOQL string literal."""
    return "'" + "".join(_ESCAPES.get(ch, ch) for ch in value) + "'"


def in_list(values: Iterable[str]) -> str:
    """The inside of an ``IN (...)``: each value quoted, comma-separated."""
    return ", ".join(quote(v) for v in values)
