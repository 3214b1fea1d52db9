"""Run many independent evaluations through one code path, in-process, on a process pool or on Dask.

    tasks = [Task(key=make_key(...), kind="surface-static", model="chgnet-0.3.0", item=sid, args=(...)), ...]
    summary = run_tasks(evaluate, tasks, store, backend="dask", n_workers=2)

* Tasks whose key is already in the :class:`~uipbench.store.ResultStore` are skipped (failed ones too, unless
  ``retry_failed``): a rerun costs only the look-up.
* Each finished task is written to the store by the calling process as soon as it completes (one writer, no
  lock contention); a run killed with SIGKILL loses only the tasks in flight.
* ``func(args)`` returns a JSON-able dict, or ``(dict, numpy array)``. An exception inside ``func`` becomes a
  ``failed`` record with its reason; it never stops the other tasks.
* Workers run single-threaded (``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``): on CPU, processes scale and
  threads fight (see NOTES: a 2-thread CHGNet loop on a loaded 2-core machine was 5-20x slower).
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

# plain text bars: they render in executed notebooks and the book without ipywidgets
from tqdm import tqdm

from .store import ResultStore

BACKENDS = ("serial", "process", "dask")


@dataclass(frozen=True)
class Task:
    key: str
    kind: str
    model: str
    item: str
    args: Any = None


@dataclass
class RunSummary:
    total: int = 0
    skipped: int = 0  #: already in the store
    ok: int = 0
    failed: int = 0
    wall_seconds: float = 0.0
    task_seconds: float = 0.0  #: summed wall time inside ``func`` (the raw evaluation cost)
    failures: dict[str, str] = field(default_factory=dict)  #: item -> reason, for this run's failures
    deferred: int = 0  #: missing tasks left for later by ``max_new`` (a compute budget)

    def __str__(self) -> str:
        return (
            f"{self.total} tasks: {self.skipped} from store, {self.ok} computed, {self.failed} failed"
            f"{f', {self.deferred} deferred (budget)' if self.deferred else ''}; "
            f"wall {self.wall_seconds:.1f} s, in-task {self.task_seconds:.1f} s"
        )


_PROGRESS_STREAM = None


def progress_stream():
    """Where progress bars go: the terminal. Inside a Jupyter kernel (papermill, the book) both ``sys.stderr`` and
    file descriptor 2 are captured into the cell output, so the bars go to the kernel's original stderr (the copy
    ipykernel keeps, inherited from the runner's terminal): executed chapters keep one summary line per run
    instead of hundreds of bar refreshes. Where that copy is absent (another frontend), the bars are dropped."""
    global _PROGRESS_STREAM
    if "ipykernel" not in sys.modules:
        return sys.stderr
    if _PROGRESS_STREAM is None:
        fd = getattr(sys.stderr, "_original_stdstream_copy", None)
        _PROGRESS_STREAM = os.fdopen(os.dup(fd), "w", buffering=1) if fd is not None else open(os.devnull, "w")  # noqa: SIM115
    return _PROGRESS_STREAM


def die_with_parent() -> None:
    """Linux: ask the kernel to SIGTERM this process when its parent dies. A killed run must not leave pool
    workers computing for nobody (measured: orphaned GPAW workers ran on for minutes after their run was killed,
    holding both cores). Elsewhere a no-op: the workers exit once the finished task finds the pipe closed."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG
    except OSError:
        pass
    if os.getppid() == 1:  # the parent died before the call
        os._exit(1)


def _pool_worker_init() -> None:
    die_with_parent()
    single_thread()


