"""PBE equation of state of the dataset-2 metals and the validation elements: E-V tasks on one fixed k-mesh per
curve (:func:`eos_tasks`), the Birch-Murnaghan fit (:func:`fit_eos`) and the fits from the store
(:func:`eos_results`, :func:`eos_results_from_frame`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..engine import Task
from ..store import ResultStore
from .calc import KIND_EOS, make_spec
from .settings import SURFACE_SETTINGS, DFTSettings, kpt_mesh

EOS_ELEMENTS = ("Cu", "Al", "Si")
#: lattice-constant scale factors of the E-V curves (around the experimental a; PBE is ~1-2 % larger)
EOS_SCALES = (0.98, 0.995, 1.01, 1.025, 1.04)


def eos_structures(element: str, scales: Sequence[float] = EOS_SCALES) -> list[tuple[float, Any]]:
    """(scale, primitive cell with lattice constant scale * a_exp) for an element's simple reference structure."""
    from ase.build import bulk
    from ase.data import atomic_numbers, reference_states

    ref = reference_states[atomic_numbers[element]]
    if ref is None or ref.get("symmetry") not in ("fcc", "bcc", "diamond", "sc"):
        raise ValueError(f"E-V curves are implemented for cubic reference states; {element}: {ref}")
    return [(float(s), bulk(element, a=ref["a"] * s)) for s in scales]


def eos_tasks(
    elements: Iterable[str], settings: DFTSettings = SURFACE_SETTINGS, scales: Sequence[float] = EOS_SCALES
) -> list[Task]:
    """PBE single points along the E-V curve; the k-mesh is fixed at the experimental volume for the whole curve
    (a mesh that changed with volume would put steps into E(V))."""
    tasks = []
    for el in elements:
        structs = eos_structures(el, scales)
        ref_atoms = dict(structs)[1.0] if 1.0 in dict(structs) else structs[len(structs) // 2][1]
        mesh = kpt_mesh(ref_atoms, settings.kpt_density_per_inv_a)
        for s, at in structs:
            spec = make_spec(at, "pbe", settings, kpts=mesh, stress=True, label=f"eos-{el}-{s:.3f}")
            tasks.append(spec.task(KIND_EOS, f"{el}|{s:.3f}"))
    return tasks


def fit_eos(volumes_a3: Sequence[float], energies_ev: Sequence[float]) -> dict:
    """Birch-Murnaghan fit (ASE): V0, E0, B (GPa). Raises when the minimum is outside the sampled volumes."""
    from ase.eos import EquationOfState
    from ase.units import GPa

    v = np.asarray(volumes_a3, float)
    e = np.asarray(energies_ev, float)
    eos = EquationOfState(v, e, eos="birchmurnaghan")
    v0, e0, b = eos.fit()
    if not (v.min() < v0 < v.max()):
        raise ValueError(f"E-V minimum {v0:.3f} Å³ outside the sampled range [{v.min():.3f}, {v.max():.3f}]")
    return {"v0_a3": float(v0), "e0_ev": float(e0), "b_gpa": float(b / GPa)}


def eos_results(
    store: ResultStore,
    settings: DFTSettings = SURFACE_SETTINGS,
    elements: Iterable[str] | None = None,
    min_points: int = len(EOS_SCALES),
) -> dict[str, dict]:
    """element -> fit (a0_a, v0_a3_per_atom, e0_ev_per_atom, b_gpa, n_points) from stored E-V points of
    ``settings``; {'error': reason} for an element whose points are incomplete or whose fit failed.

    Every consumer of the fits (:func:`surface_records`, :func:`convergence_a0`, the relaxations) takes them as an
    optional ``eos`` argument, so one export or run fits once and passes the result down."""
    return eos_results_from_frame(store.frame(kind=KIND_EOS), settings, elements, min_points)


def eos_results_from_frame(
    df,
    settings: DFTSettings = SURFACE_SETTINGS,
    elements: Iterable[str] | None = None,
    min_points: int = len(EOS_SCALES),
) -> dict[str, dict]:
    """:func:`eos_results` from an already read ``store.frame(kind=KIND_EOS)`` (every record of the kind)."""
    out: dict[str, dict] = {}
    if df.empty:
        return out
    ok = df[df["status"] == "ok"].copy()
    ok = ok[[s == settings.as_dict() for s in ok["settings"]]] if "settings" in ok else ok.iloc[0:0]
    ok["element"] = ok["item"].str.split("|").str[0]
    for el, g in ok.groupby("element", sort=True):
        if elements is not None and el not in elements:
            continue
        if len(g) < min_points:  # a curve still being computed: no fit from a handful of points
            out[el] = {"error": f"incomplete E-V curve ({len(g)} of {min_points} points)", "n_points": len(g)}
            continue
        nat = g["n_atoms"].to_numpy()
        vols = [abs(np.linalg.det(np.array(c))) for c in g["cell_a"]] / nat
        e = g["energy_ev"].to_numpy() / nat
        try:
            fit = fit_eos(vols, e)
        except Exception as exc:
            out[el] = {"error": f"{type(exc).__name__}: {exc}", "n_points": len(g)}
            continue
        from ase.data import atomic_numbers, reference_states

        sym = reference_states[atomic_numbers[el]]["symmetry"]
        atoms_per_conv = {"fcc": 4, "bcc": 2, "diamond": 8, "sc": 1}[sym]
        a0 = (fit["v0_a3"] * atoms_per_conv) ** (1 / 3)
        out[el] = {
            "a0_a": a0,
            "v0_a3_per_atom": fit["v0_a3"],
            "e0_ev_per_atom": fit["e0_ev"],
            "b_gpa": fit["b_gpa"],
            "n_points": len(g),
            "structure": sym,
        }
    return out
