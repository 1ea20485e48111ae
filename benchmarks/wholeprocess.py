"""Whole processes over HTTPS: remediate's audit against the baselines people use (issue 17).

Each client runs as its own process (start-up, imports, WSDL parse and exit included) against
``remediate sandbox serve --scenario demo --latency-ms N`` on 127.0.0.1, verifying the
server's certificate: (a) ``benchmarks/batched.py``, a competent batched simple-salesforce
script (one query per object, sequential); (b) ``benchmarks/sfcli.py``, the Salesforce CLI
scripted one command per check, if ``sf`` is installed (else it says why it is skipped);
(c) ``benchmarks/naive.py``, one call per check. All sign in with the same admin access token
(no token request for anyone; the CLI's ``org login access-token`` is part of its run). One
server per client and latency, so its request and TLS-connection counters are that client's;
figures are medians over runs.

What is measured is what a user runs: remediate built as a wheel and installed (with its
bytecode compiled, as pip does) into a throwaway virtual environment whose dependencies are
this environment's installed packages; every client runs under that interpreter, without
PYTHONDONTWRITEBYTECODE, after a warm-up run. ``--install editable`` measures this checkout's
editable install instead (its import finder and, with PYTHONDONTWRITEBYTECODE set, the
recompiling of every remediate module at every start are then part of the figures).

    python benchmarks/wholeprocess.py [--latency-ms 100 --latency-ms 300] [--runs 3]
"""

from __future__ import annotations

import argparse
import atexit
import functools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def emit(name: str, value: float | int | str, unit: str = "") -> None:
    shown = f"{value:.3f}" if isinstance(value, float) else str(value)
    print(f"{name}: {shown} {unit}".rstrip(), flush=True)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"


def demo_bindings() -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The demo org's playbook variables (as the built-in org binds them) and the reads its
    audit needs, by object, for the batched script."""
    from remediate.builtin import builtin_bindings
    from remediate.orgs import bind_playbooks
    from remediate.sandbox import scenario as scenarios
    from remediate.steps.base import (
        LicenseRead,
        MetadataRead,
        PackageRead,
        PermissionSetRead,
        ProfileRead,
        UserRead,
    )

    spec = scenarios.load("demo")
    org = scenarios.build_org(spec)
    bindings = builtin_bindings(spec, org.my_domain_url, {})
    steps, _ = bind_playbooks(bindings, None)
    reads: dict[str, Any] = {"users": [], "permission_sets": [], "licenses": [], "profiles": [],
                             "packages": [], "metadata": {}}
    for step in steps:
        for r in step.kind.reads(step.params):
            key, name = {UserRead: ("users", "username"),
                         PermissionSetRead: ("permission_sets", "name"),
                         LicenseRead: ("licenses", "developer_name"),
                         ProfileRead: ("profiles", "name"),
                         PackageRead: ("packages", "namespace")}.get(type(r), (None, None))
            if key is not None and name is not None:
                if getattr(r, name) not in reads[key]:
                    reads[key].append(getattr(r, name))
            elif isinstance(r, MetadataRead):
                names = reads["metadata"].setdefault(r.type, [])
                if r.full_name not in names:
                    names.append(r.full_name)
    return bindings, reads


@functools.cache
def installed(how: str = "wheel") -> Path:
    """The Python the clients run under: ``wheel`` (default) builds remediate's wheel from a copy
    of this checkout and installs it into a fresh virtual environment under a temporary
    directory, its dependencies being this environment's site-packages (a ``.pth`` line: the
    packages as installed, bytecode included, and none of the .pth files there, so no editable
    finder); ``editable`` is this interpreter. Building needs setuptools and wheel: ``build``
    fetches them from the package index, as .ci/run does."""
    if how == "editable":
        emit("whole.install", f"editable ({sys.executable}; remediate from {ROOT})")
        return Path(sys.executable)
    import sysconfig

    base = Path(tempfile.mkdtemp(prefix="remediate-bench-install-"))
    atexit.register(shutil.rmtree, base, True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    shutil.copytree(ROOT, base / "src", ignore=shutil.ignore_patterns(
        ".git", ".venv*", "tests", "cassettes", "build", "dist", "*.egg-info", "__pycache__"))
    done = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir",
                           str(base / "dist"), str(base / "src")], capture_output=True, text=True,
                          env=env, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"building the wheel failed: {(done.stdout + done.stderr)[-1500:]}")
    (wheel,) = (base / "dist").glob("remediate-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(base / "venv")],
                   check=True, env=env, timeout=300)
    python = base / "venv" / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"], capture_output=True,
                             text=True, check=True, env=env, cwd=base, timeout=60).stdout.strip()
    Path(purelib, "remediate-bench-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                           "--no-deps", "--no-index", str(wheel)], capture_output=True,
                          text=True, env=env, cwd=base, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"installing the wheel failed: {done.stderr[-1500:]}")
    emit("whole.install", f"wheel {wheel.name} in a fresh venv ({python}), bytecode compiled, "
         "dependencies from this environment's site-packages")
    return python


def _under(command: list[str], python: Path) -> list[str]:
    """``command`` run by the measured install's interpreter (or its ``remediate`` script)."""
    script = Path(sys.executable).with_name("remediate")
    if command[0] == sys.executable:
        return [str(python), *command[1:]]
    if command[0] == str(script):
        return [str(python.with_name("remediate")), *command[1:]]
    return command


