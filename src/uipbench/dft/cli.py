"""Command line: ``python -m uipbench.dft run|export|status`` (usage in the package docstring, which is also the
parser's description)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

from ..engine import run_tasks
from ..store import ResultStore
from . import __doc__ as _PACKAGE_DOC
from .calc import KIND_BULK, KIND_EOS, KIND_PAIRS, KIND_SLAB, compute_task
from .exporting import export
from .pairs import (DEFAULT_ELEMENTS, DEFAULT_PAIR_PROTOTYPES, PROTOTYPES, pair_convergence_table,
                    pair_convergence_tasks)
from .relax import (DEFAULT_RELAX_SLABS, FMAX_EV_PER_A, KIND_SLAB_RELAXED, MAX_STEPS, relax_task, relax_tasks,
                    relaxed_table)
from .running import default_store, run_eos, run_pairs, run_surfaces
from .settings import CHEAP_SETTINGS, DEFAULT_SETTINGS, FUNCTIONALS, PAIR_SETTINGS, SURFACE_SETTINGS, DFTSettings
from .surfaces import (CONVERGENCE_VARIANTS, EOS_ELEMENTS, SURFACE_ELEMENTS, convergence_a0, convergence_table,
                       convergence_tasks, eos_results, surface_table)


def _settings_from_args(args) -> DFTSettings:
    """The dataset's production settings (SURFACE_SETTINGS for surfaces / eos, PAIR_SETTINGS for pairs,
    DEFAULT_SETTINGS for the surface convergence variants, which are defined relative to it), with the command-line
    overrides."""
    if args.cheap:
        s = CHEAP_SETTINGS
    else:
        s = {"surfaces": SURFACE_SETTINGS, "eos": SURFACE_SETTINGS, "pairs": PAIR_SETTINGS,
             "pairs-convergence": PAIR_SETTINGS, "relax": SURFACE_SETTINGS}.get(args.dataset, DEFAULT_SETTINGS)
    changes = {}
    if args.ecut is not None:
        changes["ecut_ev"] = args.ecut
    if args.kdens is not None:
        changes["kpt_density_per_inv_a"] = args.kdens
    return s.replace(**changes) if changes else s


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m uipbench.dft", description=_PACKAGE_DOC.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="compute (resumes: stored results are skipped)")
    r.add_argument("dataset", choices=["pairs", "surfaces", "eos", "convergence", "pairs-convergence", "relax",
                                      "label-convergence", "training"])
    r.add_argument("--elements", nargs="+", default=None)
    r.add_argument("--prototypes", nargs="+", default=list(DEFAULT_PAIR_PROTOTYPES), choices=PROTOTYPES)
    r.add_argument("--n-per-prototype", type=int, default=3, help="frames per prototype (pairs, training)")
    r.add_argument("--n-check", type=int, default=1, help="frames per group with check neighbours (training)")
    r.add_argument("--functionals", nargs="+", default=["pbe", "r2scan"], choices=sorted(FUNCTIONALS))
    r.add_argument("--facets", nargs="+", default=["111", "100", "110"])
    r.add_argument("--variants", nargs="+", default=list(CONVERGENCE_VARIANTS), choices=list(CONVERGENCE_VARIANTS),
                   help="settings variants (dataset convergence)")
    r.add_argument("--slabs", nargs="+", default=list(DEFAULT_RELAX_SLABS),
                   help="dataset-2 slabs to relax, as El|hkl (dataset relax)")
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
    e = sub.add_parser("export", help="rewrite data/dft/*.extxyz and manifest.json from the store")
    e.add_argument("--out", default=None, help="output root (default: the repository's data/)")
    st = sub.add_parser("status", help="counts and CPU hours in the store")
    for sp in (r, e, st):
        sp.add_argument("--store", default=None, help="SQLite result store (default: data/dft/store.sqlite, committed)")
    args = p.parse_args(argv)
    store = ResultStore(args.store) if args.store else default_store()
    if args.cmd == "status":
        total = 0.0
        for kind in (KIND_PAIRS, KIND_EOS, KIND_BULK, KIND_SLAB, KIND_SLAB_RELAXED):
            df = store.frame(kind=kind)
            if df.empty:
                print(f"{kind:22s} none")
                continue
            total += float(df["seconds"].sum())
            for model, g in df.groupby("model"):
                ok = g[g["status"] == "ok"]
                med = ok.groupby("n_atoms")["seconds"].median().round(1).to_dict() if len(ok) else {}
                print(f"{kind:22s} {model:12s} ok {len(ok):4d}  failed {len(g) - len(ok):3d}  "
                      f"{g['seconds'].sum() / 3600:6.3f} h  median s by n_atoms {med}")
        print(f"total {total / 3600:.3f} h of single-threaded calculation wall time")
        return 0
    if args.cmd == "export":
        m = export(store, Path(args.out) if args.out else None)
        print(json.dumps({"counts": m["counts"], "calc_hours_total": round(m["calc_hours_total"], 3)}, indent=1))
        return 0
    settings = _settings_from_args(args)
    kw = {"backend": args.backend, "n_workers": args.workers, "scheduler": args.scheduler,
          "retry_failed": args.retry_failed}
    if args.dataset == "pairs":
        summary, skipped = run_pairs(store, args.elements or DEFAULT_ELEMENTS, args.prototypes, args.n_per_prototype,
                                     args.functionals, args.seed, args.max_atoms, settings, **kw)
        print(summary)
        for k, v in {**skipped, **summary.failures}.items():
            print(f"  skipped/failed {k}: {v}")
    elif args.dataset == "pairs-convergence":
        summary = run_tasks(compute_task, pair_convergence_tasks(settings), store, desc="GPAW pair convergence", **kw)
        print(summary)
        print(pair_convergence_table(store, settings).to_string())
    elif args.dataset == "training":
        from .training import CHEAP_TRAINING_KW, run_training_pairs

        out = run_training_pairs(store, args.elements or DEFAULT_ELEMENTS, args.prototypes, args.n_per_prototype,
                                 args.n_check, args.seed, args.max_atoms, retry=True,
                                 settings_kw=CHEAP_TRAINING_KW if args.cheap else None, **kw)
        for name, summary in out["summaries"].items():
            print(name, summary)
        for k, v in out["skipped"].items():
            print(f"  skipped {k}: {v}")
    elif args.dataset == "label-convergence":
        from .label_convergence import convergence_frame, study_tasks

        summary = run_tasks(compute_task, study_tasks(), store, desc="GPAW label convergence", **kw)
        print(summary)
        print(convergence_frame(store).to_string())
    elif args.dataset == "convergence":
        el = (args.elements or ["Cu"])[0]
        facets = [tuple(int(c) for c in f) for f in args.facets]
        a0 = convergence_a0(store, el)
        summary = run_tasks(compute_task, convergence_tasks(el, a0, facets, args.variants, base=settings),
                            store, desc="GPAW convergence", **kw)
        print(summary)
        print(convergence_table(store, el, a0, facets, args.variants, base=settings).to_string())
    elif args.dataset == "relax":
        tasks, skipped = relax_tasks(store, args.slabs, settings, args.fmax, args.max_steps)
        summary = run_tasks(relax_task, tasks, store, desc="GPAW slab relaxations (PBE)", **kw)
        print(summary)
        for k, v in {**skipped, **summary.failures}.items():
            print(f"  skipped/failed {k}: {v}")
        print(relaxed_table(store, args.slabs, settings, args.fmax).to_string())
    elif args.dataset == "eos":
        summary = run_eos(args.elements or EOS_ELEMENTS, store, settings, **kw)
        print(summary)
        for el, fit in eos_results(store, settings, args.elements or EOS_ELEMENTS).items():
            print(f"  {el}: {fit}")
    else:
        facets = [tuple(int(c) for c in f) for f in args.facets]
        s1, s2, skipped = run_surfaces(args.elements or SURFACE_ELEMENTS, store, settings, facets, **kw)
        print(s1)
        print(s2)
        for k, v in {**skipped, **s1.failures, **s2.failures}.items():
            print(f"  skipped/failed {k}: {v}")
        print(surface_table(store, settings).to_string())
    return 0
