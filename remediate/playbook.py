"""Playbooks: declarative YAML baselines, one per integration, made of idempotent steps.

::

    apiVersion: remediate/v1
    kind: Playbook
    name: copilot-for-sales
    description: ...
    variables:
      integration_user:
        description: Username of the integration (Run As) user
      app:
        default: Copilot_for_Sales
    steps:
      - id: client-credentials-on
        kind: app.client_credentials
        with: {app: "${app}", enabled: true}

Values of the form ``${name}`` are bound per org (remediate.toml gives each org's values); a
value that is exactly one reference keeps the variable's type, one embedded in a longer string
is interpolated. Every model forbids unknown keys; every error names the file, the line and the
field path.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from remediate.errors import PlaybookError
from remediate.plan import canonical_json
from remediate.steps.base import Params, StepKind, kinds

API_VERSION = "remediate/v1"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Variable(_Strict):
    description: str = ""
    default: Any = None
    required: bool = True


class StepSpec(_Strict):
    id: str = Field(description="Unique within the playbook; lower-case words joined by '-'.")
    kind: str = Field(description="A step kind; `remediate kinds` lists them.")
    cause: str | None = Field(None, description="Failure catalogue cause this step prevents.")
    description: str = ""
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("step ids are lower-case letters, digits and '-'")
        return value


class Playbook(_Strict):
    apiVersion: str = Field(description=f"Always {API_VERSION!r}.")
    kind: str = Field("Playbook", pattern="^Playbook$")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str = ""
    integration: str | None = Field(None, description="Display name of the integration.")
    variables: dict[str, Variable] = Field(default_factory=dict)
    steps: list[StepSpec]

    @field_validator("apiVersion")
    @classmethod
    def _version(cls, value: str) -> str:
        if value != API_VERSION:
            raise ValueError(f"unsupported apiVersion {value!r}; this remediate reads "
                             f"{API_VERSION!r}")
        return value


@dataclass(frozen=True)
class BoundStep:
    playbook: str
    id: str
    kind: StepKind[Any]
    cause: str | None
    params: Params
    description: str


@dataclass(frozen=True)
class LoadedPlaybook:
    path: Path
    model: Playbook
    text: str

    @property
    def name(self) -> str:
        return self.model.name


# ---- loading ------------------------------------------------------------------------------


#: Playbooks already parsed, by (path, size, modification time): a fleet run binds the same
#: playbooks for every org, and parsing YAML was most of the CPU an org cost.
_loaded: dict[tuple[str, int, int], LoadedPlaybook] = {}


#: One parse at a time: a fleet's workers all open their orgs at once, and without it each of
#: them parsed the same playbooks before the first had stored them (issue 17).
_loading = threading.Lock()


def _after_fork_in_child() -> None:
    global _loading
    _loading = threading.Lock()  # a forked child has none of the threads that could hold it


os.register_at_fork(after_in_child=_after_fork_in_child)


def load(path: Path) -> LoadedPlaybook:
    try:
        info = path.stat()
    except OSError as exc:
        raise PlaybookError(f"{path}: cannot read the playbook ({exc.strerror})") from None
    key = (str(path.resolve()), info.st_size, info.st_mtime_ns)
    loaded = _loaded.get(key)
    if loaded is not None:
        return loaded
    with _loading:
        if key not in _loaded:
            if len(_loaded) > 256:
                _loaded.clear()
            _loaded[key] = _load(path)
        return _loaded[key]


def _load(path: Path) -> LoadedPlaybook:
    from remediate.inputs import read_text

    text = read_text(path, "playbook")  # bounded, regular, UTF-8: or refused naming the file
    try:
        node, data = _parse(text)
    except yaml.YAMLError as exc:
        found = _python_error(text) or exc  # its wording names the character or alias found
        mark = getattr(found, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(found, "problem", None) or str(found)
        raise PlaybookError(f"{where}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise PlaybookError(f"{path}: a playbook is a YAML mapping with apiVersion, name, steps")
    try:
        model = Playbook.model_validate(data)
    except ValidationError as exc:
        raise _error(path, node, exc) from None
    _check(path, node, model)
    return LoadedPlaybook(path, model, text)


#: libyaml's loader when PyYAML was built with it (the wheels on PyPI are): the same safe
#: constructors and the same node marks, about ten times faster than the pure-Python scanner
#: (issue 17: loading the two demo playbooks was about 0.29 s of an audit's 1.3 s of CPU).
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(text: str) -> tuple[Any, Any]:
    """The document's node tree (for line numbers in messages) and its data, from one parse."""
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def _python_error(text: str) -> yaml.YAMLError | None:
    """The pure-Python parser's error for ``text`` (same line and column as libyaml's)."""
    try:
        yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        return exc
    return None


