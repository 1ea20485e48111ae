"""What a fleet run uses by default: the cores this process may really use, and the workers
chosen for latency-bound work (ADR 0040)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from remediate import fleet
from remediate.settings import EnforceSettings


def affinity() -> int:
    return len(os.sched_getaffinity(0))


@pytest.mark.parametrize(("cpu_max", "expected"), [
    ("max 100000\n", None),  # no quota: the affinity
    ("100000 100000\n", 1),
    ("150000 100000\n", 2),  # 1.5 CPUs: rounded up
    ("garbage\n", None),
])
def test_processes_default_to_the_cores_the_cgroup_quota_and_affinity_allow(
        tmp_path: Path, cpu_max: str, expected: int | None) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    want = affinity() if expected is None else min(expected, affinity())
    assert fleet.available_cores(path) == want


def test_no_cgroup_file_means_the_affinity(tmp_path: Path) -> None:
    assert fleet.available_cores(tmp_path / "absent") == affinity()


def test_workers_default_to_sixteen_per_process() -> None:
    assert EnforceSettings().workers == 16