class Served:
    def __init__(self, latency_ms: int, port: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "remediate", "sandbox", "serve", "--scenario", "demo",
             "--latency-ms", str(latency_ms), "--port", str(port), "--verbose"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.line = json.loads(self.proc.stdout.readline())

    def stop(self) -> tuple[int, int]:
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=60)
        for line in err.splitlines()[::-1]:
            if line.startswith("served "):
                words = line.split()
                return int(words[1]), int(words[4])
        raise RuntimeError(f"serve printed no counts: {err[-500:]}")


def _config(directory: Path, line: dict[str, str], bindings: dict[str, dict[str, Any]]) -> Path:
    path = directory / "remediate.toml"
    text = [f"[orgs.lab]\nlogin_url = {_toml(line['instance_url'])}\n"
            f"instance_url = {_toml(line['instance_url'])}\nauth = \"access_token\"\n"
            f"access_token_env = \"REMEDIATE_BENCH_TOKEN\"\nca_bundle = {_toml(line['ca_bundle'])}\n"
            "production = true\n"]
    for playbook, variables in bindings.items():
        text.append(f"\n[orgs.lab.playbooks.{playbook}]\n")
        text.extend(f"{k} = {_toml(v)}\n" for k, v in variables.items())
    path.write_text("".join(text))
    return path


def _commands(cfg: Path, reads_file: Path) -> dict[str, list[str] | None]:
    script = Path(sys.executable).with_name("remediate")
    remediate = [str(script)] if script.exists() else [sys.executable, "-m", "remediate"]
    return {
        "remediate": [*remediate, "--config", str(cfg), "audit", "--org", "lab"],
        "batched": [sys.executable, str(ROOT / "benchmarks" / "batched.py"), str(reads_file)],
        "sf_cli": None,  # one command per check; see below
        "naive": [sys.executable, str(ROOT / "benchmarks" / "naive.py"), str(cfg), "lab"],
    }


def _sf_cli(work: Path, bindings: dict[str, dict[str, Any]],
            reads: dict[str, Any]) -> list[str] | None:
    """The (b) slot: the Salesforce CLI scripted one command per check (benchmarks/sfcli.py),
    or None after printing why it is skipped."""
    if str(ROOT) not in sys.path:  # run as a script, benchmarks/ is on the path, not the root
        sys.path.insert(0, str(ROOT))
    from benchmarks import sfcli

    command, what = sfcli.prepare(work, bindings, reads)
    print(f"sf_cli: {what}" if command else f"sf_cli: skipped ({what})", flush=True)
    return command