def _check(path: Path, node: Any, model: Playbook) -> None:
    registry = kinds()
    seen: set[str] = set()
    for i, step in enumerate(model.steps):
        where = f"{path}:{_line(node, ('steps', i))}: steps[{i}] ({step.id})"
        if step.id in seen:
            raise PlaybookError(f"{where}: duplicate step id {step.id!r}")
        seen.add(step.id)
        if step.kind not in registry:
            raise PlaybookError(f"{where}: unknown step kind {step.kind!r} "
                                f"(known: {', '.join(sorted(registry))})")
        for name in _references(step.with_):
            if name not in model.variables:
                raise PlaybookError(f"{where}: uses ${{{name}}}, which is not declared "
                                    "under variables")
        _check_params(path, node, i, step, registry[step.kind].params)


def _check_params(path: Path, node: Any, i: int, step: StepSpec, params: type[Params]) -> None:
    """The step's ``with:`` against its kind's parameters, before any variable is bound: an
    unknown parameter, a missing one or a wrong literal (an unknown ``via``) fails here, so
    ``playbook validate`` refuses what audit would. A value that is a ``${variable}`` is
    checked when the org binds it."""
    try:
        params.model_validate(step.with_)
    except ValidationError as exc:
        for err in exc.errors():
            value = err.get("input")
            if isinstance(value, str) and _VAR.search(value):
                continue  # a variable: its value is only known when an org binds it
            if not err["loc"] and _references(step.with_):
                continue  # a rule across parameters that a variable may satisfy
            loc = tuple(err["loc"])
            field = ".".join(str(p) for p in loc) or "(with)"
            msg = "unknown parameter" if err["type"] == "extra_forbidden" else err["msg"]
            line = _line(node, ("steps", i, "with_", *loc))
            raise PlaybookError(f"{path}:{line}: steps[{i}] ({step.id}): with.{field}: "
                                f"{msg}") from None


def _references(value: Any) -> list[str]:
    if isinstance(value, str):
        return _VAR.findall(value)
    if isinstance(value, dict):
        return [n for v in value.values() for n in _references(v)]
    if isinstance(value, list):
        return [n for v in value for n in _references(v)]
    return []


def _line(node: Any, loc: tuple[Any, ...]) -> int:
    """1-based line of the YAML node at ``loc`` (or of the nearest parent that exists)."""
    best = node.start_mark.line + 1 if node is not None else 1
    cur = node
    for part in loc:
        nxt = None
        if isinstance(cur, yaml.MappingNode):
            for key, value in cur.value:
                if key.value == part or (part == "with_" and key.value == "with"):
                    nxt = value
                    best = key.start_mark.line + 1
                    break
        elif isinstance(cur, yaml.SequenceNode) and isinstance(part, int) \
                and part < len(cur.value):
            nxt = cur.value[part]
            best = nxt.start_mark.line + 1
        if nxt is None:
            break
        cur = nxt
    return best


def _error(path: Path, node: Any, exc: ValidationError) -> PlaybookError:
    first = exc.errors()[0]
    loc = tuple(first["loc"])
    dotted = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc)
    dotted = dotted.replace(".[", "[").replace("with_", "with")
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "missing":
        msg = "required key missing"
    return PlaybookError(f"{path}:{_line(node, loc)}: {dotted or '(top level)'}: {msg}")


# ---- binding ------------------------------------------------------------------------------


def bind(pb: LoadedPlaybook, values: dict[str, Any]) -> list[BoundStep]:
    """Steps with variables replaced and parameters validated by their kind."""
    model = pb.model
    unknown = sorted(set(values) - set(model.variables))
    if unknown:
        raise PlaybookError(f"{pb.path}: the org configuration sets variable {unknown[0]!r}, "
                            f"which playbook {model.name!r} does not declare")
    resolved: dict[str, Any] = {}
    for name, var in model.variables.items():
        if name in values:
            resolved[name] = values[name]
        elif var.default is not None or not var.required:
            resolved[name] = var.default
        else:
            raise PlaybookError(f"{pb.path}: variable {name!r} of playbook {model.name!r} has "
                                "no value: set it for this org in remediate.toml "
                                f"([orgs.<name>.playbooks.{model.name}] {name} = ...)")
    registry = kinds()
    out = []
    for i, step in enumerate(model.steps):
        kind = registry[step.kind]
        raw = _substitute(step.with_, resolved)
        try:
            params = kind.params.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "(with)"
            msg = "unknown parameter" if first["type"] == "extra_forbidden" else first["msg"]
            node = yaml.compose(pb.text, Loader=_LOADER)  # only to name the line
            line = _line(node, ("steps", i, "with_", *first["loc"]))
            raise PlaybookError(f"{pb.path}:{line}: steps[{i}] ({step.id}): with.{field}: "
                                f"{msg}") from None
        cause = step.cause or (kind.causes[0] if kind.causes else None)
        out.append(BoundStep(model.name, step.id, kind, cause, params, step.description))
    return out


