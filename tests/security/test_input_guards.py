"""Inputs remediate does not control: built-in org names, input files, the configuration,
text bound for a terminal, the org lock, bugs at the vendor boundary, and the journal's lines
(issue 12, points 1, 5-10)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from cliharness import run

from remediate import engine
from remediate.enforce import org_lock
from remediate.journal import Journal
from remediate.salesforce import soql
from remediate.salesforce.errors import map_exception
from remediate.untrusted import for_terminal

# ---- 1. built-in org names ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["sandbox:../../victim", "sandbox:/tmp/victim",
                                  "sandbox:demo.yaml", "sandbox:"])
def test_a_builtin_org_name_that_is_not_a_shipped_scenario_is_refused_and_touches_no_file(
        name: str, tmp_path: Path) -> None:
    victim = tmp_path / "victim.json"
    victim.write_text("{}", encoding="utf-8")
    for args in (("sandbox", "reset", "--org", name.replace("/tmp", str(tmp_path))),
                 ("audit", "--org", name.replace("/tmp", str(tmp_path)))):
        result = run(*args)
        assert result.code == 64, result.err
        assert "not a shipped scenario" in result.err
        assert "reset" not in result.err.split("not a shipped scenario")[1].split(";")[0]
    assert victim.exists()


# ---- 6. input files ----------------------------------------------------------------------


def test_apply_of_dev_zero_is_refused_at_once_naming_the_file() -> None:
    result = run("apply", "/dev/zero", "--org", "demo", "--yes")
    assert result.code == 64, result.err
    assert "/dev/zero" in result.err and "device" in result.err


def test_a_fifo_as_a_plan_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "plan.fifo"
    os.mkfifo(fifo)
    result = run("apply", str(fifo), "--org", "demo", "--yes")
    assert result.code == 64, result.err
    assert str(fifo) in result.err and "FIFO" in result.err


def test_a_utf16_or_binary_playbook_is_refused_naming_the_file(tmp_path: Path) -> None:
    utf16 = tmp_path / "utf16.yaml"
    utf16.write_text("apiVersion: remediate/v1\nname: x\nsteps: []\n", encoding="utf-16")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00garbage")
    for path in (utf16, binary):
        result = run("playbook", "validate", str(path))
        assert result.code == 64, result.err
        assert str(path) in result.err and "UTF-8" in result.err
        assert "internal error" not in result.err and "Traceback" not in result.err


def test_an_oversized_config_is_refused_naming_the_file(tmp_path: Path) -> None:
    config = tmp_path / "remediate.toml"
    config.write_text("# padding\n" * 200_000, encoding="utf-8")
    result = run("--config", str(config), "history")
    assert result.code == 64, result.err
    assert str(config) in result.err and "bytes" in result.err


# ---- 7. the configuration ----------------------------------------------------------------


@pytest.mark.parametrize(("line", "expected"), [
    ('login_url = "http://acme.my.salesforce.com"', "plain http"),
    ('login_url = "file:///etc/passwd"', "scheme 'file'"),
    ('login_url = "https://acme.my.salesforce.com"\nca_bundle = "/nonexistent/ca.pem"',
     "ca_bundle"),
])
def test_a_config_with_a_bad_url_or_an_unreadable_ca_bundle_is_refused_at_load(
        tmp_path: Path, line: str, expected: str) -> None:
    config = tmp_path / "remediate.toml"
    config.write_text(f'[orgs.x]\nauth = "access_token"\n{line}\n', encoding="utf-8")
    config.chmod(0o600)
    result = run("--config", str(config), "history")  # history opens no org: load refuses
    assert result.code == 64, result.err
    assert expected in result.err and "orgs.x" in result.err


def test_plain_http_is_allowed_for_a_loopback_host(tmp_path: Path) -> None:
    config = tmp_path / "remediate.toml"
    config.write_text('[orgs.x]\nauth = "access_token"\nlogin_url = "http://127.0.0.1:9"\n',
                      encoding="utf-8")
    config.chmod(0o600)
    assert run("--config", str(config), "history").code == 0


# ---- 8. text for a terminal --------------------------------------------------------------


def test_control_characters_and_escape_sequences_never_reach_the_terminal() -> None:
    hostile = "ok\x1b[2J\x1b]0;pwned\x07 done\x9b31m\x00\r\n\tnext"
    assert for_terminal(hostile) == "ok done\n\tnext"


def test_org_text_with_escape_sequences_is_printed_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    result = run("diagnose", "--org", "demo", "--error", "invalid_grant\x1b[31m: \x1b]0;x\x07boom")
    assert "\x1b" not in result.out and "\x07" not in result.out


# ---- 5. the org lock ---------------------------------------------------------------------


def test_apply_and_rollback_refuse_with_exit_75_while_another_run_holds_the_org() -> None:
    with org_lock("demo") as held:
        assert held
        result = run("apply", "--org", "demo", "--yes")
        assert result.code == 75, result.err
        assert "locked" in result.err
    assert run("apply", "--org", "demo", "--yes").code == 0  # the lock was released


# ---- 9. the vendor boundary --------------------------------------------------------------


def test_a_bug_in_remediate_is_not_mapped_to_an_org_answer() -> None:
    empty: dict[str, int] = {}
    try:
        empty["missing"]
    except KeyError as exc:
        with pytest.raises(KeyError):
            map_exception(exc, what="org: reading")


def test_a_keyerror_raised_inside_the_vendor_library_is_the_orgs_answer() -> None:
    import simple_salesforce.util as vendor

    namespace: dict[str, Any] = {"__name__": vendor.__name__}
    exec("def parse(d):\n    return d['access_token']\n", namespace)
    try:
        namespace["parse"]({})
    except KeyError as exc:
        err = map_exception(exc, what="org: signing in")
        assert err.code == "BAD_ANSWER"


def test_an_internal_error_shows_its_traceback_under_vv_and_in_the_json_log(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(handle: Any, **kwargs: Any) -> Any:
        raise TypeError("a bug in remediate")

    monkeypatch.setattr(engine, "assess", broken)
    plain = run("audit", "--org", "demo")
    assert plain.code == 1 and "internal error (TypeError" in plain.err
    assert "Traceback" not in plain.err
    verbose = run("-vv", "--log-format", "console", "audit", "--org", "demo")
    assert "Traceback" in verbose.err and "a bug in remediate" in verbose.err
    logged = run("--log-format", "json", "audit", "--org", "demo")
    line = next(json.loads(x) for x in logged.err.splitlines() if '"internal_error"' in x)
    assert "Traceback" in line["traceback"] and line["error"] == "TypeError"


# ---- 4 and 10. the journal and rollback --------------------------------------------------


def test_appending_after_a_torn_line_never_glues_the_new_record_onto_it(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append("apply.start", run_id="r1", org="demo")
    with journal.path.open("ab") as fh:
        fh.write(b'{"event": "batch", "run_id": "r1", "res')  # a crash mid-line
    journal.append("apply.start", run_id="r2", org="demo", approval={"by": "ana", "how": "flag"})
    starts = [r for r in journal.records() if r.event == "apply.start"]
    assert [r.run_id for r in starts] == ["r1", "r2"]
    assert starts[1].model_dump()["approval"]["by"] == "ana"


def test_history_shows_a_run_with_unanswered_batches_as_unknown_with_counts_from_batches(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "journal.jsonl"
    monkeypatch.setenv("REMEDIATE_JOURNAL", str(path))
    journal = Journal(path)
    change = {"target": "t", "field": "f"}
    journal.append("apply.start", run_id="r1", org="demo", approval={"by": "a", "how": "flag"},
                   changes=[change] * 3)
    journal.append("batch.intent", run_id="r1", batch=0, changes=[change])
    journal.append("batch", run_id="r1", batch=0, result="applied", changes=[change])
    journal.append("batch.intent", run_id="r1", batch=1, changes=[change, change])
    listed = run("history", "--format", "json").json()
    assert [(r["status"], r["changes"], r["unknown"]) for r in listed] == [
        ("unknown outcome", 1, 2)]
    assert "unknown outcome" in run("history").out


def test_soql_values_are_quoted_by_the_one_helper() -> None:
    assert soql.quote("O'Brien\\x\n") == "'O\\'Brien\\\\x\\n'"
    assert soql.in_list(["a", "b'c"]) == "'a', 'b\\'c'"


def test_rolling_back_a_rollback_re_inserts_the_rows_it_deleted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDIATE_JOURNAL", str(tmp_path / "journal.jsonl"))
    assert run("sandbox", "reset", "--org", "demo").code == 0
    assert run("apply", "--org", "demo", "--yes").code in (0, 2)
    runs = run("history", "--format", "json").json()
    applied = runs[-1]["run_id"]
    assert run("rollback", applied, "--yes").code in (0, 2)
    undo = run("history", "--format", "json").json()[-1]
    assert undo["kind"] == "rollback"
    again = run("rollback", undo["run_id"], "--yes")
    assert again.code in (0, 2), again.err
    assert "permission set" in again.out  # the deleted assignments are inserted again
    assert run("plan", "--org", "demo").out == run("plan", "--org", "demo").out
    replan = run("audit", "--org", "demo", "--format", "json").json()
    after_apply = [s for s in replan.get("steps", []) if s.get("status") == "drift"]
    assert after_apply == [] or all(not s.get("automatic", True) for s in after_apply)
