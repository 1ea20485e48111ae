"""The gateway's retry policy, call by call: what is retried, how long it waits, when it stops,
the one re-sign-in on an expired session, writes whose outcome is open, and request timeouts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orgstate as st
import pytest

from remediate import engine
from remediate.errors import ConnectionFailure, OutcomeUnknown, SalesforceError
from remediate.journal import Journal
from remediate.salesforce import retry
from remediate.salesforce.retry import Resend, RetryPolicy, call_with_retries
from remediate.sandbox.adapter import SandboxAdapter


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch) -> None:
    st.fast_setup(monkeypatch)


def failing(*errors: SalesforceError) -> tuple[Any, list[int]]:
    """A call that raises ``errors`` in turn, then answers "ok"; and its call counter."""
    calls = [0]

    def fn() -> str:
        calls[0] += 1
        if calls[0] <= len(errors):
            raise errors[calls[0] - 1]
        return "ok"
    return fn, calls


def recording_policy(**kwargs: Any) -> tuple[RetryPolicy, list[float]]:
    waits: list[float] = []
    return RetryPolicy(sleep=waits.append, **kwargs), waits


LOCK = SalesforceError("x: HTTP 400 UNABLE_TO_LOCK_ROW: unable to obtain", code="UNABLE_TO_LOCK_ROW")
LIMIT = SalesforceError("x: HTTP 403 REQUEST_LIMIT_EXCEEDED: TotalRequests",
                        code="REQUEST_LIMIT_EXCEEDED")


@pytest.mark.parametrize("err", [
    LOCK, LIMIT,
    SalesforceError("x: HTTP 503 SERVER_UNAVAILABLE: try later", code="SERVER_UNAVAILABLE"),
    SalesforceError("x: HTTP 502 : an HTML page", code=None),
    ConnectionFailure("x: cannot reach the org (Connection aborted)", code="CONNECTION"),
    ConnectionFailure("x: timed out", code="TIMEOUT"),
    ConnectionFailure("x: refused", code="CONNECT_FAILED"),
], ids=["lock", "limit", "503", "502", "dropped", "timeout", "refused"])
def test_transient_failures_are_retried_with_backoff_until_the_call_succeeds(
        err: SalesforceError) -> None:
    policy, waits = recording_policy(initial_s=1.0, jitter_s=0.0)
    fn, calls = failing(err, err)
    assert call_with_retries(policy, fn) == "ok"
    assert calls[0] == 3
    factor = policy.limit_factor if err.code == "REQUEST_LIMIT_EXCEEDED" else 1.0
    assert waits == [1.0 * factor, 2.0 * factor]  # exponential


@pytest.mark.parametrize("err", [
    SalesforceError("x: HTTP 400 INVALID_FIELD: No such column", code="INVALID_FIELD"),
    SalesforceError("x: write refused: DUPLICATE_VALUE: duplicate", code="DUPLICATE_VALUE"),
    SalesforceError("x: authentication failed: invalid_grant", code="invalid_grant"),
    ConnectionFailure("x: TLS verification failed", code="TLS"),
    SalesforceError("x: unexpected answer: not JSON", code="BAD_ANSWER"),
], ids=["invalid-field", "duplicate", "invalid-grant", "tls", "bad-answer"])
def test_other_failures_are_raised_at_once_without_a_retry(err: SalesforceError) -> None:
    policy, waits = recording_policy()
    fn, calls = failing(err)
    with pytest.raises(SalesforceError) as raised:
        call_with_retries(policy, fn)
    assert raised.value is err and calls[0] == 1 and waits == []


def test_waits_have_bounded_jitter_and_a_cap() -> None:
    policy = RetryPolicy(initial_s=1.0, max_wait_s=4.0, jitter_s=0.5)
    waits = [policy.wait_s(n, LOCK) for n in range(1, 8)]
    assert all(base <= w <= base + 0.5 for w, base in zip(waits, [1, 2, 4, 4, 4, 4, 4],
                                                          strict=True))
    assert policy.wait_s(1, LIMIT) >= policy.limit_factor * 1.0


def test_retries_stop_after_the_attempts_and_raise_the_last_error() -> None:
    policy, waits = recording_policy(attempts=3, initial_s=0.0, jitter_s=0.0)
    fn, calls = failing(*[LOCK] * 5)
    with pytest.raises(SalesforceError, match="UNABLE_TO_LOCK_ROW"):
        call_with_retries(policy, fn)
    assert calls[0] == 3 and len(waits) == 2


def test_retries_stop_before_a_wait_would_pass_the_deadline() -> None:
    policy, waits = recording_policy(attempts=50, initial_s=4.0, max_wait_s=4.0, jitter_s=0.0,
                                     deadline_s=10.0)
    fn, calls = failing(*[LOCK] * 50)
    with pytest.raises(SalesforceError):
        call_with_retries(policy, fn)
    # the waits are not slept (recorded only), so the clock hardly moves: the deadline check
    # counts the upcoming wait, and 4 s waits fit under 10 s only while they are not taken
    assert calls[0] >= 2 and all(w == 4.0 for w in waits)


def test_an_expired_session_signs_in_again_once_then_gives_up() -> None:
    expired = SalesforceError("x: HTTP 401 INVALID_SESSION_ID: Session expired",
                              code="INVALID_SESSION_ID")
    signins: list[int] = []

    def reauthenticate() -> bool:
        signins.append(1)
        return True

    fn, calls = failing(expired)
    assert call_with_retries(RetryPolicy.no_wait(), fn, reauthenticate=reauthenticate) == "ok"
    assert signins == [1]
    fn, calls = failing(expired, expired)
    signins.clear()
    with pytest.raises(SalesforceError, match="INVALID_SESSION_ID"):
        call_with_retries(RetryPolicy.no_wait(), fn, reauthenticate=reauthenticate)
    assert signins == [1] and calls[0] == 2


def test_a_never_resent_write_is_not_repeated_after_a_failure_that_may_have_committed_it() -> None:
    dropped = ConnectionFailure("x: cannot reach the org (Connection aborted)", code="CONNECTION")
    fn, calls = failing(dropped)
    with pytest.raises(ConnectionFailure):
        call_with_retries(RetryPolicy.no_wait(), fn, write=Resend.NEVER)
    assert calls[0] == 1
    refused = ConnectionFailure("x: cannot reach the org (Connection refused)",
                                code="CONNECT_FAILED")
    fn, calls = failing(refused)  # never sent: safe to send again
    assert call_with_retries(RetryPolicy.no_wait(), fn, write=Resend.NEVER) == "ok"


# ---- through the gateway, on the sandbox ---------------------------------------------------


@pytest.mark.parametrize(("api", "operation", "call"), [
    ("rest", "composite", 1), ("soap", "readMetadata", 1),
    ("rest", "composite", 2),  # the licence and the permission sets' composite (ADR 0044)
    ("rest", "composite/sobjects", 1),  # the same rows sent apart
    ("soap", "upsertMetadata", 1)])
def test_an_expired_session_re_signs_in_once_on_rest_and_soap(
        api: str, operation: str, call: int, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    if operation == "composite/sobjects":
        monkeypatch.setenv("REMEDIATE_APPLY_COMBINE_LICENCE", "0")
    spec, sandbox = st.demo_sandbox()
    sandbox.inject("expired_session", api=api, operation=operation, calls=call)
    outcome = st.run_apply(st.open_demo(spec, sandbox), Journal(tmp_path / "j.jsonl"))
    assert outcome.error is None and outcome.converged
    assert [r.operation for r in sandbox.requests].count("token") == 2  # first, and once more


def test_a_session_that_expires_again_right_after_signing_in_again_fails_the_run(
        tmp_path: Path) -> None:
    spec, sandbox = st.demo_sandbox()
    sandbox.inject("expired_session", api="rest", operation="composite", calls={1, 2})
    outcome = st.run_apply(st.open_demo(spec, sandbox), Journal(tmp_path / "j.jsonl"))
    assert outcome.error is not None and "INVALID_SESSION_ID" in outcome.error.message
    assert [r.operation for r in sandbox.requests].count("composite") == 2  # signed in once


def test_an_insert_committed_before_the_connection_dropped_is_read_back_not_duplicated(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the rows sent apart, each type its own insert (ADR 0009); the composite that holds
    # both is tests/e2e/test_apply_waves.py's
    monkeypatch.setenv("REMEDIATE_APPLY_COMBINE_LICENCE", "0")
    spec, sandbox = st.demo_sandbox()
    sandbox.inject("drop_connection", operation="composite/sobjects", method="POST", calls=1,
                   after=True)
    path = tmp_path / "j.jsonl"
    outcome = st.run_apply(st.open_demo(spec, sandbox), Journal(path))
    assert outcome.error is None and outcome.converged
    posts = [r for r in sandbox.requests if r.operation == "composite/sobjects"]
    assert len(posts) == 2  # the dropped insert is not sent again: it was found by a query
    assert {b["result"] for b in st.journal_records(path) if b["event"] == "batch"} == {"applied"}


def test_a_write_whose_outcome_stays_open_is_journalled_unknown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the rows sent apart, each type its own insert (ADR 0009); the composite that holds
    # both is tests/e2e/test_apply_waves.py's
    monkeypatch.setenv("REMEDIATE_APPLY_COMBINE_LICENCE", "0")
    spec, sandbox = st.demo_sandbox()
    # the first insert commits and its connection drops; so does every read-back query
    sandbox.inject("drop_connection", operation="composite/sobjects", method="POST", calls=1,
                   after=True)
    sandbox.inject("drop_connection", api="rest", operation="query")
    path = tmp_path / "j.jsonl"
    handle = st.open_demo(spec, sandbox)
    current = engine.assess(handle)
    with pytest.raises(engine.ApplyFailed) as failed:
        engine.apply(handle, current, engine.approval("flag"), Journal(path))
    # the licence's outcome is open; the metadata written beside it in the same wave (ADR 0039)
    # was applied, and the permission sets that wait for the licence were never sent
    assert [u.split(": ", 1)[1] for u in failed.value.unknown] == [
        "permission set license SalesforceAPIIntegrationPsl"]
    assert all(" permission set " not in a for a in failed.value.applied)
    batches = [b for b in st.journal_records(path) if b["event"] == "batch"]
    [licence] = [b for b in batches if b["result"] != "applied"]
    assert licence["result"] == "unknown"
    assert "may or may not" in licence["error"]
    assert not [b for b in batches if "Workato_API_Access" in json.dumps(b)]
    assert isinstance(OutcomeUnknown("x"), SalesforceError)


def test_every_request_of_an_apply_and_a_verify_carries_a_timeout(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[tuple[str, Any]] = []
    send = SandboxAdapter.send

    def recording(self: SandboxAdapter, request: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((str(request.url), kwargs.get("timeout")))
        return send(self, request, *args, **kwargs)

    monkeypatch.setattr(SandboxAdapter, "send", recording)
    spec, sandbox = st.demo_sandbox()
    handle = st.open_demo(spec, sandbox)
    assert st.run_apply(handle, Journal(tmp_path / "j.jsonl")).converged
    assert engine.verify(handle).ok
    assert {u.split("/services/")[1].split("/")[0] for u, _ in seen} >= {"oauth2", "data", "Soap"}
    assert all(t is not None for _, t in seen), [u for u, t in seen if t is None]


def test_the_default_policy_waits_and_stops_within_a_minute() -> None:
    policy = retry.DEFAULT_POLICY
    assert policy.attempts >= 3 and policy.deadline_s <= 60
    assert policy.wait_s(1, LOCK) > 0 and policy.wait_s(1, LIMIT) > policy.wait_s(1, LOCK)


def test_a_read_back_write_goes_on_after_a_failure_that_may_have_committed_it_not_after_unknown(
        ) -> None:
    dropped = ConnectionFailure("x: cannot reach the org (Connection aborted)", code="CONNECTION")
    fn, calls = failing(dropped, dropped)  # its next attempt looks before it sends
    assert call_with_retries(RetryPolicy.no_wait(), fn, write=Resend.AFTER_READ_BACK) == "ok"
    assert calls[0] == 3
    fn, calls = failing(OutcomeUnknown("x: read-back failed too", code="CONNECTION"))
    with pytest.raises(OutcomeUnknown):
        call_with_retries(RetryPolicy.no_wait(), fn, write=Resend.AFTER_READ_BACK)
    assert calls[0] == 1


def test_a_delete_committed_before_the_connection_dropped_is_not_sent_again_and_ends_unknown(
        tmp_path: Path) -> None:
    spec, sandbox = st.demo_sandbox()
    handle = st.open_demo(spec, sandbox)
    assert st.run_apply(handle, Journal(tmp_path / "j.jsonl")).converged  # assigns sets
    gateway = handle.gateway
    ids = [str(r["Id"]) for r in gateway.query(
        "SELECT Id FROM PermissionSetAssignment WHERE PermissionSet.IsOwnedByProfile = false")][:1]
    assert ids
    sandbox.inject("drop_connection", operation="composite/sobjects", method="DELETE", calls=1,
                   after=True)
    with pytest.raises(OutcomeUnknown, match="may or may not"):
        gateway.delete_rows("PermissionSetAssignment", ids)
    deletes = [r for r in sandbox.requests
               if r.operation == "composite/sobjects" and r.method == "DELETE"]
    assert len(deletes) == 1  # not sent again
    # why: sent again, the committed delete would have been answered as refused
    with pytest.raises(SalesforceError) as again:
        gateway.delete_rows("PermissionSetAssignment", ids)
    assert again.value.code == "ENTITY_IS_DELETED"


# ---- progress on a terminal (issue 18.4) ----------------------------------------------------


class _Terminal:
    """A stderr that says it is a terminal, and keeps what was written to it."""

    def __init__(self, tty: bool) -> None:
        self.tty, self.text = tty, ""

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("tty", [True, False], ids=["terminal", "piped"])
def test_a_retried_call_shows_a_progress_line_on_a_terminal_only(
        tty: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    spec, sandbox = st.demo_sandbox()
    sandbox.inject("unable_to_lock_row", api="rest", operation="composite", calls=1)
    stderr = _Terminal(tty)
    monkeypatch.setattr(sys, "stderr", stderr)
    current = engine.assess(st.open_demo(spec, sandbox))
    assert not current.unknown
    if tty:
        assert stderr.text.startswith("org 'demo': reading the org (composite query): ")
        assert stderr.text.count("\n") == 1
        assert "UNABLE_TO_LOCK_ROW; retrying in 0.0 s (attempt 2)\n" in stderr.text
    else:
        assert stderr.text == ""
