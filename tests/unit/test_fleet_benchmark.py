"""The fleet benchmark measures the steady state of a scheduled fleet (ADR 0046): its first run
against new orgs asks each org for the version list, its measured second run does not, and
both runs' figures are printed."""

from __future__ import annotations

import os

import pytest

from benchmarks import run as bench


def test_fleet_benchmark_measures_the_second_run_with_versions_kept_and_prints_the_first(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("XDG_CACHE_HOME", "XDG_STATE_HOME"):  # fleet_child points them at new dirs
        monkeypatch.setenv(name, os.environ.get(name, ""))
    monkeypatch.setattr(bench, "FIGURES", {})
    bench.fleet_child(orgs=3, workers=1, latency_ms=0, processes=1)
    out = capsys.readouterr().out
    figures = bench.FIGURES
    assert figures["fleet.cold.requests"] == 3 * 9  # token, version list, the read wave of 7
    assert figures["fleet.requests"] == 3 * 8  # the version kept from the first run
    assert figures["fleet.cold.orgs_audited"] == figures["fleet.orgs_audited"] == 3
    assert figures["fleet.cold.orgs_journalled"] == figures["fleet.orgs_journalled"] == 3
    assert "fleet.run: second run" in out
    assert out.index("fleet.cold.wall") < out.index("fleet.run:") < out.index("fleet.wall")
