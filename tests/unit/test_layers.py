"""The layer contracts (ADR 0074) cover the whole product: a new module of remediate is in the
lists that keep the sandbox and the product apart, and the contracts hold (lint-imports)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import remediate

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = {c["name"]: c for c in tomllib.loads(
    (ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]}


def _product_modules() -> set[str]:
    """remediate's top-level modules and packages, the sandbox left out."""
    package = Path(remediate.__file__).parent
    names = {p.stem for p in package.glob("*.py") if p.stem not in ("__init__", "__main__")}
    names |= {p.name for p in package.iterdir() if (p / "__init__.py").exists()}
    return {f"remediate.{n}" for n in names} - {"remediate.sandbox"}


def test_the_sandbox_may_import_no_module_of_the_product() -> None:
    contract = CONTRACTS["the sandbox imports nothing of the product"]
    assert set(contract["forbidden_modules"]) == _product_modules()


def test_every_module_but_the_adapter_is_kept_from_the_sandbox() -> None:
    contract = CONTRACTS["the product reaches the sandbox only through remediate.builtin"]
    assert set(contract["source_modules"]) == _product_modules() - {"remediate.builtin"}


def test_the_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:]


def test_one_engine_function_sequences_apply_reread_and_verify() -> None:
    """apply, demo, rollback and enforce all go through engine.apply_and_verify (ADR 0074):
    nothing else in the product calls engine.apply."""
    package = Path(remediate.__file__).parent
    calls = [f"{p.relative_to(package)}:{n}" for p in sorted(package.rglob("*.py"))
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if "engine.apply(" in line or "= apply(handle" in line]
    assert len(calls) == 1 and calls[0].startswith("engine.py:"), calls
    source = (package / "engine.py").read_text(encoding="utf-8")
    body = source[source.index("def apply_and_verify("):]
    assert "= apply(handle" in body.split("\ndef ", 1)[0]
