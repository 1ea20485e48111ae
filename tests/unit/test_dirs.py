"""Where remediate keeps state and cache (settings.state_dir / cache_dir, ADR 0037):
``$XDG_STATE_HOME`` / ``$XDG_CACHE_HOME`` when set, whatever the platform, else platformdirs'."""

from __future__ import annotations

from pathlib import Path

import platformdirs
import pytest

from remediate.settings import Settings, cache_dir, state_dir


def test_xdg_variables_choose_the_state_and_cache_directories(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "s"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    assert state_dir() == tmp_path / "s" / "remediate"
    assert cache_dir() == tmp_path / "c" / "remediate"
    monkeypatch.delenv("REMEDIATE_JOURNAL", raising=False)
    assert Settings().journal_path == tmp_path / "s" / "remediate" / "journal.jsonl"


@pytest.mark.parametrize("value", [None, "", "  "])
def test_without_xdg_variables_the_platforms_directories_are_used(
        value: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("XDG_STATE_HOME", "XDG_CACHE_HOME"):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert state_dir() == platformdirs.user_state_path("remediate", appauthor=False)
    assert cache_dir() == platformdirs.user_cache_path("remediate", appauthor=False)
    assert state_dir().name == cache_dir().name == "remediate"
