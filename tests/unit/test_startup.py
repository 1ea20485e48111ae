"""Start-up cost: importing the CLI (and printing its help) pays for nothing a command does not
need yet. Heavy modules are imported inside the commands that use them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: Modules that cost tens to hundreds of milliseconds and belong to commands, not to start-up.
HEAVY = (
    "simple_salesforce",  # ~200 ms with requests, jwt, cryptography
    "zeep",  # SOAP client; the Metadata WSDL parse is another ~500 ms
    "remediate.salesforce.mdclient",  # the WSDL cache
    "remediate.salesforce.gateway",
    "remediate.sandbox.app",  # the emulator's request pipeline
    "remediate.sandbox.rest",
    "remediate.sandbox.soql",
    "remediate.engine",
    "requests",
    "cryptography",
    "jwt",
    "rich",  # typer's rich help; plain help is enough
    "pydantic_settings",
    "yaml",
)


def _imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=60)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_importing_the_cli_imports_no_heavy_module() -> None:
    assert _heavy(_imported_after("import remediate.cli")) == []


def test_help_imports_no_heavy_module() -> None:
    code = ("import sys\nsys.argv = ['remediate', '--help']\nfrom remediate.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass")
    assert _heavy(_imported_after(code)) == []


#: What subcommand help must not load either: logging (structlog, which imports rich), the
#: settings and rendering machinery, and pydantic (typer imports it to coerce option values).
HELP_HEAVY = ("structlog", "remediate.logging", "remediate.settings", "remediate.render",
              "remediate.sandbox.server", "pydantic")


@pytest.mark.parametrize("argv", [["audit", "--help"], ["apply", "-h"],
                                  ["sandbox", "serve", "--help"], ["enforce", "--help"]])
def test_subcommand_help_imports_no_logging_settings_or_rendering(argv: list[str]) -> None:
    code = (f"import sys\nsys.argv = ['remediate', *{argv!r}]\nfrom remediate.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass")
    loaded = _imported_after(code)
    assert _heavy(loaded) == []
    assert sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in HELP_HEAVY)) \
        == []


def test_subcommand_help_prints_usage_and_exits_zero() -> None:
    done = subprocess.run([sys.executable, "-m", "remediate", "audit", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "remediate audit [OPTIONS]" in done.stdout.splitlines()[0]


def test_help_as_an_option_value_is_not_taken_for_help() -> None:
    """``--org --help`` gives --org the value '--help': the fast help path must not swallow it."""
    done = subprocess.run([sys.executable, "-m", "remediate", "audit", "--org", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 64
    assert "unknown org '--help'" in done.stderr


def test_exit_keeps_the_code_flushes_output_and_freezes_the_heap() -> None:
    """main() ends with gc.freeze() (no final collection over the run's objects) and keeps the
    command's exit code and its output."""
    code = ("import gc, sys\nsys.argv = ['remediate', 'sandbox', 'scenarios']\n"
            "from remediate.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n"
            "    print('code', e.code, 'frozen', gc.get_freeze_count() > 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert "demo" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "code 0 frozen True"


@pytest.mark.parametrize("module", ["simple_salesforce", "zeep", "remediate.sandbox.app"])
def test_probe_would_see_a_heavy_import(module: str) -> None:
    """The check above can fail: importing a heavy module shows up in sys.modules."""
    assert module in _heavy(_imported_after(f"import remediate.cli\nimport {module}"))


def test_logging_loads_structlog_without_rich() -> None:
    """structlog would import rich (tens of ms) for tracebacks remediate never prints."""
    loaded = _imported_after("import remediate.logging as l\nl.configure('json', 'warning')\n"
                             "l.get_logger().warning('a_line')")
    assert "structlog" in loaded
    assert "rich" not in loaded


def test_a_line_below_the_level_does_not_load_structlog() -> None:
    """An audit logs nothing at warning: structlog (20-40 ms of CPU to import) stays unloaded."""
    code = ("import remediate.logging as l\nl.configure('json', 'warning')\n"
            "log = l.get_logger(org='x')\nlog.info('quiet', token='s')\nlog.debug('quieter')")
    loaded = _imported_after(code)
    assert "remediate.logging" in loaded
    assert "structlog" not in loaded


def test_a_line_at_the_level_is_logged_redacted_once_structlog_loads() -> None:
    code = ("import remediate.logging as l\nl.configure('json', 'info')\n"
            "log = l.get_logger(org='x')\nlog.debug('not_shown')\n"
            "log.info('shown', token='s3cr3t', note='Bearer abc.def')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    (line,) = done.stderr.strip().splitlines()
    event = json.loads(line)
    assert (event["event"], event["org"], event["level"]) == ("shown", "x", "info")
    assert event["token"] == "[redacted]"
    assert "abc.def" not in line
