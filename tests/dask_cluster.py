"""An external dask.distributed cluster of separate processes, for tests and benchmarks.

``dask scheduler`` and ``dask worker`` run as their own processes on
127.0.0.1, each in a working folder of its own (not the caller's), as they
would on other machines: nothing of the caller's process (working directory,
environment settings, imported modules) reaches them. The scheduler picks a
free port and writes it to a scheduler file; every wait is bounded, and the
processes are always stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Bounds, not targets: a loaded 2-core machine starts a worker in 2-10 s.
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0


@dataclass
class ExternalCluster:
    """A running external cluster.

    Attributes
    ----------
    address : str
        The scheduler's ``tcp://127.0.0.1:PORT``.
    worker_dirs : list of Path
        Each worker's working folder.
    settings_before : dict
        For a caller to keep what it saw before its runs.
    """

    address: str
    worker_dirs: list[Path]
    settings_before: dict | None = None


def _command(*args: str) -> list[str]:
    """``dask ARGS...`` of this interpreter's environment."""
    return [str(Path(sys.executable).with_name("dask")), *args]


def _signal(proc: subprocess.Popen, sig: signal.Signals) -> None:
    """``sig`` to ``proc``'s process group: a nanny and the worker it started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _stop(processes: list[subprocess.Popen]) -> None:
    for proc in processes:
        _signal(proc, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for proc in processes:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for proc in processes:  # what did not stop in time, and any child left
        _signal(proc, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT_S)


@contextlib.contextmanager
def external_cluster(
    folder: Path,
    n_workers: int = 2,
    *,
    nthreads: int = 1,
    worker_prefix: Sequence[str] = (),
) -> Iterator[ExternalCluster]:
    """Start ``dask scheduler`` and ``n_workers`` ``dask worker`` processes.

    Parameters
    ----------
    folder : Path
        Parent of the scheduler's and each worker's working folder (created).
    n_workers : int
        Worker processes, each with its nanny.
    nthreads : int
        Threads per worker.
    worker_prefix : sequence of str
        A command each worker is started under (such as ``unshare`` with a
        mount of its own), or nothing.

    Yields
    ------
    ExternalCluster
    """
    from dask.distributed import Client

    folder.mkdir(parents=True, exist_ok=True)
    scheduler_file = folder / "scheduler.json"
    logs = folder / "logs"
    logs.mkdir(exist_ok=True)
    # Nothing of this process's Dask config or allocator settings: a local
    # cluster started earlier leaves both in os.environ (its nanny sets the
    # MALLOC_* variables here, and DASK_INTERNAL_INHERIT_CONFIG carries the
    # config to spawned workers), which other machines would not have.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "DASK_"))
    }
    processes: list[subprocess.Popen] = []

    def start(name: str, cmd: list[str]) -> None:
        cwd = folder / name
        cwd.mkdir(exist_ok=True)
        with open(logs / f"{name}.log", "wb") as log:  # the child keeps its copy
            processes.append(
                subprocess.Popen(  # noqa: S603 the environment's own dask command
                    cmd,
                    cwd=cwd,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # a group of its own, stopped whole
                )
            )

    try:
        start(
            "scheduler",
            _command(
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(scheduler_file),
            ),
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not scheduler_file.exists():
            if processes[0].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "dask scheduler did not start: "
                    + (logs / "scheduler.log").read_text(errors="replace")[-2000:]
                )
            time.sleep(0.05)
        address = json.loads(scheduler_file.read_text())["address"]
        worker_dirs = []
        for k in range(n_workers):
            name = f"worker{k}"
            start(
                name,
                [
                    *worker_prefix,
                    *_command(
                        "worker",
                        address,
                        "--host",
                        "127.0.0.1",
                        "--no-dashboard",
                        "--nthreads",
                        str(nthreads),
                        "--nworkers",
                        "1",
                        "--name",
                        name,
                    ),
                ],
            )
            worker_dirs.append(folder / name)
        with Client(address, timeout="30s") as client:
            try:
                client.wait_for_workers(
                    n_workers, timeout=max(1.0, deadline - time.monotonic())
                )
            except TimeoutError as err:
                text = " | ".join(
                    (logs / f"{d.name}.log").read_text(errors="replace")[-800:]
                    for d in worker_dirs
                )
                raise RuntimeError(f"dask workers did not join: {text}") from err
        yield ExternalCluster(address, worker_dirs)
    finally:
        _stop(processes[::-1])
