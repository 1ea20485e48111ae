"""Hand-written input gone wrong: hypothesis-generated playbooks and configuration files.

Each generated file starts from a valid one (the template playbook; a working remediate.toml)
and is broken at random: a value replaced by one of another type, a key removed, an unknown key
added, or the text cut or garbled. Whatever the damage, the CLI ends with exit 0 (the damage was
harmless) or exit 64 and exactly one ``error:`` line that names the file (and, for a field, the
field), never a traceback or an internal error, and never a write to the org.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from cliharness import run, writes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = yaml.safe_load((REPO / "playbooks" / "template.yaml").read_text(encoding="utf-8"))
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])

scalars = (hs.none() | hs.booleans() | hs.integers(-10, 10**6) | hs.floats(allow_nan=False)
           | hs.text(max_size=20))
values = hs.recursive(scalars, lambda inner: hs.lists(inner, max_size=3)
                      | hs.dictionaries(hs.text(max_size=8), inner, max_size=3), max_leaves=6)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


@hs.composite
def damaged(draw: hs.DrawFn, document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with one to three random changes."""
    doc = copy.deepcopy(document)
    for _ in range(draw(hs.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(hs.sampled_from(paths))
        parent: Any = doc
        for part in path[:-1]:
            parent = parent[part]
        action = draw(hs.sampled_from(["replace", "remove", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(hs.text(min_size=1, max_size=12))] = draw(values)
    return doc


def check_usage_error(result: Any, path: Path) -> None:
    assert "Traceback" not in result.err and "internal error" not in result.err, result.err
    if result.code == 0:
        return
    assert result.code == 64, result.err
    errors = [line for line in result.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.err
    assert str(path) in errors[0] or path.name in errors[0], errors[0]


@SETTINGS
@given(damaged(TEMPLATE))
def test_a_damaged_playbook_is_valid_or_refused_in_one_line_naming_the_file(
        doc: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "broken.yaml"
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        check_usage_error(run("playbook", "validate", str(path)), path)


@SETTINGS
@given(hs.text(max_size=300) | hs.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_any_text_as_a_playbook_is_refused_in_one_line_naming_the_file(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "garbage.yaml"
        path.write_text(text, encoding="utf-8")
        result = run("playbook", "validate", str(path))
        assert result.code == 64 or result.code == 0
        check_usage_error(result, path)


# ---- configuration files -------------------------------------------------------------------

#: A working configuration of an org nothing answers for (a closed port on this machine): it gets
#: past every configuration check and fails connecting, with exit 1, never 64.
NOWHERE = "https://127.0.0.1:19149"
CONFIG: dict[str, Any] = {
    "journal": "journal.jsonl",
    "orgs": {"prod": {
        "login_url": NOWHERE, "auth": "access_token",
        "access_token_env": "REMEDIATE_TEST_TOKEN", "instance_url": NOWHERE,
        "timeout_s": 30.0, "production": True,
        "playbooks": {"copilot-for-sales": {"integration_user": "copilot@acme.com"}},
    }},
}


def _toml(value: Any) -> str:
    """A small TOML writer for generated values (None has no TOML form: left out)."""
    def scalar(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            # JSON's string escapes are TOML's, DEL aside
            return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
        if isinstance(v, list):
            return "[" + ", ".join(scalar(x) for x in v if x is not None) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{scalar(str(k))} = {scalar(x)}" for k, x in v.items()
                                   if x is not None) + "}"
        raise TypeError(v)
    lines = [f"{scalar(str(k))} = {scalar(v)}" for k, v in value.items()
             if v is not None and not isinstance(v, dict)]
    for k, v in value.items():
        if isinstance(v, dict):
            lines.append(f"{scalar(str(k))} = {scalar(v)}")
    return "\n".join(lines) + "\n"


def _apply_with_config(text: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    from remediate.salesforce import retry

    monkeypatch.setenv("REMEDIATE_TEST_TOKEN", "00D000000000001!not-a-real-token")
    monkeypatch.setattr(retry, "DEFAULT_POLICY", retry.RetryPolicy.no_wait())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "remediate.toml"
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600)
        return run("--config", str(path), "apply", "--org", "prod", "--yes")


def test_the_undamaged_config_gets_past_every_configuration_check(
        monkeypatch: pytest.MonkeyPatch) -> None:
    result = _apply_with_config(_toml(CONFIG), monkeypatch)
    assert result.code == 1, result.err  # it reached for the org, which is not there
    assert "Traceback" not in result.err and "internal error" not in result.err, result.err


@SETTINGS
@given(doc=damaged(CONFIG) | hs.text(max_size=200).map(lambda t: {"_raw": t}))
def test_a_damaged_config_is_refused_in_one_line_and_nothing_is_written(
        doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from remediate.errors import ConfigError
    from remediate.settings import load_settings

    text = doc["_raw"] if set(doc) == {"_raw"} else _toml(doc)
    before = writes("demo")
    result = _apply_with_config(text, monkeypatch)
    assert result.code != 0
    assert "Traceback" not in result.err and "internal error" not in result.err, result.err
    assert len([line for line in result.err.splitlines() if line.startswith("error: ")]) == 1
    assert writes("demo") == before
    if result.code == 64:
        return
    # the damage was harmless: the file is a valid configuration and apply went for the org
    assert result.code == 1, result.err
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "remediate.toml"
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600)
        try:
            load_settings(path)
        except ConfigError as exc:
            pytest.fail(f"exit 1 for a configuration that does not load: {exc.message}")