def single_thread() -> None:
    """Pin this process to one BLAS/torch thread (idempotent)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    try:
        import torch

        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)
    except ImportError:
        pass


def execute(func: Callable, task: Task) -> tuple:
    """Run one task, catching everything: returns (key, status, payload, array, error, seconds)."""
    single_thread()
    t0 = time.perf_counter()
    try:
        out = func(task.args)
        array = None
        if isinstance(out, tuple):
            out, array = out
        return task.key, "ok", out, array, None, time.perf_counter() - t0
    except Exception as exc:  # recorded with its reason, never fatal for the run
        last = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f" (at {os.path.basename(last.filename)}:{last.lineno})" if last else ""
        return task.key, "failed", None, None, f"{type(exc).__name__}: {exc}{where}", time.perf_counter() - t0


def run_tasks(
    func: Callable,
    tasks: Iterable[Task],
    store: ResultStore,
    backend: str = "serial",
    n_workers: int = 1,
    scheduler: Any = None,
    desc: str | None = None,
    retry_failed: bool = False,
    progress: bool = True,
    max_new: int | None = None,
) -> RunSummary:
    """Evaluate ``tasks`` not yet in ``store`` with ``func`` on ``backend``; persist each result at once.

    ``backend``: ``"serial"`` (in-process), ``"process"`` (local pool of ``n_workers`` spawned processes) or
    ``"dask"`` (``scheduler``: a ``distributed.Client``, a scheduler address such as ``"tcp://host:8786"``, or None
    for a LocalCluster of ``n_workers`` single-threaded worker processes). ``max_new``: compute at most that many
    missing tasks (in order) and leave the others for a later call (``summary.deferred``): a chapter whose full run
    costs CPU-hours renders from the stored results within a stated budget.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    t0 = time.perf_counter()
    tasks = list(tasks)
    by_key: dict[str, Task] = {}
    for t in tasks:  # identical keys are the same evaluation: do it once
        by_key.setdefault(t.key, t)
    done = store.existing(by_key, include_failed=not retry_failed)
    todo = [t for k, t in by_key.items() if k not in done]
    summary = RunSummary(total=len(by_key), skipped=len(by_key) - len(todo))
    if max_new is not None and len(todo) > max_new:  # a compute budget: the rest stays "not computed yet"
        summary.deferred = len(todo) - max_new
        todo = todo[:max_new]
    # mininterval: executed notebooks keep every refresh of the bar; a few seconds keeps the book readable
    bar = tqdm(
        total=len(todo),
        desc=desc or (todo[0].kind if todo else "tasks"),
        disable=not progress or not todo,
        smoothing=0.05,
        mininterval=2.0,
        file=progress_stream(),
    )

    def record(result: tuple) -> None:
        key, status, payload, array, error, seconds = result
        t = by_key[key]
        store.put(
            key,
            kind=t.kind,
            model=t.model,
            item=t.item,
            status=status,
            payload=payload,
            array=array,
            error=error,
            seconds=seconds,
        )
        summary.task_seconds += seconds or 0.0
        if status == "ok":
            summary.ok += 1
        else:
            summary.failed += 1
            summary.failures[t.item] = error or ""
        bar.update(1)
        bar.set_postfix(failed=summary.failed, refresh=False)

    try:
        if not todo:
            pass
        elif backend == "serial" or (backend == "process" and n_workers <= 1):
            for t in todo:
                record(execute(func, t))
        elif backend == "process":
            with ProcessPoolExecutor(
                max_workers=n_workers, mp_context=get_context("spawn"), initializer=_pool_worker_init
            ) as pool:
                futures = [pool.submit(execute, func, t) for t in todo]
                for fut in as_completed(futures):
                    record(fut.result())
        else:
            _run_dask(func, todo, record, n_workers, scheduler)
    finally:
        bar.close()
    summary.wall_seconds = time.perf_counter() - t0
    return summary


#: Dask settings of the project's local clusters. The worker's event loop shares the GIL with the task thread: its
#: statistical profiler (a stack sample every 10 ms), its 20 ms tick and its 0.1-0.5 s monitors made one CHGNet slab
#: energy 2.32x slower in a 1-worker LocalCluster than in-process; with these settings 1.29x as a task and 0.96x
#: through client.run (benchmarks/bench_dask_overhead.py, one run on the loaded 2-core machine; a process-pool
#: worker 1.11x). Profiling and monitoring are for dashboards, which the project's runs do not use.
QUIET_DASK = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "5s",
}


def local_cluster(n_workers: int):
    """A Dask ``LocalCluster`` of ``n_workers`` single-threaded worker processes with :data:`QUIET_DASK`."""
    import dask
    from dask.distributed import LocalCluster

    with dask.config.set(QUIET_DASK):
        return LocalCluster(
            n_workers=max(1, n_workers), threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
        )


def _run_dask(func: Callable, todo: list[Task], record: Callable, n_workers: int, scheduler: Any) -> None:
    from dask.distributed import Client
    from dask.distributed import as_completed as dask_as_completed

    own_cluster = None
    if scheduler is None:
        own_cluster = local_cluster(n_workers)
        client = Client(own_cluster)
    elif isinstance(scheduler, str):
        client = Client(scheduler)
    else:
        client = scheduler
    try:
        futures = [client.submit(execute, func, t, pure=False, key=f"uipbench-{t.key}") for t in todo]
        for fut in dask_as_completed(futures):
            record(fut.result())
            fut.release()
    finally:
        if client is not scheduler:
            client.close()
        if own_cluster is not None:
            own_cluster.close()
