"""Command line: ``python -m uipbench.dft run|export|status`` (usage in the package docstring, which is also the
parser's description). Every ``run`` dataset goes through :func:`uipbench.dft.running.run_dataset`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from ..store import ResultStore
from . import __doc__ as _PACKAGE_DOC
from .calc import KIND_BULK, KIND_EOS, KIND_PAIRS, KIND_SLAB
from .exporting import export
from .label_convergence import KIND_LABEL_CONVERGENCE
from .pairs import DEFAULT_PAIR_PROTOTYPES, PROTOTYPES
from .relax import DEFAULT_RELAX_SLABS, FMAX_EV_PER_A, KIND_SLAB_RELAXED, MAX_STEPS
from .running import DATASETS, RunOptions, RunResult, default_store, run_dataset
from .settings import CHEAP_SETTINGS, DEFAULT_SETTINGS, FUNCTIONALS, PAIR_SETTINGS, SURFACE_SETTINGS, DFTSettings
from .surface_convergence import CONVERGENCE_VARIANTS
from .training import KIND_TG_EOS, KIND_TG_PAIRS


def _settings_from_args(args) -> DFTSettings:
    """The dataset's production settings (SURFACE_SETTINGS for surfaces / eos, PAIR_SETTINGS for pairs,
    DEFAULT_SETTINGS for the surface convergence variants, which are defined relative to it), with the command-line
    overrides."""
    if args.cheap:
        s = CHEAP_SETTINGS
    else:
        s = {
            "surfaces": SURFACE_SETTINGS,
            "eos": SURFACE_SETTINGS,
            "pairs": PAIR_SETTINGS,
            "pairs-convergence": PAIR_SETTINGS,
            "relax": SURFACE_SETTINGS,
        }.get(args.dataset, DEFAULT_SETTINGS)
    changes = {}
    if args.ecut is not None:
        changes["ecut_ev"] = args.ecut
    if args.kdens is not None:
        changes["kpt_density_per_inv_a"] = args.kdens
    return s.replace(**changes) if changes else s


def _run_parser(sub) -> argparse.ArgumentParser:
    r = sub.add_parser("run", help="compute (resumes: stored results are skipped)")
    r.add_argument("dataset", choices=list(DATASETS))
    r.add_argument("--elements", nargs="+", default=None)
    r.add_argument("--prototypes", nargs="+", default=list(DEFAULT_PAIR_PROTOTYPES), choices=PROTOTYPES)
    r.add_argument("--n-per-prototype", type=int, default=3, help="frames per prototype (pairs, training)")
    r.add_argument("--n-check", type=int, default=1, help="frames per group with check neighbours (training)")
    r.add_argument("--wave", type=int, default=None, help="groups per wave: E-V, frames, retries (training)")
    r.add_argument("--functionals", nargs="+", default=["pbe", "r2scan"], choices=sorted(FUNCTIONALS))
    r.add_argument("--facets", nargs="+", default=["111", "100", "110"])
    r.add_argument(
        "--variants",
        nargs="+",
        default=list(CONVERGENCE_VARIANTS),
        choices=list(CONVERGENCE_VARIANTS),
        help="settings variants (dataset convergence)",
    )
    r.add_argument(
        "--slabs",
        nargs="+",
        default=list(DEFAULT_RELAX_SLABS),
        help="dataset-2 slabs to relax, as El|hkl (dataset relax)",
    )
    r.add_argument("--fmax", type=float, default=FMAX_EV_PER_A, help="relaxation force criterion (eV/Å)")
    r.add_argument("--max-steps", type=int, default=MAX_STEPS, help="BFGS steps per run (dataset relax)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--max-atoms", type=int, default=8)
    r.add_argument("--backend", default="serial", choices=["serial", "process", "dask"])
    r.add_argument("--workers", type=int, default=1)
    r.add_argument("--scheduler", default=None, help="Dask scheduler address (backend dask)")
    r.add_argument("--retry-failed", action="store_true")
    r.add_argument("--cheap", action="store_true", help="CHEAP_SETTINGS (tests / smoke runs, not converged)")
    r.add_argument("--ecut", type=float, default=None, help="override the plane-wave cutoff (eV)")
    r.add_argument("--kdens", type=float, default=None, help="override the k-point density (per Å⁻¹)")
    return r


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m uipbench.dft", description=_PACKAGE_DOC.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = _run_parser(sub)
    e = sub.add_parser("export", help="rewrite data/dft/*.extxyz and manifest.json from the store")
    e.add_argument("--out", default=None, help="output root (default: the repository's data/)")
    st = sub.add_parser("status", help="counts and CPU hours in the store")
    for sp in (r, e, st):
        sp.add_argument("--store", default=None, help="SQLite result store (default: data/dft/store.sqlite, committed)")
    return p


def _options_from_args(args) -> RunOptions:
    names = {f.name for f in fields(RunOptions)} - {"settings"}
    return RunOptions(settings=_settings_from_args(args), **{n: getattr(args, n) for n in names})


def _print_run(result: RunResult) -> None:
    for name, summary in result.summaries:
        print(f"{name} {summary}" if name else summary)
    for k, v in result.failures().items():
        print(f"  skipped/failed {k}: {v}")
    if result.table:
        print(result.table)


def _status(store: ResultStore) -> None:
    total = 0.0
    kinds = (KIND_PAIRS, KIND_EOS, KIND_BULK, KIND_SLAB, KIND_SLAB_RELAXED, KIND_LABEL_CONVERGENCE, KIND_TG_EOS)
    for kind in (*kinds, KIND_TG_PAIRS):
        df = store.frame(kind=kind)
        if df.empty:
            print(f"{kind:22s} none")
            continue
        total += float(df["seconds"].sum())
        for model, g in df.groupby("model"):
            ok = g[g["status"] == "ok"]
            med = ok.groupby("n_atoms")["seconds"].median().round(1).to_dict() if len(ok) else {}
            print(
                f"{kind:22s} {model:12s} ok {len(ok):4d}  failed {len(g) - len(ok):3d}  "
                f"{g['seconds'].sum() / 3600:6.3f} h  median s by n_atoms {med}"
            )
    print(f"total {total / 3600:.3f} h of single-threaded calculation wall time")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    store = ResultStore(args.store) if args.store else default_store()
    if args.cmd == "status":
        _status(store)
    elif args.cmd == "export":
        m = export(store, Path(args.out) if args.out else None)
        print(json.dumps({"counts": m["counts"], "calc_hours_total": round(m["calc_hours_total"], 3)}, indent=1))
    else:
        _print_run(
            run_dataset(
                args.dataset,
                store,
                _options_from_args(args),
                backend=args.backend,
                n_workers=args.workers,
                scheduler=args.scheduler,
                retry_failed=args.retry_failed,
            )
        )
    return 0
