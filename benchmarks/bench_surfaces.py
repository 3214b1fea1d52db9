"""Benchmark of the surface-energy engine (static protocol), printed in one run:

1. all slabs with an OUC, in-process (serial): wall time, summed raw model-call time measured inside the same run
   (``model_seconds`` of every result: the two ``model.energy`` calls), their ratio (target <= 1.1), peak RSS
   (target < 4 GB);
2. the same on a Dask LocalCluster with 1 worker and with 2 workers (target speedup >= 1.8x); the cluster is
   started and the model loaded on every worker before the clock starts, so the figures are throughput;
3. a warm rerun served entirely from the store (target < 10 s), including building the tasks and the results table.

    OMP_NUM_THREADS=1 UIPBENCH_DATA=/work/shared/data nice -n 19 .venv/bin/python benchmarks/bench_surfaces.py
    ... --limit 100            # a subset, for a quick look
    ... --skip-dask

Each timed run writes into a fresh temporary store (cold). The slab references (OUC + MP match) are taken from the
project's result store when present (they are not part of the static protocol) and timed separately otherwise.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _rss_gb(who=resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024**2  # ru_maxrss is in KiB on Linux


def _model_seconds(store, kind: str, model: str) -> tuple[float, int, int]:
    f = store.frame(kind, model)
    ok = f[f["status"] == "ok"]
    return float(ok["model_seconds"].sum()), len(ok), int((f["status"] != "ok").sum())


def _warm_worker(name: str) -> None:
    from uipbench import engine
    from uipbench.models import load_model

    engine.single_thread()
    load_model(name)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="chgnet-0.3.0")
    ap.add_argument("--limit", type=int, default=None, help="only the first N slabs")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-dask", action="store_true")
    args = ap.parse_args(argv)

    from uipbench import engine, paths
    from uipbench.models import load_model
    from uipbench.store import ResultStore
    from uipbench.surfaces import protocols
    from uipbench.surfaces.slabs import load_slabs

    t0 = time.perf_counter()
    slabs = load_slabs()
    if args.limit:
        slabs = slabs.head(args.limit).reset_index(drop=True)
    main_store = paths.results_dir() / "results.sqlite"
    ref_store = ResultStore(main_store if main_store.exists() else Path(tempfile.mkdtemp()) / "refs.sqlite")
    t_ref = time.perf_counter()
    refs = protocols.references(slabs, ref_store, progress=False)
    t_ref = time.perf_counter() - t_ref
    print(
        f"slabs: {len(slabs)} read in {t_ref and time.perf_counter() - t0 - t_ref:.1f} s; references "
        f"(OUC + MP match) in {t_ref:.1f} s from {ref_store.path}; OUC found {int(refs['ouc_found'].sum())}",
        flush=True,
    )
    load_model(args.model)  # load outside the clock (once per process, cached)
    kind = "surface-static"

    # 1. serial, cold store
    tmp = Path(tempfile.mkdtemp(prefix="bench_surfaces_"))
    store = ResultStore(tmp / "serial.sqlite")
    tasks, _keys = protocols.surface_tasks(refs, slabs, args.model, "static")
    t = time.perf_counter()
    summary = engine.run_tasks(protocols.evaluate, tasks, store, backend="serial", progress=False)
    wall = time.perf_counter() - t
    model_s, n_ok, n_bad = _model_seconds(store, kind, args.model)
    print(f"[serial] {summary}", flush=True)
    print(
        f"[serial] {n_ok} slabs ok, {n_bad} failed; wall {wall:.1f} s; summed model calls {model_s:.1f} s; "
        f"({1000 * model_s / max(n_ok, 1):.1f} ms per slab); ratio wall/model {wall / model_s:.3f} (target <= 1.1); "
        f"peak RSS {_rss_gb():.2f} GB (target < 4 GB)",
        flush=True,
    )

    # 3. warm rerun from the store (tasks rebuilt from scratch, results table assembled)
    t = time.perf_counter()
    tasks2, keys2 = protocols.surface_tasks(refs, slabs, args.model, "static")
    summary2 = engine.run_tasks(protocols.evaluate, tasks2, store, backend="serial", progress=False)
    table = protocols.results_table(refs, store, {(args.model, "static"): keys2})
    warm = time.perf_counter() - t
    print(
        f"[warm]   {summary2.skipped}/{summary2.total} from store, {summary2.ok} computed; results table "
        f"{len(table)} rows; {warm:.2f} s (target < 10 s)",
        flush=True,
    )

    # 2. dask, 1 worker vs n workers, cold stores, clusters warmed up before timing
    if not args.skip_dask:
        from dask.distributed import Client

        walls = {}
        for nw in (1, args.workers):
            cluster = engine.local_cluster(nw)  # the engine's own settings (QUIET_DASK)
            client = Client(cluster)
            client.run(_warm_worker, args.model)  # load the model on every worker outside the clock
            s = ResultStore(tmp / f"dask{nw}.sqlite")
            t = time.perf_counter()
            summ = engine.run_tasks(protocols.evaluate, tasks, s, backend="dask", scheduler=client, progress=False)
            walls[nw] = time.perf_counter() - t
            ms, n_ok, n_bad = _model_seconds(s, kind, args.model)
            print(
                f"[dask {nw}w] {summ}; summed model calls {ms:.1f} s ({1000 * ms / max(n_ok, 1):.1f} ms per slab; "
                f"a rise over the serial figure means the workers compete for cores)",
                flush=True,
            )
            client.close()
            cluster.close()
        print(
            f"[dask]   speedup {args.workers} workers vs 1: {walls[1] / walls[args.workers]:.2f}x "
            f"(target >= 1.8x; {walls[1]:.1f} s vs {walls[args.workers]:.1f} s); cores: {os.cpu_count()}, "
            f"load average now {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    print(f"peak RSS: this process {_rss_gb():.2f} GB, largest child {_rss_gb(resource.RUSAGE_CHILDREN):.2f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
