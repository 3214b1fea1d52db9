"""Relaxed slabs: how much of the static-slab γ of dataset 2 is missing relaxation.

Dataset 2's slabs are static (bulk-terminated), the Materials Project's are relaxed. This module relaxes chosen
slabs of dataset 2 with the same settings (BFGS on the atomic positions, cell fixed, the central layer(s) fixed so
the slab keeps its bulk-like middle; both surfaces relax, so the slab stays symmetric) and reports γ before and
after against the same oriented-bulk reference.

A relaxation is one task in the result store (kind ``dft-slab-relaxed``), keyed by the static slab's key plus the
force criterion and the fixing rule. Its BFGS state (positions and Hessian) is checkpointed after every step under
``<results>/dft-relax/``, so an interrupted relaxation continues from its last step instead of starting over; a
relaxation that does not reach ``fmax`` within ``max_steps`` is recorded as failed with its last fmax, and
``--retry-failed`` continues it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import paths
from ..engine import Task
from ..store import ResultStore, make_key
from .calc import KIND_BULK, KIND_SLAB, CalcSpec, gpaw_calculator, start_atoms
from .settings import SURFACE_SETTINGS, DFTSettings, software_versions
from .surfaces import eos_results, gamma_j_per_m2, resolve_spec, slab_a0, surface_specs

KIND_SLAB_RELAXED = "dft-slab-relaxed"
#: the slabs relaxed by default: the two largest static-vs-MP differences of dataset 2 (Pt(110), Al(111)), two
#: (110) facets that agree (Au, Cu), and all three facets of Pt plus Cu(100), to see how relaxation grows with the
#: openness of the facet
DEFAULT_RELAX_SLABS = ("Pt|110", "Al|111", "Au|110", "Cu|110", "Pt|111", "Pt|100", "Cu|100")
FMAX_EV_PER_A = 0.03
MAX_STEPS = 80


def layer_index(z_a: Sequence[float], decimals: int = 2) -> np.ndarray:
    """Index of the atomic layer (0 = lowest) of each atom from its z coordinate (Å, rounded to ``decimals``)."""
    z = np.round(np.asarray(z_a, dtype=float), decimals)
    levels = np.unique(z)
    return np.searchsorted(levels, z)


def central_layers(n_layers: int) -> list[int]:
    """The layer(s) kept fixed: the middle one of an odd slab, the middle two of an even one."""
    return [n_layers // 2] if n_layers % 2 else [n_layers // 2 - 1, n_layers // 2]


def interlayer_changes_percent(
    z0_a: Sequence[float], z1_a: Sequence[float], layers: np.ndarray, n: int = 3
) -> list[float]:
    """Relative change (%) of the first ``n`` interlayer spacings d12, d23, ... at the top surface (mean z per
    layer), relaxed ``z1`` vs bulk-terminated ``z0``; negative = contraction."""
    z0, z1 = np.asarray(z0_a, float), np.asarray(z1_a, float)
    nl = int(layers.max()) + 1
    m0 = np.array([z0[layers == i].mean() for i in range(nl)])
    m1 = np.array([z1[layers == i].mean() for i in range(nl)])
    out = []
    for k in range(min(n, nl - 1)):
        top, below = nl - 1 - k, nl - 2 - k
        d0, d1 = m0[top] - m0[below], m1[top] - m1[below]
        out.append(float(100 * (d1 / d0 - 1)))
    return out


@dataclass(frozen=True)
class RelaxSpec:
    """A slab relaxation: the static slab's :class:`CalcSpec`, the force criterion and the step budget."""

    slab: CalcSpec
    fmax_ev_per_a: float = FMAX_EV_PER_A
    max_steps: int = MAX_STEPS  #: not in the key: a failed (unfinished) relaxation can continue with more steps

    def key(self) -> str:
        return make_key(
            kind=KIND_SLAB_RELAXED,
            slab=self.slab.key(KIND_SLAB),
            fmax_ev_per_a=self.fmax_ev_per_a,
            fixed="central layers",
            optimizer="BFGS",
        )

    def task(self, item: str) -> Task:
        return Task(key=self.key(), kind=KIND_SLAB_RELAXED, model=f"gpaw-{self.slab.functional}", item=item, args=self)


def checkpoint_dir() -> Path:
    return paths.results_dir() / "dft-relax"


