"""remediate's performance figures, printed as ``name: value unit`` lines.

    python benchmarks/run.py                      # everything (about a minute)
    python benchmarks/run.py --part demo --part naive
    python benchmarks/run.py --part fleet --orgs 500 --workers 16

Parts:

* ``demo``: round trips (observed: the longest chain of requests each sent after the previous one
  ended), requests by API, and wall time, for ``audit`` and for ``apply`` + ``verify`` of the
  built-in demo org, at 0 ms and 100 ms of latency per request. ``apply_verify.session`` is one
  connection (assess, apply, verify); ``apply_verify.cli`` is the two commands
  ``remediate apply --yes`` then ``remediate verify``, each signing in and re-reading.
* ``naive``: the same audit and apply + verify done one call per check and per row
  (benchmarks/naive.py) on the same sandbox, and the ratios.
* ``scale``: audit of orgs with 1, 10 and 50 integrations.
* ``fleet``: a fleet of sandbox orgs (default 500) at 100 ms latency, audited through the fleet
  runner (``remediate.enforce.run_fleet``), in a fresh process: wall time and peak memory.
* ``startup``: ``remediate --help`` and ``remediate audit --help`` wall time, in fresh processes
  of the installed wheel (``--install editable``: this checkout), from the help cache and not.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

PARTS = ("demo", "naive", "scale", "fleet", "startup", "whole")
APIS = ("oauth", "rest", "tooling", "soap")


#: Every figure printed in this run, by name (the targets table is made from them).
FIGURES: dict[str, float | int | str] = {}


def emit(name: str, value: float | int | str, unit: str = "") -> None:
    FIGURES[name] = value
    if isinstance(value, float):
        value = f"{value:.3f}" if value < 100 else f"{value:.1f}"
    print(f"{name}: {value} {unit}".rstrip(), flush=True)


def _absorb(output: str) -> None:
    """Figures a child process printed, as ``name: value unit`` lines."""
    for line in output.splitlines():
        name, sep, rest = line.partition(": ")
        if not sep or " " in name:
            continue
        word = rest.split(" ", 1)[0]
        try:
            FIGURES[name] = float(word) if "." in word else int(word)
        except ValueError:
            FIGURES[name] = rest


def _private_dirs() -> None:
    base = Path(tempfile.mkdtemp(prefix="remediate-bench-"))
    os.environ["XDG_CACHE_HOME"] = str(base / "cache")
    os.environ["XDG_STATE_HOME"] = str(base / "state")


class Measure:
    """Requests by API, observed round trips and wall time of one piece of work."""

    def __init__(self, timing: Any) -> None:
        self.timing = timing
        self.counts: dict[str, int] = {}
        self.rounds = 0
        self.wall = 0.0

    def run(self, work: Callable[[], Any]) -> Any:
        self.timing.reset()
        start = time.perf_counter()
        result = work()
        self.wall = time.perf_counter() - start
        counts = self.timing.sandbox.counts
        self.counts = {api: counts[api] for api in APIS}
        self.counts["total"] = counts["total"]
        self.rounds = self.timing.round_trips()
        return result

    def add(self, other: Measure) -> Measure:
        out = Measure(self.timing)
        out.counts = {k: self.counts[k] + other.counts[k] for k in self.counts}
        out.rounds = self.rounds + other.rounds
        out.wall = self.wall + other.wall
        return out

    def emit(self, name: str, *, rounds: bool = True) -> None:
        if rounds:
            emit(f"{name}.round_trips", self.rounds, "round trips")
        emit(f"{name}.requests", self.counts["total"], "requests")
        for api in APIS:
            emit(f"{name}.requests.{api}", self.counts[api], "requests")
        emit(f"{name}.api_calls", self.counts["total"] - self.counts["oauth"],
             "calls (REST, Tooling and SOAP; token requests do not count against the daily limit)")
        emit(f"{name}.wall", self.wall * 1000, "ms")


# ---- demo and naive -------------------------------------------------------------------------


def _journal() -> Any:
    from remediate.journal import Journal

    return Journal(Path(tempfile.mkdtemp(prefix="remediate-bench-")) / "journal.jsonl")


def demo_flows(latency: float) -> dict[str, Measure]:
    from benchmarks.orgs import Timing, demo_handle, demo_sandbox
    from remediate import engine
    from remediate.salesforce import versioncache

    out: dict[str, Measure] = {}
    sandbox, org, spec = demo_sandbox()
    versioncache.put(org.my_domain_url, None)  # the first command: no version kept yet
    timing = Timing(sandbox)
    sandbox.latency_s = latency
    m = Measure(timing)
    m.run(lambda: engine.assess(demo_handle(sandbox, org, spec)))
    out["audit"] = m
    # the next command: the version the first negotiated is kept for 24 hours (ADR 0039)
    m = Measure(timing)
    m.run(lambda: engine.assess(demo_handle(sandbox, org, spec)))
    out["audit.version_kept"] = m

    def session() -> None:
        h = demo_handle(sandbox, org, spec)
        current = engine.assess(h)
        done = engine.apply_and_verify(h, current, engine.approval("flag"), _journal(),
                                       sign_in=True)
        assert done.verified is not None and done.verified.ok, "the demo org should verify"

    sandbox, org, spec = demo_sandbox()
    versioncache.put(org.my_domain_url, None)  # each flow starts with no version kept
    timing = Timing(sandbox)
    sandbox.latency_s = latency
    m = Measure(timing)
    m.run(session)
    out["apply_verify.session"] = m

    def apply_command() -> None:
        h = demo_handle(sandbox, org, spec)
        current = engine.assess(h)
        done = engine.apply_and_verify(h, current, engine.approval("flag"), _journal(),
                                       sign_in=False)
        assert not done.after.plan.automatic

    def verify_command() -> None:
        assert engine.verify(demo_handle(sandbox, org, spec)).ok

    sandbox, org, spec = demo_sandbox()
    versioncache.put(org.my_domain_url, None)  # verify then uses the version apply kept
    timing = Timing(sandbox)
    sandbox.latency_s = latency
    first, second = Measure(timing), Measure(timing)
    first.run(apply_command)
    second.run(verify_command)
    out["apply_verify.cli"] = first.add(second)
    return out


def naive_flows(latency: float) -> dict[str, Measure]:
    from benchmarks.naive import NaiveClient
    from benchmarks.orgs import Timing, demo_handle, demo_sandbox

    out: dict[str, Measure] = {}
    sandbox, org, spec = demo_sandbox()
    timing = Timing(sandbox)
    sandbox.latency_s = latency
    m = Measure(timing)
    m.run(lambda: NaiveClient(demo_handle(sandbox, org, spec)).audit())
    out["audit"] = m

    def apply_verify() -> None:
        client = NaiveClient(demo_handle(sandbox, org, spec))
        client.apply([c for c in client.audit() if c.automatic])
        assert client.verify() is False or True  # manual changes remain on the demo org

    m = Measure(timing)
    m.run(apply_verify)
    out["apply_verify"] = m
    return out


def part_demo(results: dict[str, dict[str, Measure]]) -> None:
    for ms in (0, 100):
        flows = demo_flows(ms / 1000)
        results[f"demo@{ms}"] = flows
        for name, m in flows.items():
            m.emit(f"demo.{name}.latency_{ms}ms", rounds=ms > 0)


def part_naive(results: dict[str, dict[str, Measure]]) -> None:
    for ms in (0, 100):
        flows = naive_flows(ms / 1000)
        for name, m in flows.items():
            m.emit(f"naive.{name}.latency_{ms}ms", rounds=ms > 0)
        ours = results.get(f"demo@{ms}") or demo_flows(ms / 1000)
        for name, theirs in (("audit", flows["audit"]),
                             ("apply_verify", flows["apply_verify"])):
            mine = ours["audit" if name == "audit" else "apply_verify.session"]
            ratio_calls = (theirs.counts["total"] - theirs.counts["oauth"]) / max(
                1, mine.counts["total"] - mine.counts["oauth"])
            emit(f"ratio.{name}.api_calls.latency_{ms}ms", ratio_calls, "x fewer with remediate")
            emit(f"ratio.{name}.requests.latency_{ms}ms",
                 theirs.counts["total"] / max(1, mine.counts["total"]), "x fewer with remediate")
            emit(f"ratio.{name}.wall.latency_{ms}ms", theirs.wall / max(mine.wall, 1e-9),
                 "x faster with remediate")
            if ms:
                emit(f"ratio.{name}.round_trips.latency_{ms}ms",
                     theirs.rounds / max(1, mine.rounds), "x fewer with remediate")


# ---- scale ----------------------------------------------------------------------------------


def _naive_audit(handle: Any) -> Any:
    from benchmarks.naive import NaiveClient

    return NaiveClient(handle).audit()


def part_scale(sizes: tuple[int, ...] = (1, 10, 50, 200)) -> None:
    """Audit of orgs with 1 to 200 integrations; 200 also at ``in_flight`` 8 (issue 17,
    point 6: calls in flight per org bounded but configurable)."""
    from benchmarks.orgs import Timing, scaled_handle
    from remediate import engine

    for n in sizes:
        if n < 200:
            continue
        for in_flight in (25, 8):
            handle, sandbox = scaled_handle(n)
            handle.gateway.parallel = in_flight
            sandbox.latency_s = 0.1
            m = Measure(Timing(sandbox))
            m.run(partial(engine.assess, handle))
            m.emit(f"scale.audit.integrations_{n}.in_flight_{in_flight}.latency_100ms")
    for n in (s for s in sizes if s < 200):
        for ms in (0, 100):
            handle, sandbox = scaled_handle(n)
            sandbox.latency_s = ms / 1000
            m = Measure(Timing(sandbox))
            m.run(partial(engine.assess, handle))
            m.emit(f"scale.audit.integrations_{n}.latency_{ms}ms", rounds=ms > 0)
        handle, sandbox = scaled_handle(n)
        m = Measure(Timing(sandbox))
        m.run(partial(_naive_audit, handle))
        emit(f"scale.naive_audit.integrations_{n}.requests", m.counts["total"], "requests")


# ---- fleet ----------------------------------------------------------------------------------


def part_fleet(orgs: int, workers: int, latency_ms: int, processes: int | None = None) -> None:
    """Runs the fleet in a fresh process, so its peak memory is the fleet's own."""
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--fleet-child",
                           "--orgs", str(orgs), "--workers", str(workers),
                           "--latency-ms", str(latency_ms),
                           *(["--processes", str(processes)] if processes else [])],
                          capture_output=True, text=True, check=False)
    sys.stdout.write(done.stdout)
    _absorb(done.stdout)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"the fleet run failed (exit {done.returncode})")


