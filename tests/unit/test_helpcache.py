"""The help cache (remediate.helpcache, ADR 0038): ``remediate audit --help`` answered without
importing typer once typer has rendered it, byte for byte what typer prints, and typer again
whenever anything the rendering depends on changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from remediate import helpcache


def _env(cache: Path, columns: int = 80, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMEDIATE_")}
    env.update(XDG_CACHE_HOME=str(cache), COLUMNS=str(columns), **extra)
    return env


def _remediate(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "remediate", *argv], capture_output=True,
                          text=True, env=env, timeout=60)


def _typer_renders(argv: list[str], env: dict[str, str]) -> str:
    """What typer itself prints for ``argv``, with no cache in the way."""
    code = ("import sys\nfrom remediate.cli import app\n"
            f"try:\n    app({argv!r}, prog_name='remediate')\nexcept SystemExit:\n    pass")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60, check=True).stdout


def _modules_after_main(argv: list[str], env: dict[str, str]) -> set[str]:
    code = (f"import sys\nsys.argv = ['remediate', *{argv!r}]\n"
            "from remediate.helpcache import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "import json\nprint(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60, check=True)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_warm_subcommand_help_imports_no_typer(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert "typer" in _modules_after_main(["audit", "--help"], env)  # cold: typer renders
    warm = _modules_after_main(["audit", "--help"], env)
    assert not {m for m in warm if m.split(".")[0] in ("typer", "click", "pydantic")}
    assert "remediate.cli" not in warm


@pytest.mark.parametrize("argv", [["audit", "--help"], ["sandbox", "serve", "-h"], ["--help"],
                                  ["enforce", "--help"]])
@pytest.mark.parametrize("columns", [60, 120])
def test_cached_help_is_byte_for_byte_what_typer_prints(tmp_path: Path, argv: list[str],
                                                        columns: int) -> None:
    env = _env(tmp_path, columns)
    expected = _typer_renders(argv, env)
    cold, warm = _remediate(argv, env), _remediate(argv, env)
    assert (cold.returncode, warm.returncode) == (0, 0)
    assert cold.stdout == expected
    assert warm.stdout == expected
    assert len(list((tmp_path / "remediate" / "help").iterdir())) == 1


def test_another_width_is_another_entry(tmp_path: Path) -> None:
    narrow = _remediate(["audit", "--help"], _env(tmp_path, 50)).stdout
    wide = _remediate(["audit", "--help"], _env(tmp_path, 150)).stdout
    assert narrow != wide
    assert _remediate(["audit", "--help"], _env(tmp_path, 50)).stdout == narrow
    assert len(list((tmp_path / "remediate" / "help").iterdir())) == 2


def test_words_that_name_no_command_are_not_cached(tmp_path: Path) -> None:
    done = _remediate(["apply", "plan", "--help"], _env(tmp_path))  # 'plan' is apply's file
    assert done.returncode == 0
    assert not (tmp_path / "remediate" / "help").exists()


@pytest.mark.parametrize("argv", [["audit", "--org", "--help"], ["audit", "--help", "x"],
                                  ["audit", "-v", "--help"], ["plan.json", "--help"], [],
                                  ["audit"], ["--json", "--help"]])
def test_only_bare_help_requests_are_answered(argv: list[str]) -> None:
    assert helpcache.help_request(argv) is None


def test_bare_help_requests_are_their_command_words() -> None:
    assert helpcache.help_request(["sandbox", "serve", "-h"]) == ("sandbox", "serve")
    assert helpcache.help_request(["--help"]) == ()


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A source file of remediate loaded in this process, so it is part of the fingerprint."""
    path = tmp_path / "fake_cli.py"
    path.write_text("# a command\n")
    module = types.ModuleType("remediate._fake_cli_for_test")
    module.__file__ = str(path)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return path


def test_an_edited_source_file_invalidates_the_entry(tmp_path: Path, source: Path) -> None:
    assert helpcache.store(["audit", "--help"], "Usage: x\n", str(tmp_path / "c"))
    assert helpcache.lookup(["audit", "--help"], str(tmp_path / "c")) == "Usage: x\n"
    source.write_text("# a command, edited\n")
    assert helpcache.lookup(["audit", "--help"], str(tmp_path / "c")) is None


def test_another_request_or_environment_does_not_see_the_entry(
        tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = str(tmp_path / "c")
    assert helpcache.store(["audit", "--help"], "Usage: x\n", cache)
    assert helpcache.lookup(["audit", "-h"], cache) is None
    assert helpcache.lookup(["plan", "--help"], cache) is None
    monkeypatch.setenv("NO_COLOR", "1")
    assert helpcache.lookup(["audit", "--help"], cache) is None
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("_REMEDIATE_COMPLETE", "bash_complete")
    assert helpcache.lookup(["audit", "--help"], cache) is None


def test_a_secret_in_the_environment_never_reaches_the_cache_file(
        tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key covers every REMEDIATE_* variable (a client secret or token may be one); the
    entry keeps only its digest, and another value of the variable is another key."""
    secret = "3MVG9-not-a-real-client-secret-0123456789"
    monkeypatch.setenv("REMEDIATE_ORGS__PROD__CLIENT_SECRET", secret)
    cache = tmp_path / "c"
    assert helpcache.store(["audit", "--help"], "Usage: x\n", str(cache))
    written = b"".join(p.read_bytes() for p in cache.iterdir())
    assert secret.encode() not in written and b"CLIENT_SECRET" not in written
    assert helpcache.lookup(["audit", "--help"], str(cache)) == "Usage: x\n"
    monkeypatch.setenv("REMEDIATE_ORGS__PROD__CLIENT_SECRET", secret + "x")
    assert helpcache.lookup(["audit", "--help"], str(cache)) is None


def test_coloured_output_is_not_kept(tmp_path: Path, source: Path) -> None:
    assert not helpcache.store(["audit", "--help"], "\x1b[1mUsage\x1b[0m\n", str(tmp_path))
    assert helpcache.lookup(["audit", "--help"], str(tmp_path)) is None


def test_a_damaged_entry_falls_back(tmp_path: Path, source: Path) -> None:
    cache = tmp_path / "c"
    assert helpcache.store(["audit", "--help"], "Usage: x\n", str(cache))
    (entry,) = cache.iterdir()
    text = entry.read_text()
    entry.write_text(text.replace(f" {source}\n", "\n", 1))
    assert helpcache.lookup(["audit", "--help"], str(cache)) is None
    entry.write_text(text.replace("\n\n", "\n", 1))
    assert helpcache.lookup(["audit", "--help"], str(cache)) is None
    entry.write_bytes(b"\xff\xfe garbage")
    assert helpcache.lookup(["audit", "--help"], str(cache)) is None
    entry.write_text(text)
    assert helpcache.lookup(["audit", "--help"], str(cache)) == "Usage: x\n"


def test_the_cache_is_under_remediates_cache_directory(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    from remediate.settings import cache_dir

    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert Path(helpcache.cache_dir()) == cache_dir() / "help"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert Path(helpcache.cache_dir()) == cache_dir() / "help" == tmp_path / "remediate" / "help"