def _checkpoint_paths(rspec: RelaxSpec, workdir: Path | None) -> tuple[Path, Path]:
    """The relaxation's trajectory and BFGS-state files in ``workdir`` (default :func:`checkpoint_dir`)."""
    workdir = Path(workdir) if workdir is not None else checkpoint_dir()
    workdir.mkdir(parents=True, exist_ok=True)
    stem = workdir / rspec.key()[:16]
    return stem.with_suffix(".traj"), stem.with_suffix(".bfgs.json")


def _resume(atoms, traj_path: Path, hessian_path: Path) -> bool:
    """Move ``atoms`` to the last checkpointed positions; False (and the checkpoint removed) when there is none
    or it is truncated."""
    from ase.io import read

    if not (traj_path.exists() and traj_path.stat().st_size > 0):
        return False
    try:
        atoms.positions = read(str(traj_path), index=-1).positions
        return True
    except Exception:
        traj_path.unlink()
        hessian_path.unlink(missing_ok=True)
        return False


def relax(rspec: RelaxSpec, calculator: Any = None, workdir: Path | None = None) -> dict:
    """Relax the slab of ``rspec`` (GPAW of its settings unless ``calculator`` is given; tests pass a cheap ASE
    calculator). Resumes from the checkpoint in ``workdir`` (default :func:`checkpoint_dir`). Raises RuntimeError
    when ``fmax`` is not reached within ``max_steps`` (recorded as a failure by the engine)."""
    from ase.constraints import FixAtoms
    from ase.io import Trajectory, read
    from ase.optimize import BFGS

    spec = rspec.slab
    atoms, _ = start_atoms(spec)
    z0 = atoms.positions[:, 2].copy()
    layers = layer_index(z0)
    fixed_layers = central_layers(int(layers.max()) + 1)
    fixed = np.flatnonzero(np.isin(layers, fixed_layers))
    atoms.set_constraint(FixAtoms(indices=fixed))

    traj_path, hessian_path = _checkpoint_paths(rspec, workdir)
    resumed = _resume(atoms, traj_path, hessian_path)
    atoms.calc = calculator if calculator is not None else gpaw_calculator(spec)
    t0 = time.perf_counter()
    e_start = float(atoms.get_potential_energy())
    traj = Trajectory(str(traj_path), "a", atoms)
    try:
        opt = BFGS(atoms, restart=str(hessian_path), logfile=None)
        opt.attach(traj.write, interval=1)
        converged = bool(opt.run(fmax=rspec.fmax_ev_per_a, steps=rspec.max_steps))
    finally:
        traj.close()
    forces = atoms.get_forces()
    fmax = float(np.sqrt((forces**2).sum(axis=1)).max())
    n_frames = len(read(str(traj_path), index=":"))  # force evaluations over all runs of this relaxation
    if not converged:
        raise RuntimeError(
            f"BFGS not converged after {n_frames} force evaluations (fmax {fmax:.3f} > "
            f"{rspec.fmax_ev_per_a} eV/Å); --retry-failed continues from the checkpoint"
        )
    z1 = atoms.positions[:, 2]
    return {
        "functional": spec.functional,
        "label": spec.label,
        "energy_ev": float(atoms.get_potential_energy()),
        "energy_ev_first_step": None if resumed else e_start,
        "forces_ev_per_a": np.round(forces, 8).tolist(),
        "fmax_ev_per_a": fmax,
        "force_evaluations": int(n_frames),
        "fixed_layers": fixed_layers,
        "n_layers": int(layers.max()) + 1,
        "max_displacement_a": float(np.linalg.norm(atoms.positions - spec.atoms.positions, axis=1).max()),
        "interlayer_change_percent": interlayer_changes_percent(z0, z1, layers),
        "n_atoms": len(atoms),
        "numbers": atoms.numbers.tolist(),
        "positions_a": atoms.positions.tolist(),
        "cell_a": atoms.cell[:].tolist(),
        "kpts": list(spec.kpts),
        "settings": spec.settings.as_dict(),
        "versions": software_versions() if calculator is None else None,
        "relax_seconds_this_run": time.perf_counter() - t0,
    }


def relax_task(rspec: RelaxSpec) -> dict:
    """Engine entry point (top-level, so process pools and Dask can pickle it)."""
    from ..engine import single_thread

    single_thread()
    return relax(rspec)


