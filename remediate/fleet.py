"""A fleet over several processes: ``enforce`` on a machine with more than one core (ADR 0035).

One process saturates a core at 16-32 orgs in flight (issue 17): the work waits on the
network, but signing in, parsing answers, diffing and planning are CPU, and the GIL runs one
thread at a time. ``run_fleet`` here splits the targets over ``processes`` forked processes
(round-robin, in the targets' order), each running ``enforce.run_fleet`` over its part with
its own thread pool of ``workers`` orgs at once. Shards (``--shard I/N``) still split the
fleet across machines first; this only splits one machine's part across its cores.

What stays true across processes:

* **one fleet run id** for every org, made here and given to every process;
* **one journal**: each record is one ``write`` of one line under an ``flock`` of the journal
  file (``Journal.append``), so records of different processes never interleave;
* **org locks** are ``flock`` locks already (``enforce.org_lock``): they hold between
  processes as between threads;
* **a kill is safe**: SIGTERM or Ctrl-C in the parent is passed to every process; each then
  starts no new org, lets the orgs in flight finish (an apply is never cut between its journal
  intent and outcome by this runner) and reports them; the parent collects those reports, then
  exits 130. A process whose parent dies (even by SIGKILL) gets SIGTERM from the kernel
  (Linux's ``PR_SET_PDEATHSIG``) and does the same. An org whose process died before
  reporting is reported ``failed`` with a message saying its outcome is in the journal.

Processes are forked (no re-import, no pickling of the targets' openers); where ``fork`` is not
available the fleet runs in one process.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from remediate import enforce
from remediate.enforce import FleetReport, OrgReport, Target
from remediate.journal import Journal, new_run_id

if TYPE_CHECKING:
    from remediate.notify import Notifier

#: The exit code of a process the runner stopped (as the CLI's for Ctrl-C and SIGTERM).
EXIT_INTERRUPTED = 130


def available_cores(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """Cores this process may run on: its CPU affinity where the OS has one, and no more than
    its cgroup's CPU quota (a container limited to 2 CPUs on a 16-core node gets 2; cgroup
    v2's ``cpu.max`` is ``"<quota> <period>"`` in microseconds, or ``"max <period>"``)."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        cores = max(1, os.cpu_count() or 1)
    try:
        quota, period = cpu_max.read_text(encoding="ascii").split()[:2]
        if quota != "max" and int(period) > 0:
            cores = min(cores, max(1, -(-int(quota) // int(period))))  # rounded up
    except (OSError, ValueError):
        pass  # no cgroup v2 quota here: the affinity alone
    return cores


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def run_fleet(targets: Sequence[Target], *, journal: Journal, processes: int | None = None,
              workers: int = 16, kill: str | None = None, lock_dir: Path | None = None,
              notifier: Notifier | None = None,
              on_done: Callable[[OrgReport], None] | None = None) -> FleetReport:
    """Enforce every target over ``processes`` processes (default: the cores available), each
    with ``workers`` orgs at once; reports come back in the targets' order."""
    count = min(processes or available_cores(), len(targets))
    if count <= 1 or not can_fork():
        return enforce.run_fleet(targets, journal=journal, workers=workers, kill=kill,
                                 lock_dir=lock_dir, notifier=notifier, on_done=on_done)
    fleet_run = new_run_id()
    for stream in (sys.stdout, sys.stderr):  # a forked child must not write the parent's buffer
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    gc.freeze()  # the forked children share these pages instead of copying them on a collection
    context = multiprocessing.get_context("fork")
    parent = os.getpid()
    children: list[tuple[Any, Connection]] = []
    for part in range(count):
        indexes = list(range(part, len(targets), count))
        reader, writer = context.Pipe(duplex=False)
        proc = context.Process(
            target=_child, name=f"remediate-enforce-{part}",
            args=(targets, indexes, writer, parent, fleet_run, journal, workers, kill, lock_dir,
                  notifier))
        proc.start()
        writer.close()
        children.append((proc, reader))
    reports: dict[int, OrgReport] = {}
    try:
        _collect([reader for _, reader in children], reports, on_done)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (runguard.Terminated): stop, but cleanly
        with _signals_ignored():  # a second signal must not abandon the reports in flight
            for proc, _ in children:
                if proc.is_alive():
                    with contextlib.suppress(OSError):
                        os.kill(proc.pid, signal.SIGTERM)
            _collect([reader for _, reader in children], reports, on_done)
            for proc, _ in children:
                proc.join()
        raise
    for proc, _ in children:
        proc.join()
    out = []
    for i, target in enumerate(targets):
        report = reports.get(i)
        if report is None:
            proc = children[i % count][0]
            report = OrgReport(target.name, "failed", "",
                               message=f"the fleet process for this org ended (exit "
                                       f"{proc.exitcode}) before reporting it; the journal has "
                                       "what was done")
        out.append(report)
    return FleetReport(fleet_run, out, kill)


def _collect(readers: list[Connection], reports: dict[int, OrgReport],
             on_done: Callable[[OrgReport], None] | None) -> None:
    """Read reports until every child has closed its end (finished or died)."""
    open_ = list(readers)
    while open_:
        for ready in wait(open_):
            assert isinstance(ready, Connection)
            try:
                index, report = ready.recv()
            except (EOFError, OSError):
                open_.remove(ready)
                ready.close()
                continue
            reports[index] = report
            if on_done is not None:
                on_done(report)


def _child(targets: Sequence[Target], indexes: list[int], conn: Connection, parent: int,
           fleet_run: str, journal: Journal, workers: int, kill: str | None,
           lock_dir: Path | None, notifier: Notifier | None) -> None:
    stopping: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        """The first SIGTERM or SIGINT stops the part (no new org); later ones are ignored,
        so the orgs in flight always finish and are reported."""
        if stopping:
            return
        stopping.append(signum)
        from remediate.runguard import Terminated

        raise Terminated()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    _die_with_parent(parent)
    sending = threading.Lock()
    position = {targets[i].name: i for i in indexes}

    def sent(report: OrgReport) -> None:
        with sending, contextlib.suppress(OSError, ValueError):
            conn.send((position[report.org], report))

    code = 0
    try:
        enforce.run_fleet([targets[i] for i in indexes], journal=journal, workers=workers,
                          kill=kill, lock_dir=lock_dir, notifier=notifier, on_done=sent,
                          fleet_run=fleet_run)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    finally:
        with sending:
            conn.close()
    if code:
        sys.exit(code)


@contextlib.contextmanager
def _signals_ignored() -> Any:
    previous: list[tuple[signal.Signals, Any]] = []
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: nothing to ignore
                previous.append((signum, signal.signal(signum, signal.SIG_IGN)))
        yield
    finally:
        for signum, handler in previous:
            signal.signal(signum, handler)


def _die_with_parent(parent: int) -> None:
    """Ask the kernel for SIGTERM when the parent dies (Linux); stop now if it already has."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)
