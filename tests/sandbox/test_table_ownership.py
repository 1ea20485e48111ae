"""One owner per table inside the sandbox (docs/adr/0031-sandbox-table-ownership.md).

The org's tables (rows, metadata components, sessions, refresh tokens, passwords, query cursors,
Metadata API jobs, the API usage counter, the id counters) are changed only by the state layer:
``state.py`` (the storage and its primitives), ``data.py`` (rules of rows written through the
data API), ``metadata.py`` (rules of Metadata API components), ``scenario.py`` (building an org)
and ``persist.py`` (loading one). The router and the translators only read the org and call
those modules. This test reads the translators' source and fails on any write it can see;
the import-linter layers contract in pyproject.toml keeps the imports in the same order.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

import remediate.sandbox

SANDBOX = Path(remediate.sandbox.__file__).parent
ROOT = SANDBOX.parents[1]

#: The modules that own the org's tables (the state layer).
OWNERS = frozenset({"state", "data", "metadata", "scenario", "persist", "access", "objectaccess"})
#: The Org attributes that hold state.
STORES = frozenset({"tables", "metadata", "sessions", "refresh_tokens", "passwords", "cursors",
                    "metadata_jobs", "package_apps", "uninstalled_apps", "api_usage", "ids",
                    "jwt_audiences"})
#: Org methods that change rows; only the state layer calls them.
ROW_WRITES = frozenset({"insert", "update", "delete"})
#: Org methods that hand out stored rows (not copies): what they return is the org's.
ROW_READS = frozenset({"get", "find", "find_one", "user_by_username", "profile_by_name",
                       "profile_by_full_name", "profile_permission_set",
                       "permission_set_by_name", "license_by_name", "connected_application"})
#: Methods that change a dict, list or IdFactory in place.
MUTATORS = frozenset({"clear", "update", "pop", "popitem", "setdefault", "append", "extend",
                      "remove", "insert", "new", "__setitem__", "__delitem__"})


def _is_org(node: ast.expr) -> bool:
    """``org``, ``owner`` or ``<anything>.org`` (call.org, ctx.org, attempt.org)."""
    if isinstance(node, ast.Name):
        return node.id in ("org", "owner")
    return isinstance(node, ast.Attribute) and node.attr == "org"


def _touches_store(node: ast.expr) -> bool:
    """Whether the expression reaches into one of the org's stores (org.tables[...], ...)."""
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        if isinstance(node, ast.Call):
            node = node.func
            continue
        if isinstance(node, ast.Attribute) and node.attr in STORES and _is_org(node.value):
            return True
        node = node.value
    return False


def _org_owned(node: ast.expr, tainted: set[str]) -> bool:
    """Whether ``node`` is (a part of) a stored row, component or table of the org."""
    if _touches_store(node):
        return True
    base = node
    while isinstance(base, ast.Attribute | ast.Subscript):
        base = base.value
    if isinstance(base, ast.Name) and base.id in tainted:
        return True
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in ROW_READS and _is_org(node.func.value))


def _tainted_names(tree: ast.AST) -> set[str]:
    """Names bound to the org's own rows or tables: ``row = org.get(...)``, ``for row in
    org.tables[...].values()``, ``comp = org.metadata[...][...]`` (no copy in between)."""
    names: set[str] = set()
    for _ in range(3):  # a few rounds let taint flow through plain re-binding
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and _org_owned(node.value, names):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
            elif isinstance(node, ast.For | ast.comprehension) and _org_owned(node.iter, names):
                names |= {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}
    return names


def writes(source: str) -> list[str]:
    """Every write to the org's state the module's source makes, as ``line: code``."""
    tree = ast.parse(source)
    tainted = _tainted_names(tree)
    found: list[tuple[int, str]] = []

    def hit(node: ast.AST) -> None:
        found.append((getattr(node, "lineno", 0), ast.unparse(node)[:80]))

    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = list(node.targets)
        for target in targets:
            store = isinstance(target, ast.Attribute) and target.attr in STORES \
                and _is_org(target.value)
            part = isinstance(target, ast.Attribute | ast.Subscript) \
                and _org_owned(target.value, tainted)
            if store or part:
                hit(node)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner, method = node.func.value, node.func.attr
            row_write = method in ROW_WRITES and _is_org(owner)
            in_place = method in MUTATORS and _org_owned(owner, tainted)
            if row_write or in_place:
                hit(node)
    return [f"{line}: {code}" for line, code in sorted(found)]


def _translators() -> list[str]:
    return sorted(p.stem for p in SANDBOX.glob("*.py")
                  if p.stem not in OWNERS and p.stem != "__init__")


@pytest.mark.parametrize("module", _translators())
def test_no_router_or_translator_module_writes_the_org_tables(module: str) -> None:
    source = (SANDBOX / f"{module}.py").read_text(encoding="utf-8")
    assert writes(source) == [], f"remediate/sandbox/{module}.py writes the org's state; " \
                                 "move the rule into the state layer (docs/adr/0031)"


@pytest.mark.parametrize("code", [
    "org.tables['User'][uid] = row",
    "call.org.sessions.clear()",
    "del ctx.org.refresh_tokens[token]",
    "org.api_usage += 1",
    "call.org.insert('User', row)",
    "locator = call.org.ids.new('QueryLocator')",
    "row = org.get('User', uid)\nrow['IsActive'] = False",
    "for psl in org.tables['PermissionSetLicense'].values():\n    psl['UsedLicenses'] = 0",
    "comp = org.metadata['ConnectedApp']['X']\ncomp.pop('oauthConfig')",
    "for name, table in org.tables.items():\n    table.clear()",
])
def test_the_scan_sees_each_kind_of_write_to_the_org(code: str) -> None:
    assert writes(code), code


@pytest.mark.parametrize("code", [
    "rows = org.rows('User')\nrows[0]['Name'] = 'x'",  # rows() answers copies
    "body = {}\nbody['done'] = True",
    "org.expire_sessions()",
    "metadata.save(org, 'ConnectedApp', comps)",
])
def test_the_scan_leaves_reads_copies_and_state_calls_alone(code: str) -> None:
    assert writes(code) == [], code


def test_every_sandbox_module_is_in_the_layers_contract() -> None:
    """A new sandbox module has to say which layer it is in (the contract is exhaustive; this
    names the missing module instead of lint-imports' general message)."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    layers = next(c for c in contracts["tool"]["importlinter"]["contracts"]
                  if c.get("containers") == ["remediate.sandbox"])["layers"]
    listed = {name.strip() for layer in layers for name in layer.replace(":", "|").split("|")}
    modules = {p.stem for p in SANDBOX.glob("*.py") if p.stem != "__init__"}
    assert modules - listed == set()
