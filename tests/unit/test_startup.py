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


@pytest.mark.parametrize("module", ["simple_salesforce", "zeep", "remediate.sandbox.app"])
def test_probe_would_see_a_heavy_import(module: str) -> None:
    """The check above can fail: importing a heavy module shows up in sys.modules."""
    assert module in _heavy(_imported_after(f"import remediate.cli\nimport {module}"))