def fleet_child(orgs: int, workers: int, latency_ms: int, processes: int | None) -> None:
    """The fleet through ``remediate.fleet.run_fleet`` (what ``enforce`` runs): ``processes``
    forked processes (default: the cores available), each with ``workers`` orgs at once. Each
    forked process answers its orgs from its own copy of the in-process sandbox, so the
    sandbox's CPU is counted on the same cores as the client's (a real fleet's server is
    elsewhere)."""
    import multiprocessing

    from benchmarks.orgs import Timing, fleet_sandbox, handle_for, logins_for
    from remediate import fleet
    from remediate.builtin import builtin_bindings
    from remediate.enforce import Target
    from remediate.logging import configure
    from remediate.orgs import bind_playbooks

    configure("json", "warning")  # as the CLI runs without -v: no per-org info lines
    _private_dirs()
    sandbox, members, spec = fleet_sandbox(orgs)
    timing = Timing(sandbox)
    processes = processes or fleet.available_cores()
    shared = multiprocessing.get_context("fork").Value("l", 0)  # requests, over every process
    # the CPU the in-process sandbox spent answering, over every process: each request's own
    # thread CPU time (time.thread_time: the injected latency is a sleep and costs none)
    sandbox_cpu = multiprocessing.get_context("fork").Value("d", 0.0)
    inner = sandbox.handle

    def counted(request: Any) -> Any:
        started = time.thread_time()
        try:
            return inner(request)
        finally:
            spent = time.thread_time() - started
            with shared.get_lock():
                shared.value += 1
            with sandbox_cpu.get_lock():
                sandbox_cpu.value += spent

    sandbox.handle = counted  # type: ignore[method-assign]
    from remediate.salesforce import mdclient

    mdclient.wsdl_document()  # parsed once per process; not per org
    rss_sandbox = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sandbox.latency_s = latency_ms / 1000

    def opener(org: Any) -> Callable[[], Any]:
        def open_() -> Any:
            steps, digest = bind_playbooks(builtin_bindings(spec, org.my_domain_url, {}), None)
            return handle_for(org, sandbox, steps, digest, logins_for(spec),
                              name=org.my_domain)
        return open_

    runner = "remediate.fleet.run_fleet"
    journal = _journal()

    def run(prefix: str) -> None:
        """One run of the whole fleet; its figures under ``prefix``."""
        shared.value, sandbox_cpu.value = 0, 0.0
        timing.reset()
        load_before = _load()
        start = time.perf_counter()
        cpu = time.process_time()
        children_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        journalled_before = sum(1 for e in journal.read() if e["event"] == "enforce")
        lock_dir = Path(tempfile.mkdtemp(prefix="remediate-bench-locks-"))
        report = fleet.run_fleet([Target(o.my_domain, opener(o)) for o in members],
                                 journal=journal, processes=processes, workers=workers,
                                 lock_dir=lock_dir)
        checked = sum(1 for r in report.reports if r.outcome == "pending approval")
        failed = [r for r in report.reports if r.outcome == "failed"]
        if failed:
            raise SystemExit(f"{len(failed)} fleet org(s) failed: {failed[0].message}")
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = time.process_time() - cpu + (after.ru_utime + after.ru_stime
                                           - children_cpu.ru_utime - children_cpu.ru_stime)
        journalled = sum(1 for e in journal.read() if e["event"] == "enforce") - journalled_before
        emit(f"{prefix}.load", f"{load_before} before, {_load()} after", "(1/5/15 min)")
        emit(f"{prefix}.orgs_audited", checked, "orgs")
        emit(f"{prefix}.orgs_journalled", journalled, "enforce records in the one journal")
        emit(f"{prefix}.wall", wall, "s")
        emit(f"{prefix}.orgs_per_s", orgs / max(wall, 1e-9), "orgs/s")
        emit(f"{prefix}.cpu", cpu, "s (every process: client and in-process sandbox together)")
        emit(f"{prefix}.cpu_sandbox", sandbox_cpu.value, "s (the in-process sandbox answering)")
        emit(f"{prefix}.cpu_client", cpu - sandbox_cpu.value,
             "s (remediate alone: what a real fleet's orgs cost this machine)")
        emit(f"{prefix}.cpu_per_org", 1000 * cpu / max(1, orgs), "ms (client and sandbox)")
        emit(f"{prefix}.cpu_client_per_org", 1000 * (cpu - sandbox_cpu.value) / max(1, orgs),
             "ms (client alone)")
        emit(f"{prefix}.requests", shared.value, "requests")
        emit(f"{prefix}.round_trips_per_org", timing.round_trips() / max(1, orgs)
             if workers == 1 and processes == 1 else "n/a (orgs overlap)", "")

    emit("fleet.runner", runner)
    emit("fleet.orgs", orgs, "orgs")
    emit("fleet.processes", processes, "processes")
    emit("fleet.workers", workers, "orgs at once in each process")
    emit("fleet.cores", fleet.available_cores(), "cores available")
    emit("fleet.latency", latency_ms, "ms per request")
    # A cron fleet (enforce on a schedule) runs again within the day, so each org's negotiated
    # API version is kept (ADR 0039) and no version list is asked for: the first run, against
    # orgs never seen (fresh cache directories), is the warm-up and is printed as fleet.cold.*;
    # the second, the steady state, is the measured run (fleet.*). ADR 0046.
    run("fleet.cold")
    emit("fleet.run", "second run (steady state: versions kept from the first run, ADR 0046)")
    run("fleet")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    emit("fleet.peak_rss", peak, "MB (the parent process)")
    emit("fleet.peak_rss_child", after.ru_maxrss / 1024, "MB (the largest forked process)")
    emit("fleet.sandbox_rss", rss_sandbox, "MB (the emulated orgs and the parsed WSDL, "
                                           "before the run)")
    emit("fleet.run_rss_growth", peak - rss_sandbox, "MB")