def _slab_specs(store: ResultStore, slabs: Iterable[str], settings: DFTSettings, eos: dict[str, dict] | None = None):
    """(item, slab spec, bulk spec, info) of each ``"El|hkl"`` at the element's E-V lattice constant (dataset 2;
    ``eos``: the fits of :func:`~uipbench.dft.surfaces.eos_results` for ``settings``, computed when not given)."""
    slabs = list(slabs)
    if eos is None:
        eos = eos_results(store, settings, sorted({s.split("|")[0] for s in slabs}))
    out, skipped = [], {}
    for item in slabs:
        el, miller = item.split("|")
        fit = eos.get(el, {})
        if "a0_a" not in fit:
            skipped[item] = fit.get("error", "no E-V fit yet: run `python -m uipbench.dft run surfaces` first")
            continue
        s_spec, b_spec, info = surface_specs(el, tuple(int(c) for c in miller), slab_a0(fit), settings)
        s_spec, b_spec = resolve_spec(store, s_spec, KIND_SLAB), resolve_spec(store, b_spec, KIND_BULK)
        out.append((item, s_spec, b_spec, info))
    return out, skipped


def relax_tasks(
    store: ResultStore,
    slabs: Iterable[str] = DEFAULT_RELAX_SLABS,
    settings: DFTSettings = SURFACE_SETTINGS,
    fmax_ev_per_a: float = FMAX_EV_PER_A,
    max_steps: int = MAX_STEPS,
    eos: dict[str, dict] | None = None,
) -> tuple[list[Task], dict[str, str]]:
    """One relaxation task per ``"El|hkl"`` slab of dataset 2; slabs without an E-V fit come back as skipped
    (``eos``: the E-V fits of ``settings`` when already computed)."""
    specs, skipped = _slab_specs(store, slabs, settings, eos)
    return [RelaxSpec(s, fmax_ev_per_a, max_steps).task(item) for item, s, _, _ in specs], skipped


def relaxed_items(store: ResultStore) -> list[str]:
    """The ``"El|hkl"`` slabs with a relaxation (finished or failed) in the store."""
    df = store.frame(kind=KIND_SLAB_RELAXED)
    return [] if df.empty else sorted(set(df["item"]))


def relaxed_table(
    store: ResultStore,
    slabs: Iterable[str] = DEFAULT_RELAX_SLABS,
    settings: DFTSettings = SURFACE_SETTINGS,
    fmax_ev_per_a: float = FMAX_EV_PER_A,
    eos: dict[str, dict] | None = None,
):
    """γ of the static and the relaxed slab (same oriented-bulk reference), the relaxation energy and the change
    of the outer interlayer spacings, for every relaxation in the store (DataFrame; failures listed with reasons;
    ``eos``: the E-V fits of ``settings`` when already computed)."""
    import pandas as pd

    specs, _ = _slab_specs(store, slabs, settings, eos)
    rows = []
    for _item, s_spec, b_spec, info in specs:
        rec = store.get(RelaxSpec(s_spec, fmax_ev_per_a).key(), with_array=False)
        s = store.get(s_spec.key(KIND_SLAB), with_array=False)
        b = store.get(b_spec.key(KIND_BULK), with_array=False)
        if rec is None or not (s and b and s.ok and b.ok):
            continue
        eb = b.payload["energy_ev"] / b.payload["n_atoms"]
        row = {
            "element": info["element"],
            "miller": info["miller"],
            "n_layers": info["n_layers"],
            "gamma_static_j_per_m2": gamma_j_per_m2(s.payload["energy_ev"], s.payload["n_atoms"], eb, info["area_a2"]),
            "gamma_relaxed_j_per_m2": np.nan,
            "relaxation_energy_mev": np.nan,
            "d12_change_percent": np.nan,
            "d23_change_percent": np.nan,
            "force_evaluations": np.nan,
            "seconds": rec.seconds,
            "error": rec.error or "",
        }
        if rec.ok:
            p = rec.payload
            dz = p["interlayer_change_percent"] + [np.nan] * 2
            gamma = gamma_j_per_m2(p["energy_ev"], p["n_atoms"], eb, info["area_a2"])
            row.update(
                {
                    "gamma_relaxed_j_per_m2": gamma,
                    "relaxation_energy_mev": 1000 * (p["energy_ev"] - s.payload["energy_ev"]),
                    "d12_change_percent": dz[0],
                    "d23_change_percent": dz[1],
                    "force_evaluations": p["force_evaluations"],
                }
            )
        rows.append(row)
    df = pd.DataFrame(
        rows,
        columns=[
            "element",
            "miller",
            "n_layers",
            "gamma_static_j_per_m2",
            "gamma_relaxed_j_per_m2",
            "relaxation_energy_mev",
            "d12_change_percent",
            "d23_change_percent",
            "force_evaluations",
            "seconds",
            "error",
        ],
    )
    df["gamma_change_percent"] = 100 * (df["gamma_relaxed_j_per_m2"] / df["gamma_static_j_per_m2"] - 1)
    return df
