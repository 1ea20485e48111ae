"""Changes and plans: plain values that can be shown, saved, checksummed and applied.

A plan is the list of changes that takes an org from what it is to what its playbooks say. It is
built the same way for ``audit``, ``plan`` and ``apply`` (Ansible's check-mode rule), so what was
shown is what gets applied. Its checksum covers the org id, the playbooks' digest and the changes;
``apply`` recomputes the plan from a fresh read and refuses a saved plan whose checksum differs
(Terraform's stale-plan rule).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from remediate.errors import UsageError

PLAN_FORMAT = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetadataWrite(_Frozen):
    """Set one field (a dotted path) of a metadata component, or add items to (or remove them
    from) a list field."""

    api: Literal["metadata"] = "metadata"
    type: str
    full_name: str
    path: str
    value: Any
    mode: Literal["set", "add", "remove"] = "set"  # remove: take these items out of a list


class RecordWrite(_Frozen):
    """Insert a row, or update fields of a row, through REST (batched through composite)."""

    api: Literal["rest", "tooling"] = "rest"
    sobject: str
    record_id: str | None = None  # None: insert
    fields: dict[str, Any]


class RecordDelete(_Frozen):
    """Delete a row through REST (batched through composite/sobjects DELETE); used to undo an
    insert (``remediate rollback``)."""

    api: Literal["delete"] = "delete"
    sobject: str
    record_id: str
    #: The fields the row was inserted with (from the journal), so rolling back this rollback
    #: can insert it again.
    fields: dict[str, Any] = Field(default_factory=dict)


Write = Annotated[MetadataWrite | RecordWrite | RecordDelete, Field(discriminator="api")]

#: Apply order: a licence before the permission set that needs it, packages before apps.
PHASES: dict[str, int] = {
    "PackageInstallRequest": 0,
    "User": 1,
    "PermissionSetLicenseAssign": 2,
    "PermissionSetAssignment": 3,
    "SetupEntityAccess": 4,
    # after the metadata phase: a PermissionSet written whole (record type visibilities) must
    # not take back object and field permissions granted in the same apply (ADR 0033)
    "ObjectPermissions": 6,
    "FieldPermissions": 7,
}
METADATA_PHASE = 5


class Change(_Frozen):
    playbook: str
    step: str
    kind: str
    cause: str | None = None
    target: str  # e.g. "ConnectedApp Copilot_for_Sales", "User copilot.integration@acme.com"
    field: str
    before: Any = None
    after: Any = None
    write: Write | None = None  # None: a person must do it (see ``manual``)
    manual: str | None = None

    @property
    def automatic(self) -> bool:
        return self.write is not None

    @property
    def phase(self) -> int:
        if isinstance(self.write, RecordWrite):
            return PHASES.get(self.write.sobject, 1)
        if isinstance(self.write, RecordDelete):  # after metadata, in reverse dependency order
            return METADATA_PHASE + 1 + max(PHASES.values()) - PHASES.get(self.write.sobject, 1)
        return METADATA_PHASE

    def label(self) -> str:
        return f"{self.target}: {self.field}"

    def data(self, *, origin: bool = True, write: bool = False) -> dict[str, Any]:
        """The one serialisation of a change (JSON output, the journal, notifications):
        ``origin`` adds the playbook, step, kind and cause; ``write`` the write itself, as the
        journal keeps it for ``rollback``. (The plan file stores whole models.)"""
        out: dict[str, Any] = {"playbook": self.playbook, "step": self.step, "kind": self.kind,
                               "cause": self.cause} if origin else {}
        out |= {"target": self.target, "field": self.field, "before": self.before,
                "after": self.after}
        if write:
            out["write"] = self.write.model_dump(mode="json") if self.write else None
            return out
        out["automatic"] = self.automatic
        if self.manual:
            out["manual"] = self.manual
        return out


class Approval(_Frozen):
    by: str
    how: Literal["prompt", "flag", "policy"]
    at: str


class Plan(_Frozen):
    format: int = PLAN_FORMAT
    org: str  # configured org name
    org_id: str
    instance_url: str
    playbooks_digest: str
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    changes: tuple[Change, ...] = ()
    checksum: str = ""
    # 'plan --out' records the -p selection and apply's estimated API requests, so that
    # 'apply FILE' needs nothing else; the playbooks digest (in the checksum) pins their content
    playbooks: tuple[str, ...] | None = None
    api_requests: int | None = None

    @classmethod
    def build(cls, *, org: str, org_id: str, instance_url: str, playbooks_digest: str,
              changes: list[Change]) -> Plan:
        ordered = tuple(sorted(changes, key=lambda c: (c.phase, c.playbook, c.step, c.target,
                                                         c.field)))
        draft = cls(org=org, org_id=org_id, instance_url=instance_url,
                    playbooks_digest=playbooks_digest, changes=ordered)
        return draft.model_copy(update={"checksum": draft.compute_checksum()})

    def compute_checksum(self) -> str:
        payload = {
            "org_id": self.org_id[:15],
            "playbooks": self.playbooks_digest,
            "changes": [c.model_dump(mode="json") for c in self.changes],
        }
        return hashlib.sha256(canonical_json(payload).encode()).hexdigest()

    @property
    def automatic(self) -> list[Change]:
        return [c for c in self.changes if c.automatic]

    @property
    def manual(self) -> list[Change]:
        return [c for c in self.changes if not c.automatic]

    @property
    def empty(self) -> bool:
        return not self.changes

    def save(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Plan:
        try:
            from remediate.inputs import read_text

            plan = cls.model_validate_json(read_text(path, "plan"))
        except OSError as exc:
            raise UsageError(f"{path}: cannot read the plan file ({exc.strerror})") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise UsageError(f"{path}: not a remediate plan: {where}: {first['msg']}") from None
        if plan.format != PLAN_FORMAT:
            raise UsageError(f"{path}: plan format {plan.format} is not supported "
                             f"(this remediate writes format {PLAN_FORMAT})")
        if plan.checksum != plan.compute_checksum():
            raise UsageError(f"{path}: the plan file was edited after it was written "
                             "(its checksum does not match its changes)")
        return plan


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)
