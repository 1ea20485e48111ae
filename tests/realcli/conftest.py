"""The real Salesforce CLI (`sf`) against `remediate sandbox serve`.

`tests/realcli/install.sh` installs the pinned CLI and the Node.js it needs outside the
repository; .ci/run calls it and sets REMEDIATE_REALCLI_REQUIRED=1, so in CI a missing CLI is a
failure, and locally (without it) these tests skip saying how to install it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sfharness import Served

from benchmarks.sfcli import QUIET_ENV  # what the CLI must never do: phone home, update, prompt

DEFAULT_DIR = Path(os.environ.get("HOME", "/root")) / ".cache" / "remediate-realcli"


def sf_path() -> Path | None:
    explicit = os.environ.get("REMEDIATE_SF")
    if explicit:
        return Path(explicit)
    base = Path(os.environ.get("REMEDIATE_REALCLI_DIR") or DEFAULT_DIR)
    exe = base / "bin" / "sf"
    return exe if exe.exists() else None


@pytest.fixture(scope="session")
def sf() -> Path:
    exe = sf_path()
    if exe is None:
        if os.environ.get("REMEDIATE_REALCLI_REQUIRED") == "1":
            pytest.fail("the real Salesforce CLI is required here but not installed: "
                        "tests/realcli/install.sh did not run")
        pytest.skip("the real Salesforce CLI is not installed: run tests/realcli/install.sh "
                    "(about 480 MB, 2-3 minutes) to run these tests")
    return exe


@pytest.fixture(scope="module")
def served(sf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("sfhome")
    project = tmp_path_factory.mktemp("sfproject")
    (project / "force-app").mkdir()
    (project / "sfdx-project.json").write_text(json.dumps({
        "packageDirectories": [{"path": "force-app", "default": True}],
        "sourceApiVersion": "67.0", "name": "box"}))
    log = (home / "serve.log").open("w")
    env_base = {k: v for k, v in os.environ.items() if not k.startswith(("SF_", "SFDX_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "remediate", "sandbox", "serve", "--scenario", "healthy",
         "--port", "0"], stdout=subprocess.PIPE, stderr=log, text=True, env=env_base)
    try:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        env = {**env_base, **QUIET_ENV, "HOME": str(home),
               "NODE_EXTRA_CA_CERTS": line["ca_bundle"],
               "PATH": f"{sf.parent}{os.pathsep}{env_base.get('PATH', '')}"}
        box = Served(line["instance_url"], line["ca_bundle"], line["org_id"], env, sf, project,
                     line["access_token"])
        # The token goes in through the environment, never on a command line.
        box.login = box.sf_run("org", "login", "access-token", "--instance-url", box.url,
                               "--no-prompt", "--alias", "box", "--json",
                               extra_env={"SF_ACCESS_TOKEN": line["access_token"]})
        yield box
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        log.close()
