"""The Metadata WSDL trimmed to the types remediate uses (ADR 0028): every operation stays,
the types remediate sends and reads are the WSDL's own definitions, and any other type still
works by parsing the full WSDL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from remediate.salesforce import mdclient, wsdltrim

NS = {"w": wsdltrim.WSDL_NS, "x": wsdltrim.XSD_NS}


def _doc(data: bytes) -> Any:
    return etree.fromstring(data, parser=etree.XMLParser(huge_tree=True))


@pytest.fixture(scope="module")
def trimmed() -> tuple[Any, Any]:
    source = mdclient._vendor_wsdl().read_bytes()
    return _doc(source), _doc(wsdltrim.trim(source, mdclient.TYPES))


def test_trimmed_wsdl_keeps_every_operation_and_message(trimmed: tuple[Any, Any]) -> None:
    full, small = trimmed
    for path in ("w:portType/w:operation", "w:binding/w:operation", "w:message"):
        assert [e.get("name") for e in small.findall(path, NS)] == \
            [e.get("name") for e in full.findall(path, NS)]


def test_trimmed_wsdl_keeps_the_used_types_as_defined_and_drops_the_rest(
        trimmed: tuple[Any, Any]) -> None:
    full, small = trimmed
    def types(root: Any) -> dict[str, bytes]:
        return {e.get("name"): etree.tostring(e) for e in root.find("w:types/x:schema", NS)
                if isinstance(e.tag, str) and e.get("name")}
    big, kept = types(full), types(small)
    for name in (*mdclient.TYPES, "Metadata", "ConnectedAppOauthConfig", "ProfileLoginIpRange"):
        assert kept[name] == big[name]
    assert "CustomObject" not in kept and "CustomObject" in big
    assert len(kept) < len(big) / 5


def test_trimmed_copy_is_cached_and_reused(tmp_path: Path) -> None:
    source = mdclient._vendor_wsdl()
    first = wsdltrim.trimmed_wsdl(source, mdclient.TYPES, tmp_path)
    stamp = first.stat().st_mtime_ns
    assert wsdltrim.trimmed_wsdl(source, mdclient.TYPES, tmp_path) == first
    assert first.stat().st_mtime_ns == stamp
    assert wsdltrim.trimmed_wsdl(source, ("Profile",), tmp_path) != first  # other types


def test_unwritable_cache_falls_back_to_the_full_wsdl(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # cache dir under a file: OSError
    monkeypatch.setattr(mdclient, "_document", None)
    monkeypatch.setattr(mdclient, "_full", None)
    monkeypatch.setattr(mdclient, "_parses", mdclient._parses)
    document = mdclient.wsdl_document()
    assert document is mdclient.wsdl_document(full=True)
    assert document.types.get_type(f"{mdclient.METADATA_NS}CustomObject") is not None


def test_a_type_outside_the_list_moves_the_client_to_the_full_wsdl(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(mdclient, "_document", None)
    monkeypatch.setattr(mdclient, "_full", None)
    monkeypatch.setattr(mdclient, "_parses", mdclient._parses)

    class Sf:
        session_id = "00D!x"
        sf_instance = "acme.my.salesforce.com"
        metadata_url = "https://acme.my.salesforce.com/services/Soap/m/59.0"
        headers: dict[str, str] = {}
        sf_version = "59.0"

    import requests

    api = mdclient.metadata_api(Sf(), requests.Session())
    assert api.ConnectedApp is not None
    assert api.ListMetadataQuery(type="ConnectedApp") is not None  # reached from listMetadata
    assert mdclient._full is None  # the trimmed WSDL was enough
    assert api.CustomObject is not None  # not in the trimmed one
    assert mdclient._full is not None
