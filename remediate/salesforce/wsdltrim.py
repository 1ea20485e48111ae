"""The Metadata WSDL cut down to what remediate uses, so zeep parses a tenth of it (ADR 0028).

simple-salesforce ships Salesforce's Metadata WSDL (1.5 MB, about 2,000 named types). zeep
builds every type of it on parse: 0.14-0.5 s of CPU per process, most of a short command's own
time. remediate reads and writes a handful of metadata types; this module keeps every operation
and header of the WSDL and, of its schema, only the types those operations and the component
types in ``types`` reach (their fields, bases and enumerations, transitively). What zeep sends
and reads for the kept types is unchanged: their definitions are copied, not rewritten.

The trimmed copy is derived from the installed simple-salesforce file on first use and kept
under the user's cache directory (not shipped: the WSDL is Salesforce's file, distributed with
simple-salesforce), named after a digest of the source and the type list, so a new
simple-salesforce version or type list makes a new one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
XSD_NS = "http://www.w3.org/2001/XMLSchema"
TNS = "http://soap.sforce.com/2006/04/metadata"


def _references(element: Any) -> set[str]:
    found: set[str] = set()
    for node in element.iter():
        for attr in ("type", "base", "ref", "itemType"):
            value = node.get(attr)
            if value and value.startswith("tns:"):
                found.add(value[4:])
    return found


def trim(source: bytes, types: Iterable[str]) -> bytes:
    """``source`` (a Metadata WSDL) with only the schema types reachable from its messages and
    from ``types``."""
    from lxml import etree

    root = etree.fromstring(source, parser=etree.XMLParser(huge_tree=True))
    schema = root.find(f"{{{WSDL_NS}}}types/{{{XSD_NS}}}schema")
    by_name: dict[str, list[Any]] = {}
    for child in schema:
        if isinstance(child.tag, str) and child.get("name"):
            by_name.setdefault(child.get("name"), []).append(child)
    todo = set(types)
    for part in root.iter(f"{{{WSDL_NS}}}part"):
        element = part.get("element") or ""
        if element.startswith("tns:"):
            todo.add(element[4:])
    kept: set[str] = set()
    while todo:
        name = todo.pop()
        if name in kept or name not in by_name:
            continue
        kept.add(name)
        for definition in by_name[name]:
            todo |= _references(definition)
    for name, definitions in by_name.items():
        if name not in kept:
            for definition in definitions:
                schema.remove(definition)
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return out


def trimmed_wsdl(source: Path, types: Iterable[str], cache: Path) -> Path:
    """The trimmed copy of ``source`` for ``types``, from ``cache`` or made there now.
    Raises ``OSError`` when it can be neither read nor written (the caller uses ``source``)."""
    data = source.read_bytes()
    wanted = sorted(set(types))
    digest = hashlib.sha256(data + "\n".join(wanted).encode()).hexdigest()[:16]
    path = cache / f"metadata-{digest}.wsdl"
    if path.is_file():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(trim(data, wanted))
        os.replace(tmp, path)  # atomic: a concurrent process sees the whole file or none
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
