"""The surface-energy convergence check of dataset 2: γ of chosen slabs for settings variants (cutoff, k-points,
smearing, vacuum, layers) at a fixed lattice constant (:data:`CONVERGENCE_VARIANTS`, :func:`convergence_tasks`,
:func:`convergence_table`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..engine import Task
from ..store import ResultStore
from .calc import KIND_BULK, KIND_SLAB
from .eos import eos_results
from .settings import DEFAULT_SETTINGS, SURFACE_SETTINGS, DFTSettings
from .surfaces import SURFACE_FACETS, gamma_j_per_m2, resolve_spec, slab_a0, surface_specs

#: settings variants of the surface-energy convergence check (all relative to DEFAULT_SETTINGS)
CONVERGENCE_VARIANTS: dict[str, dict] = {
    "default": {},
    "ecut 500 eV": {"ecut_ev": 500.0},
    "k 4.5/Å⁻¹": {"kpt_density_per_inv_a": 4.5},
    "ecut 500 eV, k 4.5/Å⁻¹": {"ecut_ev": 500.0, "kpt_density_per_inv_a": 4.5},
    "k 5.5/Å⁻¹": {"kpt_density_per_inv_a": 5.5},
    "k 6.5/Å⁻¹": {"kpt_density_per_inv_a": 6.5},
    "k 7.5/Å⁻¹": {"kpt_density_per_inv_a": 7.5},
    "MV 0.2 eV": {"smearing_width_ev": 0.2},
    "MV 0.2 eV, k 4.5/Å⁻¹": {"smearing_width_ev": 0.2, "kpt_density_per_inv_a": 4.5},
    "MV 0.2 eV, k 5.5/Å⁻¹": {"smearing_width_ev": 0.2, "kpt_density_per_inv_a": 5.5},
    "ecut 350 eV, k 3.0/Å⁻¹": {"ecut_ev": 350.0, "kpt_density_per_inv_a": 3.0},
    "vacuum 16 Å": {"vacuum_a": 16.0},
    "+2 layers": {"slab_layers": (("100", 8), ("110", 10), ("111", 8))},
    "+2 layers, k 4.5/Å⁻¹": {"slab_layers": (("100", 8), ("110", 10), ("111", 8)), "kpt_density_per_inv_a": 4.5},
}
#: fixed lattice constant (Å) of a convergence check; elements not listed use their GPAW E-V fit (dataset 2's a0),
#: so that the dataset-2 variant of the check *is* the production slab. Cu keeps the value its check was run with.
CONVERGENCE_A0 = {"Cu": 3.63}


def convergence_a0(
    store: ResultStore, element: str, settings: DFTSettings = SURFACE_SETTINGS, eos: dict[str, dict] | None = None
) -> float:
    """Lattice constant of ``element``'s surface convergence check (:data:`CONVERGENCE_A0`, else its E-V fit;
    ``eos``: the fits of :func:`eos_results` for ``settings`` when already computed)."""
    if element in CONVERGENCE_A0:
        return CONVERGENCE_A0[element]
    fit = (eos if eos is not None else eos_results(store, settings, [element])).get(element, {})
    if "a0_a" not in fit:
        raise ValueError(
            f"no E-V fit of {element} in the store ({fit.get('error', 'no points')}): run "
            f"`python -m uipbench.dft run eos --elements {element}` first"
        )
    return slab_a0(fit)  # as in surface_tasks, so the dataset-2 variant reuses its record


def convergence_elements(store: ResultStore) -> list[str]:
    """Elements with surface convergence calculations in the store (slab items ``<el>|<hkl>|conv``)."""
    df = store.frame(kind=KIND_SLAB)
    if df.empty:
        return []
    return sorted({i.split("|")[0] for i in df["item"] if i.endswith("|conv")})


def convergence_tasks(
    element: str = "Cu",
    a0: float = 3.63,
    facets: Iterable[Sequence[int]] = SURFACE_FACETS,
    variants: Iterable[str] = tuple(CONVERGENCE_VARIANTS),
    base: DFTSettings = DEFAULT_SETTINGS,
) -> list[Task]:
    """Slab + oriented-bulk tasks of ``element`` at a fixed lattice constant for each settings variant (so that
    only the numerical setting changes between rows of :func:`convergence_table`)."""
    tasks = []
    for v in variants:
        st = base.replace(**CONVERGENCE_VARIANTS[v])
        for hkl in facets:
            s_spec, b_spec, info = surface_specs(element, hkl, a0, st)
            tasks.append(b_spec.task(KIND_BULK, f"{element}|{info['miller']}|conv"))
            tasks.append(s_spec.task(KIND_SLAB, f"{element}|{info['miller']}|conv"))
    return tasks


def convergence_table(
    store: ResultStore,
    element: str = "Cu",
    a0: float = 3.63,
    facets: Iterable[Sequence[int]] = SURFACE_FACETS,
    variants: Iterable[str] = tuple(CONVERGENCE_VARIANTS),
    base: DFTSettings = DEFAULT_SETTINGS,
):
    """γ (J/m²) per settings variant and facet from the store (missing calculations are absent rows), with the
    difference to the default settings and the summed wall time of slab + bulk."""
    import pandas as pd

    rows = []
    facets = list(facets)
    for v in variants:
        st = base.replace(**CONVERGENCE_VARIANTS[v])
        for hkl in facets:
            s_spec, b_spec, info = surface_specs(element, hkl, a0, st)
            s_spec, b_spec = resolve_spec(store, s_spec, KIND_SLAB), resolve_spec(store, b_spec, KIND_BULK)
            s = store.get(s_spec.key(KIND_SLAB), with_array=False)
            b = store.get(b_spec.key(KIND_BULK), with_array=False)
            if not (s and b and s.ok and b.ok):
                continue
            sp, bp = s.payload, b.payload
            rows.append(
                {
                    "variant": v,
                    "element": element,
                    "miller": info["miller"],
                    "n_layers": info["n_layers"],
                    "ecut_ev": st.ecut_ev,
                    "kpt_density_per_inv_a": st.kpt_density_per_inv_a,
                    "vacuum_a": st.vacuum_a,
                    "kpts_slab": "x".join(map(str, sp["kpts"])),
                    "gamma_j_per_m2": gamma_j_per_m2(
                        sp["energy_ev"], sp["n_atoms"], bp["energy_ev"] / bp["n_atoms"], info["area_a2"]
                    ),
                    "seconds": (s.seconds or 0) + (b.seconds or 0),
                }
            )
    df = pd.DataFrame(rows)
    if not df.empty:
        prod = [v for v in CONVERGENCE_VARIANTS if base.replace(**CONVERGENCE_VARIANTS[v]) == SURFACE_SETTINGS]
        df["dataset2_settings"] = df["variant"].isin(prod)
        ref = df[df["variant"] == "default"].set_index("miller")["gamma_j_per_m2"]
        df["delta_vs_default_j_per_m2"] = df["gamma_j_per_m2"] - df["miller"].map(ref)
    return df
