"""Chapter 20 (the project's GPAW references): tables, named figure functions and ``chapter_metrics``.

The notebook holds parameters, narrative, calls and saves; every figure of the chapter is a function here that
returns its matplotlib figure (and the tidy table behind it), so that ``figures/<stem>.png`` comes from one place.
Figures of the legacy dataset 1 keep their stems (``dft_pairs_*``); the training-grade dataset adds ``dft_labels_*``
and ``dft_training_*``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from .consistency import work_residual_ev_per_atom

# ----------------------------------------------------------------------------------------------------------------
# tables


def failures_table(manifest: Mapping) -> pd.DataFrame:
    return pd.DataFrame(
        [{"dataset": d, "calculation": k, "reason": v} for d, f in manifest["failures"].items() for k, v in f.items()],
        columns=["dataset", "calculation", "reason"],
    )


def settings_table(manifest: Mapping) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dataset 1 (pairs)": {k: str(v) for k, v in manifest["settings"].items()},
            "dataset 2 (surfaces, E-V)": {k: str(v) for k, v in manifest["surface_settings"].items()},
        }
    )


#: surface convergence differences shown in the chapter: name -> (variant, reference variant)
SURFACE_CONVERGENCE_CHECKS = {
    "k 4.5 -> 5.5 per Å⁻¹ (at 400 eV)": ("k 5.5/Å⁻¹", "k 4.5/Å⁻¹"),
    "400 -> 500 eV (at k 4.5)": ("ecut 500 eV, k 4.5/Å⁻¹", "k 4.5/Å⁻¹"),
    "400 -> 500 eV (at k 3.5)": ("ecut 500 eV", "default"),
    "k 3.5 -> 4.5 per Å⁻¹ (at 400 eV)": ("k 4.5/Å⁻¹", "default"),
    "k 4.5 -> 5.5 per Å⁻¹ (MV 0.2 eV)": ("MV 0.2 eV, k 5.5/Å⁻¹", "MV 0.2 eV, k 4.5/Å⁻¹"),
    "MV 0.1 -> 0.2 eV (at k 4.5)": ("MV 0.2 eV, k 4.5/Å⁻¹", "k 4.5/Å⁻¹"),
    "vacuum 12 -> 16 Å (at k 3.5)": ("vacuum 16 Å", "default"),
    "+2 layers (at k 3.5)": ("+2 layers", "default"),
}


def surface_convergence_checks(conv: pd.DataFrame) -> dict:
    """Δγ (J/m²) per check of :data:`SURFACE_CONVERGENCE_CHECKS` and facet (Cu: variants at a fixed a0)."""
    piv = conv.pivot_table(index="variant", columns="miller", values="gamma_j_per_m2")
    return {
        name: (piv.loc[a] - piv.loc[b]).dropna().round(4).to_dict()
        for name, (a, b) in SURFACE_CONVERGENCE_CHECKS.items()
        if a in piv.index and b in piv.index
    }


def other_element_convergence(paths_: Sequence) -> tuple[list[pd.DataFrame], dict]:
    """Per element checked besides Cu: the variants relative to dataset 2's own slab (Δγ), and {el: {facet|variant:
    γ}} for the metrics."""
    tables, out = [], {}
    for path in paths_:
        c = pd.read_csv(path)
        el = c["element"].iloc[0]
        if el == "Cu":
            continue
        prod = c[c["dataset2_settings"]].set_index("miller")["gamma_j_per_m2"]
        c["delta_vs_dataset2_j_per_m2"] = c["gamma_j_per_m2"] - c["miller"].map(prod)
        tables.append(
            c[
                [
                    "element",
                    "miller",
                    "variant",
                    "n_layers",
                    "kpt_density_per_inv_a",
                    "kpts_slab",
                    "gamma_j_per_m2",
                    "delta_vs_dataset2_j_per_m2",
                ]
            ].round(4)
        )
        out[el] = {f"{r.miller}|{r.variant}": r.gamma_j_per_m2 for r in c.itertuples()}
    return tables, out


def pair_convergence_summary(pconv: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """(per structure table, per variant summary) of the legacy dataset-1 k-mesh check."""
    var = pconv[pconv["variant"] != "default"]
    table = var.pivot_table(
        index="id",
        columns=["variant", "functional"],
        values=["d_energy_mev_per_atom", "d_force_max_ev_per_a", "d_stress_max_gpa"],
    ).round(2)
    shift = var.drop_duplicates(["id", "variant"]).dropna(subset=["d_shift_mev_per_atom"])
    out = {}
    for v, g in shift.groupby("variant"):
        e = var[var["variant"] == v]
        out[v] = {
            "n_structures": int(len(g)),
            "shift_abs_median_mev_per_atom": float(g["d_shift_mev_per_atom"].abs().median()),
            "shift_abs_max_mev_per_atom": float(g["d_shift_mev_per_atom"].abs().max()),
            "energy_abs_median_mev_per_atom": float(e["d_energy_mev_per_atom"].abs().median()),
            "energy_abs_max_mev_per_atom": float(e["d_energy_mev_per_atom"].abs().max()),
            "force_max_ev_per_a": float(e["d_force_max_ev_per_a"].max()),
            "stress_max_gpa": float(e["d_stress_max_gpa"].max()),
        }
    return table, out


def element_counts(table: pd.DataFrame) -> dict[str, int]:
    counts: dict[str, int] = {}
    for els in table["elements"]:
        for e in els.split():
            counts[e] = counts.get(e, 0) + 1
    return counts


def largest_forces(table: pd.DataFrame, frames: Sequence, n: int = 3) -> pd.DataFrame:
    """The ``n`` cells with the largest PBE force and their shortest interatomic distance (Å)."""
    from ase.neighborlist import neighbor_list

    d_min = {at.info["id"]: float(np.min(neighbor_list("d", at, 4.0), initial=np.inf)) for at in frames}
    top = table.nlargest(n, "fmax_pbe_ev_per_a")[
        ["id", "fmax_pbe_ev_per_a", "fmax_r2scan_ev_per_a", "pressure_pbe_gpa"]
    ]
    return top.assign(shortest_distance_a=top["id"].map(d_min)).round(3)


def relaxed_vs_static(relaxed: pd.DataFrame, gam: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    relaxed = relaxed.merge(gam[["element", "miller", "gamma_mp_j_per_m2"]], on=["element", "miller"], how="left")
    for state in ("static", "relaxed"):
        ratio = relaxed[f"gamma_{state}_j_per_m2"] / relaxed["gamma_mp_j_per_m2"]
        relaxed[f"vs_mp_{state}_percent"] = 100 * (ratio - 1)
    metrics = {
        f"{r.element}({r.miller})": {
            "gamma_change_percent": round(r.gamma_change_percent, 3),
            "d12_change_percent": round(r.d12_change_percent, 3),
            "vs_mp_relaxed_percent": round(r.vs_mp_relaxed_percent, 3),
        }
        for r in relaxed.itertuples()
        if not r.error
    }
    return relaxed, metrics


def gamma_metrics(ok: pd.DataFrame) -> dict:
    if not len(ok):
        return {}
    return {
        "n_facets": int(len(ok)),
        "mae_j_per_m2": float((ok["gamma_gpaw_j_per_m2"] - ok["gamma_mp_j_per_m2"]).abs().mean()),
        "mean_rel_diff_percent": float(ok["rel_diff_percent"].mean()),
    }


def shift_metrics(both: pd.DataFrame) -> dict:
    x, y = both["chgnet_atomref_shift_ev_per_atom"], both["shift_fit_ev_per_atom"]
    return {
        "n_elements_compared": int(len(both)),
        "pearson_r": float(np.corrcoef(x, y)[0, 1]) if len(both) > 2 else float("nan"),
        "sign_agreement": float(np.mean(np.sign(x) == np.sign(y))) if len(both) else float("nan"),
    }


# ----------------------------------------------------------------------------------------------------------------
# label consistency of the legacy dataset 1 (what issue 16 repairs)

FIRST_ROW = frozenset({"B", "C", "N", "O", "F"})


def legacy_group_residuals(frames: Sequence) -> pd.DataFrame:
    """Trapezoid residual between consecutive frames of each legacy group (same prototype and composition), per
    functional, with the group's class: ``first-row`` (B, C, N, O, F present), ``mesh switches`` (frames on
    different k-meshes), ``one mesh``. Between these frames (±5 % strains, independent rattles) the rule's own error
    is several meV/atom even for consistent labels, so this table compares classes; the sharp test is the
    training-grade check neighbours."""
    groups: dict[str, list] = {}
    for at in frames:
        groups.setdefault(at.info["id"].rsplit("-s", 1)[0], []).append(at)
    rows = []
    for gid, ats in sorted(groups.items()):
        ats = sorted(ats, key=lambda a: a.info["id"])
        for f in ("pbe", "r2scan"):
            meshes = {tuple(np.asarray(a.info[f"kpts_{f}"]).tolist()) for a in ats}
            symbols = set(ats[0].get_chemical_symbols())
            cls = "first-row" if symbols & FIRST_ROW else ("mesh switches" if len(meshes) > 1 else "one mesh")
            for a, b in pairwise(ats):
                if len(a) != len(b):
                    continue
                fa, fb = (_info_frame(x, f) for x in (a, b))
                rows.append(
                    {
                        "group": gid,
                        "functional": f,
                        "class": cls,
                        "residual_mev_per_atom": 1e3 * work_residual_ev_per_atom(fa, fb),
                    }
                )
    return pd.DataFrame(rows)


def _info_frame(at, f: str) -> dict:
    return {
        "cell": at.cell[:],
        "positions": at.positions,
        "energy": float(at.info[f"energy_{f}_ev"]),
        "forces": at.arrays[f"forces_{f}_ev_per_a"],
        "stress": np.asarray(at.info[f"stress_{f}_ev_per_a3"]),
    }


def residual_summary(legacy: pd.DataFrame, checks: pd.DataFrame) -> pd.DataFrame:
    """Median and maximum |residual| (meV/atom) per legacy class and per training-grade check role."""
    parts = []
    if not legacy.empty:
        g = legacy.assign(a=legacy["residual_mev_per_atom"].abs()).groupby("class")["a"]
        parts.append(
            pd.DataFrame(
                {"dataset": "legacy (400 eV, k per frame)", "median": g.median(), "max": g.max(), "n": g.size()}
            )
        )
    if not checks.empty:
        g = checks.assign(a=checks["residual_mev_per_atom"].abs()).groupby("role")["a"]
        parts.append(
            pd.DataFrame(
                {"dataset": "training grade, check neighbours", "median": g.median(), "max": g.max(), "n": g.size()}
            )
        )
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts).rename_axis("class / check").reset_index().round(3)


# ----------------------------------------------------------------------------------------------------------------
# figures (legacy stems unchanged)


def coverage_figure(table: pd.DataFrame, title_prefix: str = "GPAW PBE/r2SCAN pairs"):
    import matplotlib.pyplot as plt

    from .. import figures

    counts = element_counts(table)
    fig, ax = plt.subplots(figsize=(10, 5.4))
    figures.periodic_table_heatmap(counts, ax=ax, label="paired structures", fmt="{:.0f}")
    ax.set_title(f"{title_prefix}: {len(table)} structures, {len(counts)} elements")
    return fig


def energy_force_stress_figure(table: pd.DataFrame):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    axes[0].scatter(table["energy_pbe_ev_per_atom"], table["energy_r2scan_ev_per_atom"], s=10)
    axes[0].set_xlabel("GPAW PBE energy (eV/atom)")
    axes[0].set_ylabel("GPAW r2SCAN energy (eV/atom)")
    axes[1].hist(table["fmax_pbe_ev_per_a"], bins=30, alpha=0.6, label="PBE")
    axes[1].hist(table["fmax_r2scan_ev_per_a"], bins=30, alpha=0.6, label="r2SCAN")
    axes[1].set_xlabel("max |F| (eV/Å)")
    axes[1].legend()
    axes[2].scatter(table["pressure_pbe_gpa"], table["pressure_r2scan_gpa"], s=10)
    lim = np.nanmax(np.abs(table[["pressure_pbe_gpa", "pressure_r2scan_gpa"]].to_numpy())) * 1.05
    axes[2].plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
    axes[2].set_xlabel("PBE pressure (GPa)")
    axes[2].set_ylabel("r2SCAN pressure (GPa)")
    fig.tight_layout()
    return fig


def shift_vs_atomref_figure(both: pd.DataFrame):
    import matplotlib.pyplot as plt

    x, y = both["chgnet_atomref_shift_ev_per_atom"], both["shift_fit_ev_per_atom"]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(x, y)
    for el, xi, yi in zip(both.index, x, y):
        ax.annotate(el, (xi, yi), fontsize=8)
    ax.set_xlabel("CHGNet AtomRef MP-r2SCAN - MPtrj (eV/atom)")
    ax.set_ylabel("GPAW r2SCAN - PBE, AtomRef fit (eV/atom)")
    return fig


def gamma_vs_mp_figure(ok: pd.DataFrame):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    for miller, g in ok.groupby("miller"):
        ax.scatter(g["gamma_mp_j_per_m2"], g["gamma_gpaw_j_per_m2"], label=f"({miller})")
        for _, r in g.iterrows():
            ax.annotate(r["element"], (r["gamma_mp_j_per_m2"], r["gamma_gpaw_j_per_m2"]), fontsize=7)
    lim = [0, 1.1 * max(ok["gamma_mp_j_per_m2"].max(), ok["gamma_gpaw_j_per_m2"].max())]
    ax.plot(lim, lim, "k--", lw=0.8)
    ax.set_xlim(lim)
    ax.set_ylim(lim)
    ax.set_xlabel("Materials Project γ, relaxed (J/m²)")
    ax.set_ylabel("GPAW PBE γ, static (J/m²)")
    ax.legend()
    return fig


def label_convergence_figure(conv: pd.DataFrame, study: str, tolerances: Mapping[str, float]):
    """Four panels against the study's setting: |error| of E/atom, of E(step) - E(0), of the stress, and the
    consistency residual itself, one line per cell and functional; dashed lines are the tolerances."""
    import matplotlib.pyplot as plt

    t = conv[conv["study"] == study]
    panels = (
        ("err_energy_mev_per_atom", "|ΔE| vs reference (meV/atom)", tolerances["energy_mev_per_atom"]),
        ("err_d_energy_mev_per_atom", "|Δ(E_step − E_0)| (meV/atom)", tolerances["d_energy_mev_per_atom"]),
        ("err_stress_gpa", "max |Δσ| (GPa)", tolerances["stress_gpa"]),
        ("residual_mev_per_atom", "|check residual| (meV/atom)", 1.0),
    )
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8))
    for (col, label, tol), ax in zip(panels, axes):
        for (cell, f), g in t.groupby(["cell", "functional"], sort=True):
            g = g.sort_values("value")
            is_ref = g["value"] == g["value"].max()
            y = g[col].abs()
            if col != "residual_mev_per_atom":  # the reference has zero error by definition: not drawn
                g, y = g[~is_ref], y[~is_ref]
            ax.plot(
                g["value"],
                np.maximum(y, 1e-3),
                marker="o",
                ms=3,
                ls="-" if f == "pbe" else "--",
                label=f"{cell} {'' if f == 'pbe' else 'r2SCAN'}",
            )
        ax.axhline(tol, color="k", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_xlabel("cutoff (eV)" if study == "cutoff" else "k-point density (per Å⁻¹)")
        ax.set_ylabel(label)
    axes[-1].legend(fontsize=6, ncol=1, loc="upper right")
    fig.tight_layout()
    return fig


def residuals_figure(legacy: pd.DataFrame, checks: pd.DataFrame):
    """|trapezoid residual| of the legacy frames by class and of the training-grade check neighbours by role."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    data, labels = [], []
    for cls in ("one mesh", "mesh switches", "first-row"):
        v = legacy.loc[legacy["class"] == cls, "residual_mev_per_atom"].abs() if not legacy.empty else []
        if len(v):
            data.append(np.maximum(v, 1e-4))
            labels.append(f"legacy:\n{cls}")
    for role in ("strain", "rattle"):
        v = checks.loc[checks["role"] == role, "residual_mev_per_atom"].abs() if not checks.empty else []
        if len(v):
            data.append(np.maximum(v, 1e-4))
            labels.append(f"training grade:\n{role} check")
    if data:
        ax.boxplot(data, tick_labels=labels)
    ax.axhline(1.0, color="k", lw=0.8, ls=":", label="gate 1 meV/atom")
    ax.set_yscale("log")
    ax.set_ylabel("|E_B − E_A − work| (meV/atom)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def chapter_metrics(**parts: Any) -> dict:
    """The chapter's metrics: the given sections, with counts and hours from the manifest."""
    manifest = parts.pop("manifest")
    table = parts.pop("table")
    surfaces = parts.pop("surfaces")
    eos = parts.pop("eos")
    out = {
        "n_pairs": len(table),
        "n_pair_elements": int(len({e for s in table.get("elements", []) for e in s.split()})),
        "n_slabs": int(sum(a.info["kind"] == "slab" for a in surfaces)),
        "calc_hours_total": manifest["calc_hours_total"],
        "eos_a0_a": {r.element: r.a0_a for r in eos.itertuples()},
        "eos_rel_dev_percent": {r.element: r.rel_dev_percent for r in eos.itertuples()},
    }
    out.update({k: v for k, v in parts.items() if v is not None})
    return out