def run(latencies: list[int], runs: int, port: int, install: str = "wheel"
        ) -> dict[str, dict[int, dict[str, float]]]:
    python = installed(install)
    print("whole.environment: clients run without PYTHONDONTWRITEBYTECODE, after one warm-up "
          "run each", flush=True)
    bindings, reads = demo_bindings()
    out: dict[str, dict[int, dict[str, float]]] = {}
    work = Path(tempfile.mkdtemp(prefix="remediate-bench-"))
    reads_file = work / "reads.json"
    reads_file.write_text(json.dumps(reads))
    sf_cli = _sf_cli(work, bindings, reads)
    try:
        for latency in latencies:
            for name in ("remediate", "batched", *(["sf_cli"] if sf_cli else []), "naive"):
                served = Served(latency, port)
                env = {**os.environ, "REMEDIATE_BENCH_TOKEN": served.line["access_token"],
                       "REMEDIATE_BENCH_URL": served.line["instance_url"],
                       "REMEDIATE_BENCH_CA": served.line["ca_bundle"],
                       "XDG_STATE_HOME": str(work / "state"),
                       "XDG_CACHE_HOME": str(work / "cache")}
                env.pop("REQUESTS_CA_BUNDLE", None)
                env.pop("CURL_CA_BUNDLE", None)
                env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has bytecode
                command = _commands(_config(work, served.line, bindings), reads_file)[name]
                limit = 300
                if name == "sf_cli":  # a node start-up per command: minutes when loaded
                    command, limit = sf_cli, 1800
                assert command is not None
                command = _under(command, python)
                walls, cpus = [], []
                try:
                    subprocess.run(command, env=env, capture_output=True, timeout=limit,
                                   cwd=work)  # warm
                    for _ in range(runs):
                        before = os.times()
                        start = time.perf_counter()
                        done = subprocess.run(command, env=env, capture_output=True, text=True,
                                              timeout=limit, cwd=work)
                        walls.append(time.perf_counter() - start)
                        after = os.times()
                        cpus.append(after.children_user + after.children_system
                                    - before.children_user - before.children_system)
                        if done.returncode not in (0, 2):
                            raise RuntimeError(f"{name} exited {done.returncode}: "
                                               f"{done.stderr[-800:]}")
                finally:
                    requests_, connections = served.stop()
                figures = {"wall": statistics.median(walls), "wall_min": min(walls),
                           "cpu": statistics.median(cpus),
                           "requests": requests_ / (runs + 1),
                           "connections": connections / (runs + 1)}
                out.setdefault(name, {})[latency] = figures
                prefix = f"whole.{name}.{latency}ms"
                emit(f"{prefix}.wall_median", figures["wall"], "s")
                emit(f"{prefix}.wall_min", figures["wall_min"], "s")
                emit(f"{prefix}.cpu_median", figures["cpu"], "s (client process)")
                emit(f"{prefix}.requests", figures["requests"], "per run")
                emit(f"{prefix}.tls_connections", figures["connections"], "per run")
            for other in ("batched", *(["sf_cli"] if sf_cli else []), "naive"):
                ratio = out[other][latency]["wall"] / out["remediate"][latency]["wall"]
                emit(f"whole.ratio.{other}_over_remediate.{latency}ms", ratio, "x wall")
                calls = out[other][latency]["requests"] / out["remediate"][latency]["requests"]
                emit(f"whole.ratio.{other}_over_remediate.{latency}ms.requests", calls, "x")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-ms", type=int, action="append",
                        help="Latency per request (repeatable; default 100 and 300).")
    parser.add_argument("--runs", type=int, default=3, help="Timed runs per client (default 3).")
    parser.add_argument("--port", type=int, default=0, help="Port for serve (default: any).")
    parser.add_argument("--install", choices=("wheel", "editable"), default="wheel",
                        help="What to measure: the wheel installed in a fresh venv (default: "
                             "what users run) or this checkout's editable install.")
    args = parser.parse_args(argv)
    run(args.latency_ms or [100, 300], args.runs, args.port, args.install)


if __name__ == "__main__":
    main()
