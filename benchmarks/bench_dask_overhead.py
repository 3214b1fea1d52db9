"""Benchmark: where a task loses time on a Dask worker (issue 14), printed as ratios measured in one run.

One CHGNet energy of a 24-atom Cu(111) slab, repeated, timed inside the task (the model loaded and warmed first):

1. in-process (the serial backend);
2. in a process-pool worker (the ``process`` backend: the task runs in the worker's main thread);
3. on a 1-worker Dask ``LocalCluster`` with Dask's default settings, as a submitted task (a worker thread) and
   through ``client.run`` (the worker's main thread);
4. the same with the engine's :data:`uipbench.engine.QUIET_DASK` (no statistical profiler, slow tick/monitors).

    OMP_NUM_THREADS=1 UIPBENCH_DATA=/work/shared/data .venv/bin/python benchmarks/bench_dask_overhead.py --calls 30

The ratios need an idle machine (the load average is printed): on a loaded one every extra runnable thread of the
worker (event loop, heartbeats, monitors) takes a share of a core from the task.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

os.environ.setdefault("OMP_NUM_THREADS", "1")


def probe(n: int = 20, model: str = "chgnet-0.3.0") -> float:
    """Seconds per model energy call in this process (after one warm-up call)."""
    from ase.build import fcc111

    from uipbench import engine
    from uipbench.models import load_model

    engine.single_thread()
    m = load_model(model)
    slab = fcc111("Cu", (2, 2, 6), vacuum=8)
    m.energy(slab)
    t = time.perf_counter()
    for _ in range(n):
        m.energy(slab)
    return (time.perf_counter() - t) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=30)
    args = ap.parse_args()
    import dask
    from dask.distributed import Client

    from uipbench import engine

    print(f"load average at start {os.getloadavg()}")
    t = {"in-process": probe(args.calls)}
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        pool.submit(probe, 2).result()
        t["process pool worker"] = pool.submit(probe, args.calls).result()
    for name, cfg in (("dask default", {}), ("dask QUIET_DASK", engine.QUIET_DASK)):
        with dask.config.set(cfg):
            cluster = engine.local_cluster(1) if cfg else _default_cluster()
            client = Client(cluster)
            client.submit(probe, 2, pure=False).result()
            t[f"{name}, task"] = client.submit(probe, args.calls, pure=False).result()
            t[f"{name}, client.run"] = next(iter(client.run(probe, args.calls).values()))
            client.close()
            cluster.close()
    t["in-process (again)"] = probe(args.calls)
    base = t["in-process"]
    for k, v in t.items():
        print(f"{k:32s} {1000 * v:7.1f} ms per call   {v / base:5.2f}x in-process")
    print(f"load average at end {os.getloadavg()}")


def _default_cluster():
    from dask.distributed import LocalCluster

    return LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40)


if __name__ == "__main__":
    main()