# ---- start-up -------------------------------------------------------------------------------


def part_startup(runs: int = 10, install: str = "wheel") -> None:
    """Fresh processes of the installed ``remediate`` script (benchmarks/wholeprocess.py's
    install: by default the wheel in a fresh venv, what users run), without
    PYTHONDONTWRITEBYTECODE. The first ``audit --help`` is rendered by typer and fills the help
    cache (ADR 0038); the median and fastest are of the runs after it; ``uncached`` runs each
    with an empty cache directory (what every help request cost before the cache)."""
    from benchmarks import wholeprocess

    python = wholeprocess.installed(install)
    emit("startup.install", install)
    script = python.with_name("remediate")
    base = [str(script)] if script.exists() else [str(python), "-m", "remediate"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    work = Path(tempfile.mkdtemp(prefix="remediate-bench-startup-"))

    def timed(args: list[str], **extra: str) -> float:
        start = time.perf_counter()
        subprocess.run(args, capture_output=True, check=True, cwd=work, env={**env, **extra})
        return time.perf_counter() - start

    for label, args in (("help", ["--help"]), ("audit_help", ["audit", "--help"])):
        times = [timed([*base, *args]) for _ in range(runs + 1)]
        emit(f"startup.{label}.first", times[0] * 1000, "ms (typer renders, cache filled)")
        emit(f"startup.{label}.median", statistics.median(times[1:]) * 1000, "ms (cached)")
        emit(f"startup.{label}.min", min(times[1:]) * 1000, "ms (cached)")
    uncached = [timed([*base, "audit", "--help"], XDG_CACHE_HOME=str(work / f"empty{i}"))
                for i in range(max(3, runs // 2))]
    emit("startup.audit_help.uncached.median", statistics.median(uncached) * 1000,
         "ms (empty cache: typer renders)")
    emit("startup.python_itself.median",
         statistics.median(timed([str(python), "-c", "pass"]) for _ in range(runs)) * 1000, "ms")


# ---- the targets table (issue 17's acceptance) ---------------------------------------------

BEGIN, END = "<!-- targets:begin (benchmarks/run.py --write-doc) -->", "<!-- targets:end -->"


def _load() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def _machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({model}), Python {sys.version.split()[0]}, {sys.platform}"


def _figure(name: str) -> float | None:
    """A number this run printed, or None (not measured, or printed as text)."""
    value = FIGURES.get(name)
    return float(value) if isinstance(value, int | float) else None


def targets_table(quick: bool, load_before: str) -> str:
    def row(target: str, shown: str, ok: bool | None, note: str = "") -> str:
        met = "not measured" if ok is None else ("**yes**" if ok else "**no**")
        return f"| {target} | {shown} | {met}{' (' + note + ')' if note else ''} |"

    rows = []
    for ms, want in ((100, 2.0), (300, 3.0)):
        ratio = _figure(f"whole.ratio.batched_over_remediate.{ms}ms")
        mine, theirs = _figure(f"whole.remediate.{ms}ms.wall"), \
            _figure(f"whole.batched.{ms}ms.wall")
        rows.append(row(f"whole-process audit over HTTPS, at least {want:g}x faster than the "
                        f"batched script at {ms} ms",
                        f"{ratio:.1f}x ({mine:.2f} s against {theirs:.2f} s)"
                        if ratio and mine and theirs else "-",
                        None if ratio is None else ratio >= want))
    calls = _figure("demo.audit.latency_100ms.api_calls")
    kept = _figure("demo.audit.version_kept.latency_100ms.api_calls")
    rows.append(row("audit API calls at most 3 (if the Tooling composite is documented for "
                    "these reads)", (f"{calls:g}" + (f" ({kept:g} with the version kept)"
                                                     if kept is not None else ""))
                    if calls is not None else "-",
                    None if calls is None else calls <= 3,
                    "see 'Fewer calls' above: not reducible by documented means today"))
    rounds = _figure("demo.apply_verify.session.latency_100ms.round_trips")
    rows.append(row("apply + verify at most 5 round trips in one session",
                    f"{rounds:g}" if rounds is not None else "-",
                    None if rounds is None else rounds <= 5))
    orgs, wall = _figure("fleet.orgs"), _figure("fleet.wall")
    cores = _figure("fleet.cores")
    if orgs and wall:
        shown = (f"{wall:.1f} s for {orgs:g} orgs ({_figure('fleet.processes') or 1:g} processes x "
                 f"{_figure('fleet.workers') or 0:g} workers, {cores or 0:g} cores)")
        cold = _figure("fleet.cold.wall")
        # the measured run is the second: a cron fleet keeps each org's API version (ADR 0046)
        shown += (", the steady-state (second) run, versions kept; the first run against new "
                  f"orgs, one request more per org: {cold:.1f} s" if cold else "")
        ok = wall < 20 if orgs >= 2000 else None
        note = "" if orgs >= 2000 else "--quick runs fewer orgs"
    else:
        shown, ok, note = "-", None, ""
    rows.append(row("2,000 orgs at 100 ms under 20 s on 2 cores", shown, ok, note))
    helpms = _figure("startup.audit_help.median")
    rows.append(row("`remediate audit --help` under 120 ms",
                    f"{helpms:.0f} ms median, {_figure('startup.audit_help.min') or 0:.0f} ms fastest"
                    f" from the help cache; {_figure('startup.audit_help.uncached.median') or 0:.0f}"
                    " ms when typer renders it (first time, or after a change)"
                    f" (Python itself: {_figure('startup.python_itself.median') or 0:.0f} ms;"
                    f" {FIGURES.get('startup.install', '?')} install)"
                    if helpms else "-", None if helpms is None else helpms < 120))
    big = _figure("scale.audit.integrations_200.in_flight_25.latency_100ms.round_trips")
    big_calls = _figure("scale.audit.integrations_200.in_flight_25.latency_100ms.api_calls")
    rows.append(row("200 integrations stay at 2 round trips (calls in flight per org "
                    "configurable)", f"{big:g} round trips, {big_calls:g} calls at "
                    f"in_flight 25 (at 8: "
                    f"{_figure('scale.audit.integrations_200.in_flight_8.latency_100ms.round_trips') or 0:g})"
                    if big is not None and big_calls is not None else "-",
                    None if big is None else big <= 2))
    load_after = _load()
    head = [f"Run: `benchmarks/run.py{' --quick' if quick else ''}`, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, on {_machine()}; load "
            f"average (1/5/15 min) {load_before} before and {load_after} after"
            + (" (the machine was shared with other work: wall times are inflated)"
               if _busy(load_before) or _busy(load_after) else "") + ".",
            "", "| target | measured | met? |", "|---|---|---|"]
    return "\n".join(head + rows)


def _busy(load: str) -> bool:
    try:
        return float(load.split(" / ")[0]) > (os.cpu_count() or 1) * 0.5
    except ValueError:
        return True


WHOLE_BEGIN = "<!-- whole:begin (benchmarks/run.py --write-doc) -->"
WHOLE_END = "<!-- whole:end -->"
INPROC_BEGIN = "<!-- inprocess:begin (benchmarks/run.py --write-doc) -->"
INPROC_END = "<!-- inprocess:end -->"

CLIENTS = (("remediate", "remediate"), ("batched", "(a) batched script"),
           ("sf_cli", "(b) Salesforce CLI, one command per check"), ("naive", "(c) naive script"))


def whole_table() -> str | None:
    """The whole-process figures of this run, client by client, then the ratios pair by pair."""
    if not any(k.startswith("whole.remediate.") for k in FIGURES):
        return None
    rows = ["| demo audit, whole process | wall at 100 ms (fastest) | wall at 300 ms (fastest) "
            "| CPU at 100 ms (client) | requests | TLS connections |", "|---|---|---|---|---|---|"]
    for key, label in CLIENTS:
        if _figure(f"whole.{key}.100ms.wall") is None:
            rows.append(f"| {label} | not run (the run's output says why) | | | | |")
            continue
        cells = []
        for ms in (100, 300):
            wall, fastest = _figure(f"whole.{key}.{ms}ms.wall"), _figure(f"whole.{key}.{ms}ms.wall_min")
            cells.append(f"{wall:.2f} s ({fastest:.2f} s)" if wall and fastest else "-")
        cpu = _figure(f"whole.{key}.100ms.cpu")
        req = _figure(f"whole.{key}.100ms.requests")
        con = _figure(f"whole.{key}.100ms.connections")
        rows.append(f"| {label} | {cells[0]} | {cells[1]} | "
                    f"{f'{cpu:.2f} s' if cpu is not None else '-'} | "
                    f"{f'{req:g}' if req is not None else '-'} | "
                    f"{f'{con:g}' if con is not None else '-'} |")
    rows += ["", "| pair (wall time, medians) | 100 ms | 300 ms |", "|---|---|---|"]
    for key, label in CLIENTS[1:]:
        ratios = [_figure(f"whole.ratio.{key}_over_remediate.{ms}ms") for ms in (100, 300)]
        if any(r is not None for r in ratios):
            rows.append(f"| {label.split(', ')[0]} / remediate | "
                        + " | ".join(f"{r:.1f}x" if r is not None else "-" for r in ratios)
                        + " |")
    return "\n".join(rows)


def inprocess_table() -> str | None:
    """The in-process figures (one warm process, no TCP or TLS, the sandbox in the same
    process): requests, API calls and round trips per command at 100 ms."""
    flows = (("demo.audit", "`audit`, first command (no API version kept)"),
             ("demo.audit.version_kept", "`audit`, within 24 h of another command"),
             ("demo.apply_verify.session", "apply + verify, one session"),
             ("demo.apply_verify.cli", "apply + verify, two commands (`apply --yes`, `verify`)"),
             ("naive.audit", "naive `audit` (one call per check)"),
             ("naive.apply_verify", "naive apply + verify"))
    rows = ["| demo org, 100 ms per request | round trips | requests (oauth / REST / Tooling "
            "/ SOAP) | API calls | wall |", "|---|---|---|---|---|"]
    for key, label in flows:
        p = f"{key}.latency_100ms"
        if _figure(f"{p}.requests") is None:
            continue
        apis = " / ".join(f"{_figure(f'{p}.requests.{a}') or 0:g}" for a in APIS)
        rows.append(f"| {label} | {_figure(f'{p}.round_trips') or 0:g} | "
                    f"{_figure(f'{p}.requests') or 0:g} ({apis}) | {_figure(f'{p}.api_calls') or 0:g} | "
                    f"{(_figure(f'{p}.wall') or 0) / 1000:.2f} s |")
    if len(rows) == 2:
        return None
    sizes = sorted({int(k.split("integrations_")[1].split(".")[0]) for k in FIGURES
                    if k.startswith("scale.audit.integrations_") and ".in_flight_" not in k})
    if sizes:
        rows += ["", "| integrations (audit, 100 ms) | round trips | requests | wall | naive "
                 "requests |", "|---|---|---|---|---|"]
        for n in sizes:
            p = f"scale.audit.integrations_{n}.latency_100ms"
            naive = _figure(f"scale.naive_audit.integrations_{n}.requests")
            rows.append(f"| {n} | {_figure(f'{p}.round_trips') or 0:g} | "
                        f"{_figure(f'{p}.requests') or 0:g} | {(_figure(f'{p}.wall') or 0) / 1000:.2f} s"
                        f" | {f'{naive:g}' if naive is not None else '-'} |")
    return "\n".join(rows)


def _replace(text: str, begin: str, end: str, body: str | None, path: Path) -> str:
    if body is None:
        return text
    if begin not in text or end not in text:
        raise SystemExit(f"{path}: no {begin} ... {end} section to replace")
    before, rest = text.split(begin, 1)
    return f"{before}{begin}\n{body}\n{end}{rest.split(end, 1)[1]}"


def write_doc(path: Path, table: str) -> None:
    """Replace the targets table, and the whole-process and in-process tables of the parts
    this run measured, in docs/performance.md."""
    text = path.read_text(encoding="utf-8")
    text = _replace(text, BEGIN, END, table, path)
    text = _replace(text, WHOLE_BEGIN, WHOLE_END, whole_table(), path)
    text = _replace(text, INPROC_BEGIN, INPROC_END, inprocess_table(), path)
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", action="append", choices=PARTS,
                        help="Run only this part (repeatable); default: all.")
    parser.add_argument("--quick", action="store_true",
                        help="Every figure, smaller: 200 fleet orgs, 1 whole-process run per "
                             "client, 3 start-up runs (a few minutes less).")
    parser.add_argument("--write-doc", type=Path, nargs="?", const=HERE.parent / "docs" /
                        "performance.md", default=None,
                        help="Replace the targets table in docs/performance.md (or the file "
                             "given) with this run's.")
    parser.add_argument("--orgs", type=int, default=None,
                        help="Fleet size (default 2000; 200 with --quick).")
    parser.add_argument("--workers", type=int, default=16,
                        help="Orgs worked on at once in each fleet process (default 16, as enforce).")
    parser.add_argument("--latency-ms", type=int, default=100,
                        help="Fleet latency per request (default 100).")
    parser.add_argument("--processes", type=int, default=None,
                        help="Fleet processes (default: the cores available).")
    parser.add_argument("--install", choices=("wheel", "editable"), default="wheel",
                        help="startup and whole: measure the wheel installed in a fresh venv "
                             "(default, what users run) or this checkout's editable install.")
    parser.add_argument("--fleet-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fleet_child:
        fleet_child(args.orgs, args.workers, args.latency_ms, args.processes)
        return
    _private_dirs()
    load_before = _load()
    parts = args.part or list(PARTS)
    results: dict[str, dict[str, Measure]] = {}
    if "demo" in parts:
        part_demo(results)
    if "naive" in parts:
        part_naive(results)
    if "scale" in parts:
        part_scale((1, 200) if args.quick else (1, 10, 50, 200))
    if "fleet" in parts:
        part_fleet(args.orgs or (200 if args.quick else 2000), args.workers, args.latency_ms,
                   args.processes)
    if "startup" in parts:
        part_startup(3 if args.quick else 10, args.install)
    if "whole" in parts:  # whole processes over HTTPS (benchmarks/wholeprocess.py)
        from benchmarks import wholeprocess

        out = wholeprocess.run([100, 300], 1 if args.quick else 3, 0, args.install)
        for name, by_latency in out.items():
            for latency, figures in by_latency.items():
                for key, value in figures.items():
                    FIGURES[f"whole.{name}.{latency}ms.{key}"] = value
        for other in ("batched", "sf_cli", "naive"):  # sf_cli only where sf is installed
            for latency in (100, 300):
                if latency in out.get(other, {}) and latency in out.get("remediate", {}):
                    FIGURES[f"whole.ratio.{other}_over_remediate.{latency}ms"] = \
                        out[other][latency]["wall"] / out["remediate"][latency]["wall"]
    table = targets_table(args.quick, load_before)
    print("\n" + table, flush=True)
    if args.write_doc is not None:
        write_doc(args.write_doc, table)


if __name__ == "__main__":
    main()
