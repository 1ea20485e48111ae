"""Malformed server answers: ``remediate apply --org demo --yes`` when one answer is garbage.

Each malformed kind (a 200 HTML maintenance page, JSON or SOAP cut in half, a well-formed answer
of the wrong shape, an error inside a 200) is served once, on each kind of request the apply
makes (sign-in, composite query, Tooling query, readMetadata, row inserts, upsertMetadata).
Every case ends with one ``error:`` line naming the org and the request and a non-zero exit,
never a traceback; garbage met while reading leaves the org unwritten. The one exception is an
insert whose answer is garbage: the gateway reads the rows back, finds them, and the apply
succeeds (ADR 0009).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orgstate as st
import pytest
from cliharness import run, writes

from remediate import builtin, orgs
from remediate.errors import SalesforceError
from remediate.journal import Journal
from remediate.salesforce import retry
from remediate.settings import state_dir

MALFORMED = ["html_error_page", "truncated_json", "bad_soap_body", "error_in_200"]
REQUESTS = [("oauth", "token"), ("rest", "composite"), ("tooling", "query"),
            ("soap", "readMetadata"), ("rest", "composite/sobjects"), ("soap", "upsertMetadata")]
READS = {("oauth", "token"), ("rest", "composite"), ("tooling", "query"), ("soap", "readMetadata")}
STDERR_PREFIXES = ("error: ", "hint: ", "applied: ", "not applied: ", "outcome unknown: ")


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch) -> None:
    st.fast_setup(monkeypatch)
    monkeypatch.setattr(retry, "DEFAULT_POLICY", retry.RetryPolicy.no_wait())


def with_fault(monkeypatch: pytest.MonkeyPatch, kind: str, api: str, operation: str) -> None:
    """Every built-in org the CLI opens gets the fault on its first matching request."""
    opened = builtin.open_on_sandbox

    def open_with_fault(*args: Any, **kwargs: Any) -> orgs.OrgHandle:
        handle = opened(*args, **kwargs)
        handle.sandbox.inject(kind, api=api, operation=operation, calls=1)
        return handle

    monkeypatch.setattr(builtin, "open_on_sandbox", open_with_fault)


@pytest.mark.parametrize(("api", "operation"), REQUESTS, ids=[f"{a}-{o}" for a, o in REQUESTS])
@pytest.mark.parametrize("kind", MALFORMED)
def test_a_malformed_answer_ends_in_one_error_line_naming_the_request_never_a_traceback(
        kind: str, api: str, operation: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with_fault(monkeypatch, kind, api, operation)
    result = run("--log-format", "json", "apply", "--org", "demo", "--yes")
    lines = [line for line in result.err.splitlines() if line and not line.startswith("{")]
    assert "Traceback" not in result.err
    assert all(line.startswith(STDERR_PREFIXES) for line in lines), lines
    if operation == "composite/sobjects":  # read back, found: applied, and said so
        assert result.code == 0, result.err
        events = list(Journal(state_dir() / "journal.jsonl").read())
        assert {e.get("result") for e in events if e["event"] == "batch"} == {"applied"}
        return
    assert result.code != 0
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, lines
    assert "org 'demo': " in errors[0] and len(errors[0]) < 400, errors[0]
    if (api, operation) in READS:
        assert writes() == 0, "garbage met while reading must leave the org unwritten"
    else:
        assert any(line.startswith("not applied: ") for line in lines), lines


def test_a_truncated_soap_read_is_refused_not_read_as_a_component_with_fields_missing(
        tmp_path: Path) -> None:
    spec, sandbox = st.demo_sandbox()
    sandbox.inject("truncated_json", api="soap", operation="readMetadata")
    outcome = st.run_apply(st.open_demo(spec, sandbox), Journal(tmp_path / "j.jsonl"))
    assert outcome.error is not None and "cut short" in outcome.error.message
    assert sandbox.writes == 0


def test_a_metadata_answer_of_another_shape_is_refused_not_read_as_a_missing_component() -> None:
    spec, sandbox = st.demo_sandbox()
    gateway = st.open_demo(spec, sandbox).gateway
    assert gateway.read_metadata("NamedCredential", ["No_Such_Credential"]) == [None]
    sandbox.inject("bad_soap_body", api="soap", operation="readMetadata", calls=1)
    with pytest.raises(SalesforceError, match="not a metadata record"):
        gateway.read_metadata("NamedCredential", ["Acme_Self"])
