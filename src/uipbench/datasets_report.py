"""Figures and numbers of the datasets chapter (chapter 00): what the registered data hold.

* :func:`fig_slabs_per_element`, :func:`fig_surface_energy_distribution`, :func:`fig_gga_r2scan_elements`;
* :func:`matpes_identical_structures`: which MatPES elements were computed on one structure with both functionals;
* :func:`chapter_metrics`: the numbers of ``00_datasets_metrics.json``.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from .figures import periodic_table_heatmap


def _table_figure(values: dict, cmap: str, label: str, title: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5.4))
    periodic_table_heatmap(values, ax=ax, cmap=cmap, label=label)
    ax.set_title(title)
    return fig


def fig_slabs_per_element(per_element: pd.Series):
    return _table_figure(
        per_element.to_dict(), "Blues", "slabs per element", "Materials Project elemental surfaces: slabs per element"
    )


def fig_surface_energy_distribution(surfaces: pd.DataFrame):
    """Histograms of the DFT surface energies (J/m²) and work functions (eV) of the slabs."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].hist(surfaces.gamma_j_per_m2, bins=40, color="tab:blue", alpha=0.8)
    axes[0].set_xlabel(r"DFT surface energy $\gamma$ (J/m$^2$)")
    axes[0].set_ylabel("slabs")
    axes[1].hist(surfaces.work_function_ev, bins=40, color="tab:orange", alpha=0.8)
    axes[1].set_xlabel("work function (eV)")
    fig.suptitle(f"{len(surfaces)} Materials Project slabs")
    fig.tight_layout()
    return fig


def element_counts(compositions) -> dict[str, int]:
    """Compounds containing each element."""
    return dict(Counter(str(e) for c in compositions for e in c.elements))


def fig_gga_r2scan_elements(both: pd.DataFrame):
    """Periodic table of the RxnNet compounds with both functionals that contain each element."""
    return _table_figure(
        element_counts(both["Composition"]),
        "Greens",
        "GGA/r2SCAN compounds containing the element",
        f"RxnNet: {len(both)} compounds with both functionals",
    )


def matpes_identical_structures(pbe: dict, r2scan: dict, atol: float = 1e-4) -> pd.DataFrame:
    """Per element in both MatPES files: same matpes_id and lattice (within ``atol`` Å), and both energies."""
    rows = []
    for el in sorted(set(pbe) & set(r2scan)):
        p, r = pbe[el], r2scan[el]
        same = p["matpes_id"] == r["matpes_id"] and np.allclose(
            p["structure"].lattice.matrix, r["structure"].lattice.matrix, atol=atol
        )
        rows.append(
            {
                "element": el,
                "same_structure": same,
                "e_pbe_ev_per_atom": p["energy_per_atom"],
                "e_r2scan_ev_per_atom": r["energy_per_atom"],
            }
        )
    return pd.DataFrame(rows)


def chapter_metrics(
    surfaces: pd.DataFrame,
    mp_refs: dict,
    polymorphs: pd.Series,
    missing_refs: list[str],
    matpes: pd.DataFrame,
    rxn: pd.DataFrame,
    both: pd.DataFrame,
    registry: pd.DataFrame,
) -> dict:
    """The numbers of chapter 00 (``00_datasets_metrics.json``)."""
    g = surfaces.gamma_j_per_m2
    return {
        "surfaces": {
            "n_slabs": len(surfaces),
            "n_elements": int(surfaces.element.nunique()),
            "n_four_index": int((surfaces["hkl"].map(len) == 4).sum()),
            "gamma_j_per_m2": {"min": g.min(), "median": g.median(), "max": g.max()},
        },
        "mp_pbe_element_refs": {
            "n_elements": len(mp_refs),
            "n_polymorphs": int(polymorphs.sum()),
            "surface_elements_without_ref": missing_refs,
        },
        "matpes": {"n_elements_both": len(matpes), "n_identical_structure_pairs": int(matpes.same_structure.sum())},
        "rxnnet": {"n_compounds": len(rxn), "n_gga_r2scan_pairs": len(both)},
        "registry": {"n_datasets": len(registry), "n_available_here": int(registry.available_here.sum())},
    }
