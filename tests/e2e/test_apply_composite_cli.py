"""apply + verify through the CLI when the licence and the permission set assignments go in one
composite (ADR 0044), on both readings of the undocumented fact the sandbox switches
(``Org.licence_in_composite``): the org accepts the assignments beside the licence, or refuses
them (everything rolled back) and remediate sends them apart, says so in the journal and
remembers the org. Round trips are counted as tests/e2e/test_round_trips.py counts them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from cliharness import run

from remediate import orgs
from remediate.builtin import sandbox_state_path
from remediate.sandbox import persist
from remediate.settings import state_dir


@pytest.fixture
def rounds(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The round trips of each handle the CLI opened, recorded when the command closes it."""
    out: list[int] = []
    close = orgs.OrgHandle.close

    def recording_close(self: orgs.OrgHandle) -> None:
        out.append(self.gateway.rounds)
        close(self)

    monkeypatch.setattr(orgs.OrgHandle, "close", recording_close)
    yield out


def _reading(licence_in_composite: bool) -> None:
    """Build the built-in demo org and set the sandbox's reading of the fact."""
    assert run("audit", "--org", "demo").code == 2
    path = sandbox_state_path("demo")
    org, extra = persist.load(path)
    org.licence_in_composite = licence_in_composite
    persist.save(path, org, extra)


def _journal() -> list[dict[str, object]]:
    return [json.loads(x) for x in (state_dir() / "journal.jsonl").read_text().splitlines()]


def _batches(records: list[dict[str, object]]) -> list[dict[str, object]]:
    return [r for r in records if r["event"] == "batch"]


def test_apply_is_one_round_trip_shorter_when_the_org_takes_the_pair(
        rounds: list[int]) -> None:
    _reading(True)
    rounds.clear()
    result = run("apply", "--org", "demo", "--yes")
    assert result.code == 0, result.err
    # token, read wave, /limits, the composite beside the 3 upserts, the re-read
    assert rounds == [5]
    records = _journal()
    assert not [r for r in records if r["event"] == "batch.combined"]
    assert {r["result"] for r in _batches(records)} == {"applied"}
    assert run("verify", "--org", "demo").code == 0


def test_an_org_that_refuses_the_pair_is_sent_it_apart_and_remembered(
        rounds: list[int]) -> None:
    _reading(False)
    rounds.clear()
    result = run("apply", "--org", "demo", "--yes")
    assert result.code == 0, result.err
    assert rounds == [7]  # the rolled-back composite, then the licence, then the assignments
    records = _journal()
    [combined] = [r for r in records if r["event"] == "batch.combined"]
    assert combined["result"] == "rolled_back"
    assert "FIELD_INTEGRITY_EXCEPTION" in str(combined["error"])
    assert "sent apart" in str(combined["then"])
    assert {r["result"] for r in _batches(records)} == {"applied"}
    # nothing is claimed written before the composite's answer: intents, then outcomes
    assert [r["event"] for r in records].index("batch.combined") < \
        [r["event"] for r in records].index("batch")

    # the next apply to that org goes straight to two requests: undo, then apply again
    path = sandbox_state_path("demo")
    org, extra = persist.load(path)
    for name in ("PermissionSetAssignment", "PermissionSetLicenseAssign"):
        for row in list(org.tables[name].values()):
            user = org.get("User", str(row["AssigneeId"]))
            if user is not None and str(user["Username"]).startswith("copilot.integration"):
                del org.tables[name][row["Id"]]
    persist.save(path, org, extra)
    rounds.clear()
    assert run("apply", "--org", "demo", "--yes").code == 0
    assert rounds == [6]  # straight to the licence, then the assignments
    assert run("verify", "--org", "demo").code == 0
    assert len([r for r in _journal() if r["event"] == "batch.combined"]) == 1


def test_the_combined_request_can_be_turned_off(rounds: list[int],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _reading(True)
    monkeypatch.setenv("REMEDIATE_APPLY_COMBINE_LICENCE", "0")
    rounds.clear()
    assert run("apply", "--org", "demo", "--yes").code == 0
    assert rounds == [6]  # the licence, then the assignments, as before ADR 0044
