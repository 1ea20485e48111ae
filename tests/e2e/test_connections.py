"""Connections per command over real HTTPS: ``remediate sandbox serve`` counts the TLS
connections it accepts, and a remediate process keeps its connections alive, one pool per host
shared by REST, Tooling and SOAP calls (issue 17). A wave of n calls needs n connections at
once; later waves reuse them instead of paying another TLS handshake each."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cliharness import lab_config
from requests.adapters import HTTPAdapter

from remediate.salesforce import waves

pytestmark = pytest.mark.e2e


def _serve() -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "remediate", "sandbox", "serve", "--scenario", "demo",
         "--verbose"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
    finally:
        watchdog.cancel()
    return proc, line


def _stop(proc: subprocess.Popen[str]) -> tuple[int, int]:
    """Stop serve; (requests, TLS connections) from its last stderr line (``--verbose``)."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    found = re.search(r"served (\d+) requests over (\d+) TLS connections", err)
    assert found, err
    return int(found[1]), int(found[2])


def _remediate(tmp_path: Path, line: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    cfg = lab_config(tmp_path, line["instance_url"], line["ca_bundle"])
    env = {**os.environ, "LAB_TOKEN": line["access_token"],
           "XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("REQUESTS_CA_BUNDLE", None)
    env.pop("CURL_CA_BUNDLE", None)
    return subprocess.run([sys.executable, "-m", "remediate", "--config", str(cfg), *args,
                           "--org", "lab"], capture_output=True, text=True, env=env,
                          timeout=300)


def test_audit_opens_no_more_tls_connections_than_its_wave_sends_at_once(
        tmp_path: Path) -> None:
    proc, line = _serve()
    try:
        done = _remediate(tmp_path, line, "audit")
    finally:
        requests_, connections = _stop(proc)
    assert done.returncode == 2, done.stderr
    assert 1 <= connections <= min(requests_, waves.DEFAULT_PARALLEL)


def test_apply_reuses_kept_alive_connections_across_its_waves(tmp_path: Path) -> None:
    """apply sends several waves one after another (read, writes, re-read): the connections of
    the first wave serve the later ones, so there are fewer TLS handshakes than requests."""
    proc, line = _serve()
    try:
        done = _remediate(tmp_path, line, "apply", "--yes", "--allow-production")
    finally:
        requests_, connections = _stop(proc)
    assert done.returncode in (0, 4), done.stdout + done.stderr
    print(f"apply: {requests_} requests over {connections} TLS connections")
    assert connections < requests_
    assert connections <= waves.DEFAULT_PARALLEL


@pytest.mark.parametrize("parallel", [4, 8, 32])
def test_gateway_pool_keeps_as_many_connections_per_host_as_a_wave_sends(parallel: int) -> None:
    """requests keeps 10 connections per host by default and discards the rest after use; a
    wave wider than that would open new TLS connections every time."""
    from remediate.salesforce.gateway import Credentials, Gateway

    gateway = Gateway(Credentials(auth="access_token", login_url="https://x.example"),
                      parallel=parallel)
    adapter = gateway._session.get_adapter("https://acme.my.salesforce.com")
    assert isinstance(adapter, HTTPAdapter)
    assert adapter.poolmanager.connection_pool_kw["maxsize"] >= parallel
