"""docs/scheduling.md: its Kubernetes CronJob is valid against Kubernetes' own schema and passes
the Indexed Job's completion index as the shard; the other examples run enforce."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from remediate.enforce import parse_shard

DOC = Path(__file__).resolve().parents[2] / "docs" / "scheduling.md"
K8S_VERSION = "1.29"  # batch/v1 CronJob and Indexed Jobs are stable from 1.24


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def manifest() -> dict[str, Any]:
    found = [d for d in (yaml.safe_load(b) for b in blocks("yaml"))
             if isinstance(d, dict) and d.get("kind") == "CronJob"]
    assert len(found) == 1
    return found[0]


def test_kubernetes_cronjob_passes_the_kubernetes_schema_strictly() -> None:
    kubernetes_validate.validate(manifest(), K8S_VERSION, strict=True)


def test_schema_validation_would_catch_a_broken_manifest() -> None:
    broken = manifest()
    broken["spec"]["jobTemplate"]["spec"]["completionMode"] = 4  # must be a string
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    unknown = manifest()
    unknown["spec"]["jobTemplate"]["spec"]["shards"] = 4  # no such field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown, K8S_VERSION, strict=True)


def test_cronjob_is_an_indexed_job_passing_its_completion_index_as_the_shard() -> None:
    job = manifest()["spec"]["jobTemplate"]["spec"]
    assert job["completionMode"] == "Indexed"
    count = job["completions"]
    assert job["parallelism"] == count
    container = job["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[args.index("enforce") + 1:args.index("enforce") + 2] == ["--all"]
    shard = args[args.index("--shard") + 1]
    assert shard == f"$(JOB_COMPLETION_INDEX)/{count}"
    env = {e["name"]: e for e in container["env"]}
    assert env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    for index in range(count):  # what each pod's shard becomes is accepted by --shard
        assert parse_shard(shard.replace("$(JOB_COMPLETION_INDEX)", str(index))) == (index, count)
    assert manifest()["spec"]["concurrencyPolicy"] == "Forbid"


def test_cron_systemd_and_ci_examples_run_enforce() -> None:
    assert any("remediate --log-format json enforce --all" in b for b in blocks("cron"))
    units = "\n".join(blocks("ini"))
    assert "ExecStart=/opt/remediate/bin/remediate --log-format json enforce --all" in units
    assert "OnCalendar=" in units and "SuccessExitStatus=2 75" in units
    workflow = next(d for d in (yaml.safe_load(b) for b in blocks("yaml"))
                    if isinstance(d, dict) and "jobs" in d)
    steps = workflow["jobs"]["enforce"]["steps"]
    assert any("--shard ${{ matrix.shard }}/4" in str(s.get("run", "")) for s in steps)
    assert workflow["jobs"]["enforce"]["strategy"]["matrix"]["shard"] == [0, 1, 2, 3]
    assert workflow[True]["schedule"][0]["cron"]  # YAML 1.1 reads the key 'on' as true