def _substitute(value: Any, values: dict[str, Any]) -> Any:
    if isinstance(value, str):
        whole = _VAR.fullmatch(value)
        if whole:
            return values[whole.group(1)]
        return _VAR.sub(lambda m: str(values[m.group(1)]), value)
    if isinstance(value, dict):
        return {k: _substitute(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, values) for v in value]
    return value


def digest(steps: list[BoundStep]) -> str:
    """Identifies the bound playbooks a plan was made from (a changed variable changes it)."""
    payload = [{"playbook": s.playbook, "id": s.id, "kind": s.kind.name,
                "params": s.params.model_dump(mode="json")} for s in steps]
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def json_schema() -> dict[str, Any]:
    """JSON Schema of the playbook format, with each step kind's parameters."""
    schema = Playbook.model_json_schema(by_alias=True)
    schema["$id"] = "https://remediate.invalid/schema/playbook-v1.json"
    schema["title"] = "remediate playbook"
    schema["x-step-kinds"] = {
        name: {"summary": kind.summary, "causes": list(kind.causes),
               "parameters": kind.params.model_json_schema()}
        for name, kind in sorted(kinds().items())
    }
    # editors validate ``with:`` too: the step's ``kind`` selects its parameters' schema
    defs = schema.setdefault("$defs", {})
    step = defs["StepSpec"]
    step["properties"]["kind"]["enum"] = sorted(kinds())
    rules = []
    for name, kind in sorted(kinds().items()):
        params = _hoist(kind.params.model_json_schema(), defs, name)
        for prop in params.get("properties", {}).values():
            _allow_variable(prop)
        rules.append({"if": {"properties": {"kind": {"const": name}}, "required": ["kind"]},
                      "then": {"properties": {"with": params}}})
    step["allOf"] = rules
    return schema


_VARIABLE_SCHEMA = {"type": "string", "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*\}"}


def _allow_variable(prop: dict[str, Any]) -> None:
    """A parameter may also be a ``${variable}``, bound per org."""
    original = dict(prop)
    prop.clear()
    prop["anyOf"] = [original, _VARIABLE_SCHEMA]
    for key in ("title", "description", "default"):
        if key in original:
            prop[key] = original.pop(key)


def _hoist(params: dict[str, Any], defs: dict[str, Any], kind: str) -> dict[str, Any]:
    """Move a parameter schema's own ``$defs`` to the top level, named after the kind."""
    own = params.pop("$defs", {})
    prefix = kind.replace(".", "_") + "."

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: rewrite(v) for k, v in node.items()}
            ref = out.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                out["$ref"] = "#/$defs/" + prefix + ref[len("#/$defs/"):]
            return out
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    for name, sub in own.items():
        defs[prefix + name] = rewrite(sub)
    result: dict[str, Any] = rewrite(params)
    return result


@cache  # where the package is does not change in a process; a fleet resolves per org
def builtin_dir() -> Path:
    """The playbooks shipped with remediate: package data ``remediate/playbooks``, a link to the
    top-level playbooks/ in the source tree (ADR 0024)."""
    from importlib import resources

    return Path(str(resources.files("remediate") / "playbooks"))


def resolve(name_or_path: str, base: Path | None = None) -> Path:
    """A playbook by path, or by the name of a shipped one (``copilot-for-sales``)."""
    path = Path(name_or_path)
    if base is not None and not path.is_absolute():
        candidate = base / path
        if candidate.exists():
            return candidate
    if path.exists():
        return path
    shipped = builtin_dir() / f"{name_or_path}.yaml"
    if shipped.exists():
        return shipped
    raise PlaybookError(f"no playbook {name_or_path!r}: not a file, and not a shipped playbook "
                        f"({', '.join(sorted(p.stem for p in builtin_dir().glob('*.yaml')))})")
