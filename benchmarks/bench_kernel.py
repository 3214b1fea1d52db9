"""Benchmark: the 801 x 801 REMatch kernel of the surface slabs on this machine.

    UIPBENCH_DATA=/work/shared/data OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python benchmarks/bench_kernel.py
    ... --n 200 --descriptor chgnet-0.3.0 --block-size 100

Prints: descriptor time, kernel wall time with 1 worker (serial backend) and with 2 worker processes (process
backend; block-parallel speedup), and the time of a second call, served from the on-disk .npz cache. Works in a
temporary result store, so nothing of the project's store is touched. Timings on a shared machine are noisy: the
load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from uipbench.store import ResultStore
from uipbench.surfaces import descriptors as D
from uipbench.surfaces import rematch as K
from uipbench.surfaces.slabs import load_slabs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=0, help="number of slabs (0: all 801)")
    ap.add_argument(
        "--descriptor",
        default="soap-mu2",
        help="soap-mu2 (default: every pair needs the Sinkhorn iteration), soap, chgnet-0.3.0, ...",
    )
    ap.add_argument("--block-size", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="alternate 1-worker and N-worker runs this many times; the minimum of each is reported "
        "(the machine is shared: other jobs' load changes between runs)",
    )
    args = ap.parse_args()

    slabs = load_slabs()
    slabs = slabs[slabs["atoms"].notna()]
    if args.n:
        slabs = slabs.sample(args.n, random_state=0)
    structs = dict(zip(slabs["id"], slabs["atoms"]))
    n_atoms = sum(len(a) for a in structs.values())
    print(
        f"{len(structs)} slabs, {n_atoms} atoms, {len(structs) * (len(structs) + 1) // 2} structure pairs; "
        f"descriptor {args.descriptor}, block size {args.block_size}; load average {os.getloadavg()[0]:.2f}"
    )

    with tempfile.TemporaryDirectory() as tmp:
        store = ResultStore(Path(tmp) / "bench.sqlite")
        t = time.perf_counter()
        keys, failures, _ = D.compute_descriptors(args.descriptor, structs, store, progress=False)
        print(f"descriptors: {time.perf_counter() - t:.1f} s ({len(failures)} failed)")
        keys = list(keys.values())

        def drop_blocks():
            blocks = store.frame(kind=K.BLOCK_KIND)
            if len(blocks):
                store.delete(blocks["key"])

        times: dict[str, list[float]] = {}
        configs = (("1 worker", "serial", 1), (f"{args.workers} workers", "process", args.workers))
        for rep in range(args.repeat):
            for label, backend, workers in configs if rep % 2 == 0 else configs[::-1]:
                drop_blocks()
                r = K.rematch_kernel(
                    keys, store, block_size=args.block_size, backend=backend, n_workers=workers, progress=False
                )
                times.setdefault(label, []).append(r.seconds)
                print(
                    f"kernel, {label:10s}: {r.seconds:7.1f} s wall ({r.summary.total} blocks, in-task "
                    f"{r.summary.task_seconds:.1f} s); load average {os.getloadavg()[0]:.2f}"
                )
        times = {k: min(v) for k, v in times.items()}
        t1, t2 = times["1 worker"], times[f"{args.workers} workers"]
        print(
            f"best of {args.repeat}: 1 worker {t1:.1f} s, {args.workers} workers {t2:.1f} s; block-parallel speedup "
            f"{t1 / t2:.2f}x (includes spawning the pool and importing in each worker)"
        )
        r = K.rematch_kernel(keys, store, block_size=args.block_size, progress=False)
        print(
            f"second call, assembled from the blocks in the result store: {r.seconds:.2f} s "
            f"({r.summary.skipped} of {r.summary.total} blocks from the store)"
        )


if __name__ == "__main__":
    main()
