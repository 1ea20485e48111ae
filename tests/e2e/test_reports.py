"""Reports: audit/plan as self-contained HTML (checked in a real headless Chromium), audit as
SARIF 2.1.0 (validated against the OASIS schema) and as JUnit XML (read with junitparser)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
from cliharness import run
from junitparser import Failure, JUnitXml

SARIF_SCHEMA = Path(__file__).parents[1] / "data" / "sarif" / "sarif-schema-2.1.0.json"


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("REMEDIATE_REQUIRE_BROWSER"):
            pytest.fail("chromium is required (.ci/run installs it) but is not on PATH")
        pytest.skip("no chromium on this machine (.ci/run installs it)")
    return found


def _browser(html: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile}", *extra, html.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)


def test_audit_html_report_opens_in_a_headless_browser_and_shows_the_drift(
        tmp_path: Path) -> None:
    report = tmp_path / "audit.html"
    result = run("audit", "--org", "demo", "--format", "html", "--out", str(report))
    assert result.code == 2, result.err
    html = report.read_text()
    # self-contained: nothing is fetched from anywhere
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<script" not in html and "@import" not in html

    shot = tmp_path / "audit.png"
    taken = _browser(report, tmp_path, f"--screenshot={shot}", "--window-size=1280,2000")
    assert shot.exists() and shot.stat().st_size > 10_000, taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    dom = _browser(report, tmp_path, "--dump-dom").stdout
    summary = run("audit", "--org", "demo", "--json").json()["summary"]
    assert summary["drift"] > 0 and summary["ok"] > 0
    assert f'<div class="s-drift" id="count-drift"><b>{summary["drift"]}</b>drift</div>' in dom
    assert f'<div class="s-ok" id="count-ok"><b>{summary["ok"]}</b>ok</div>' in dom
    assert 'data-step="copilot-for-sales/client-credentials-on"' in dom
    assert "oauthConfig.isClientCredentialEnabled" in dom
    assert re.search(r'class="finding status-drift" data-step="workato/ip-ranges"', dom)
    assert "Playbook workato" in dom and "Playbook copilot-for-sales" in dom
    assert "C1" in dom  # the cause, with its description
    if os.environ.get("REMEDIATE_REPORT_ARTIFACTS"):
        shutil.copy(shot, Path(os.environ["REMEDIATE_REPORT_ARTIFACTS"]) / "audit.png")


def test_plan_html_report_lists_every_change_with_before_and_after(tmp_path: Path) -> None:
    report = tmp_path / "plan.html"
    assert run("plan", "--org", "demo", "--format", "html", "--report", str(report)).code == 0
    dom = _browser(report, tmp_path, "--dump-dom").stdout
    assert dom.count('class="change status-drift"') == 6
    assert "remediate will make 6 change(s)" in dom
    assert "https://usa238.salesforce.com" in dom and "https://acme.my.salesforce.com" in dom


def test_audit_sarif_validates_against_the_sarif_2_1_0_schema() -> None:
    result = run("audit", "--org", "demo", "--format", "sarif")
    assert result.code == 2
    log = json.loads(result.out)
    schema = json.loads(SARIF_SCHEMA.read_text())
    jsonschema.Draft4Validator(schema).validate(log)
    results = log["runs"][0]["results"]
    assert len(results) == 6
    assert {r["level"] for r in results} == {"error"}
    first = next(r for r in results if r["properties"]["step"] == "client-credentials-on")
    kinds = [rule["id"] for rule in log["runs"][0]["tool"]["driver"]["rules"]]
    assert kinds[first["ruleIndex"]] == first["ruleId"]
    assert "C1" in first["message"]["text"]


def test_sarif_with_a_wrong_shape_fails_the_schema() -> None:
    schema = json.loads(SARIF_SCHEMA.read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(schema).validate({"version": "2.1.0", "runs": [{}]})


def test_audit_junit_parses_with_a_junit_reader_with_drift_as_failures(tmp_path: Path) -> None:
    out = tmp_path / "audit.xml"
    assert run("audit", "--org", "demo", "--format", "junit", "--out", str(out)).code == 2
    xml = JUnitXml.fromfile(str(out))
    cases = [(suite.name, case) for suite in xml for case in suite]
    findings = run("audit", "--org", "demo", "--json").json()["findings"]
    assert len(cases) == len(findings)
    failed = [case.name for _, case in cases
              if any(isinstance(r, Failure) for r in case.result)]
    assert sorted(failed) == sorted(f["step"] for f in findings if f["status"] == "drift")
    assert "client-credentials-on" in failed
    assert {name for name, _ in cases} == {"demo/copilot-for-sales", "demo/workato"}
