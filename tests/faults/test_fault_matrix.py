"""The fault matrix: the demo apply with each fault kind injected at each request position.

A clean ``remediate apply --org demo --yes`` makes N requests (sign-in, reads, writes, the
re-read). For every fault kind and every position 1..N, a fresh demo org gets that one fault
(``Sandbox.inject(kind, calls=n)``; ``drop_connection`` both before and after the server acts),
and the apply runs with zero-wait retries. Then:

* the journal says exactly what changed in the org (the org's tables and metadata, diffed);
* nothing changed that the plan did not list, and nothing twice;
* after this run and at most one more, the org matches the baseline (no automatic change left);
* a run that gave up says which changes were applied and which were not, in its error and in
  the journal.

A second, *persistent* series keeps failing from position n on (more than the retry policy's
attempts) so every call gives up somewhere: a 503 (certainly not applied) and a connection
dropped after the server committed (outcome open: inserts are read back, the rest journalled).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import orgstate as st
import pytest
import registry

from remediate.errors import ApplyFailed
from remediate.journal import Journal
from remediate.salesforce.retry import RetryPolicy

KINDS: list[tuple[str, bool]] = [
    ("http_503", False),
    ("drop_connection", False),
    ("drop_connection", True),
    ("unable_to_lock_row", False),
    ("request_limit_exceeded", False),
    ("expired_session", False),
]
PERSISTENT_KINDS: list[tuple[str, bool]] = [("http_503", False), ("drop_connection", True)]


@functools.cache
def clean_apply() -> tuple[int, list[st.Key]]:
    """(requests a clean demo apply makes, the change keys of its plan)."""
    with pytest.MonkeyPatch.context() as mp:
        st.fast_setup(mp)
        spec, sandbox = st.demo_sandbox()
        before = st.snapshot(sandbox.org)
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            run = st.run_apply(st.open_demo(spec, sandbox), Journal(Path(tmp) / "j.jsonl"))
        assert run.error is None and run.converged
        keys = st.change_keys(run.planned)
        assert st.same_changes(st.diff_keys(before, st.snapshot(sandbox.org)), keys)
        return len(sandbox.requests), keys


REQUESTS, _ = clean_apply()
POSITIONS = range(1, REQUESTS + 1)


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch) -> None:
    st.fast_setup(monkeypatch)


def labels(records: list[dict[str, Any]]) -> set[str]:
    return {f"{r['target']}: {r['field']}" for r in records}


def check_case(kind: str, after: bool, position: int, persistent: bool, tmp_path: Path) -> None:
    _, planned = clean_apply()
    spec, sandbox = st.demo_sandbox()
    baseline = st.baseline()
    calls: Any = range(position, position + 2 * RetryPolicy().attempts) if persistent \
        else position
    rule = sandbox.inject(kind, calls=calls, after=after)  # type: ignore[arg-type]
    path = tmp_path / "journal.jsonl"
    first = st.run_apply(st.open_demo(spec, sandbox), Journal(path))
    assert rule.fired >= 1, "the fault never fired: the position is past the run's requests"
    if not persistent:
        # one transient fault never fails the run: retries and one re-sign-in absorb it, except
        # the token endpoint's refusals that are not worth repeating (an expired or limited
        # login)
        hit = sandbox.requests[position - 1]
        refusal = hit.api == "oauth" and kind in ("expired_session", "request_limit_exceeded")
        assert first.converged or refusal, first.error

    # the journal says exactly what changed; nothing outside the plan changed
    observed = st.diff_keys(baseline, st.snapshot(sandbox.org))
    applied = st.journal_batches(path, "applied")
    unknown = st.journal_batches(path, "unknown")
    extra, missing = st.unexplained(observed, st.record_keys(applied), st.record_keys(unknown))
    assert extra == [] and missing == [], (first.error, extra, missing)
    assert st.unexplained(observed, [], planned)[0] == [], "a change outside the plan"

    # a run that gave up says what was applied and what was not
    events = [r for r in st.journal_records(path)]
    if isinstance(first.error, ApplyFailed):
        assert set(first.error.applied) == labels(applied)
        assert set(first.error.unknown) == labels(unknown)
        assert set(first.error.not_applied) | labels(applied) | labels(unknown) == \
            labels(next(r for r in events if r["event"] == "apply.start")["changes"])
        assert events[-1]["event"] == "apply.end" and events[-1]["status"] == "failed"
    elif first.error is not None and not any(r["event"] == "apply.start" for r in events):
        assert observed == [], "a run that failed before apply wrote something"
    elif events:
        assert events[-1]["event"] == "apply.end"

    # at most one more run reaches the baseline, without a change outside the plan or twice
    if not first.converged:
        sandbox.clear_faults()
        second = st.run_apply(st.open_demo(spec, sandbox), Journal(tmp_path / "second.jsonl"))
        assert second.error is None and second.converged, second.error
    assert st.same_changes(st.diff_keys(baseline, st.snapshot(sandbox.org)), planned)


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize(("kind", "after"), KINDS,
                         ids=[f"{k}{'-after' if a else ''}" for k, a in KINDS])
def test_one_fault_at_each_request_ends_at_baseline_with_a_truthful_journal(
        kind: str, after: bool, position: int, tmp_path: Path) -> None:
    check_case(kind, after, position, persistent=False, tmp_path=tmp_path)


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize(("kind", "after"), PERSISTENT_KINDS,
                         ids=[f"{k}{'-after' if a else ''}" for k, a in PERSISTENT_KINDS])
def test_a_fault_that_outlasts_the_retries_gives_up_truthfully_and_the_next_run_converges(
        kind: str, after: bool, position: int, tmp_path: Path) -> None:
    check_case(kind, after, position, persistent=True, tmp_path=tmp_path)


def test_the_matrix_covers_every_request_of_a_clean_apply() -> None:
    requests, planned = clean_apply()
    assert requests >= 10 and len(planned) == len(registry.automatic_changes("demo"))
