"""Figures and numbers of the decomposition-energy section (transfer paper Fig. 4).

* :func:`fig4_decomposition_parity`: r2SCAN decomposition energies against GGA/GGA+U and shifted GGA, MAE in the
  legend (numbers from :func:`uipbench.transfer.decomposition.decomposition_table`);
* :func:`hull_points` and :func:`fig4_binary_hull`: one binary system's hull in both functionals side by side;
* :func:`chapter_metrics`: the section's numbers for the chapter's metrics file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .decomposition import DecompositionResult, pick_hull_system, stability_changes, summary

#: parity panels: variant -> axis label
PARITY_PANELS = {
    "gga": "GGA/GGA+U",
    "gga_shifted": "GGA/GGA+U + held-out AtomRef shift\n(elements shifted alike)",
    "gga_shifted_r2scan_el": "GGA/GGA+U + held-out AtomRef shift\n(r$^2$SCAN elements)",
}
#: hull panels: variant -> title
HULL_PANELS = {"gga": "GGA/GGA+U", "r2scan": "r$^2$SCAN"}
#: a compound is on the hull when its energy above the hull is below this (eV/atom; pymatgen's numerical noise)
ON_HULL_EV = 1e-8


def _ed(variant: str) -> str:
    return f"decomposition_energy_{variant}_ev_per_atom"


def fig4_decomposition_parity(table: pd.DataFrame, threshold_ev_per_atom: float = 0.0, panels=PARITY_PANELS):
    """One parity per variant of ``panels``: its decomposition energy (y) against r2SCAN's (x), y = x, the
    stability threshold on both axes (off-diagonal quadrants: stability changes) and the MAE in the legend."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 4.6), squeeze=False)
    x_all = table[_ed("r2scan")]
    for ax, (v, label) in zip(axes[0], panels.items(), strict=True):
        y = table[_ed(v)]
        m = x_all.notna() & y.notna()
        x, y = x_all[m], y[m]
        changed = (x <= threshold_ev_per_atom) != (y <= threshold_ev_per_atom)
        mae_mev = 1000 * float((y - x).abs().mean())
        ax.scatter(x[~changed], y[~changed], s=8, alpha=0.5, edgecolors="none", label=f"MAE = {mae_mev:.0f} meV/atom")
        ax.scatter(x[changed], y[changed], s=14, color="C3", label=f"stability change ({int(changed.sum())})")
        lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
        ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8, ls="--")
        ax.axhline(threshold_ev_per_atom, color="0.7", lw=0.6)
        ax.axvline(threshold_ev_per_atom, color="0.7", lw=0.6)
        ax.set_xlabel("r$^2$SCAN decomposition energy (eV/atom)")
        ax.set_ylabel(f"{label} (eV/atom)", fontsize=9)
        ax.legend(loc="upper left", fontsize=8, frameon=False, title=f"n = {int(m.sum())}", title_fontsize=8)
    fig.tight_layout()
    return fig


def hull_points(table: pd.DataFrame, chemsys: str, variants=tuple(HULL_PANELS)) -> pd.DataFrame:
    """Tidy points of a binary ``chemsys`` ("A-B"): per variant and compound (and the two elements at zero),
    the fraction of B, the formation energy and whether the point is on that variant's hull."""
    a, b = chemsys.split("-")
    sub = table[table["chemsys"] == chemsys]
    x_b = [c.get_atomic_fraction(b) for c in _compositions(sub)]
    rows = []
    for v in variants:
        ends = pd.DataFrame({"formula": [a, b], "x_b": [0.0, 1.0], "formation_energy_ev_per_atom": 0.0})
        pts = pd.DataFrame(
            {
                "formula": sub["formula"].to_numpy(),
                "x_b": x_b,
                "formation_energy_ev_per_atom": sub[f"formation_energy_{v}_ev_per_atom"].to_numpy(),
                "on_hull": sub[f"e_above_hull_{v}_ev_per_atom"].to_numpy() < ON_HULL_EV,
            }
        )
        rows.append(pd.concat([ends.assign(on_hull=True), pts]).assign(variant=v, chemsys=chemsys))
    return pd.concat(rows, ignore_index=True).sort_values(["variant", "x_b"], kind="stable", ignore_index=True)


def _compositions(sub: pd.DataFrame):
    from pymatgen.core import Composition

    return [Composition(f) for f in sub["formula"]]


def fig4_binary_hull(table: pd.DataFrame, chemsys: str, threshold_ev_per_atom: float = 0.0):
    """Formation energy against composition of one binary, GGA/GGA+U and r2SCAN side by side: hull line, stable
    (filled) and unstable (open) compounds; compounds whose stability changes between the two are circled red."""
    import matplotlib.pyplot as plt

    pts = hull_points(table, chemsys)
    changed = set(stability_changes(table, "gga", "r2scan", threshold_ev_per_atom)["formula"])
    fig, axes = plt.subplots(1, len(HULL_PANELS), figsize=(10, 4.2), sharey=True)
    for ax, (v, title) in zip(axes, HULL_PANELS.items(), strict=True):
        p = pts[pts["variant"] == v]
        hull = p[p["on_hull"]]
        ax.plot(hull["x_b"], hull["formation_energy_ev_per_atom"], "k-", lw=1)
        ax.scatter(hull["x_b"], hull["formation_energy_ev_per_atom"], color="C0", zorder=3, label="on hull")
        off = p[~p["on_hull"]]
        ax.scatter(off["x_b"], off["formation_energy_ev_per_atom"], facecolors="none", edgecolors="C1", label="above")
        ch = p[p["formula"].isin(changed)]
        ax.scatter(ch["x_b"], ch["formation_energy_ev_per_atom"], s=160, facecolors="none", edgecolors="C3", lw=1.2)
        for _, r in p.iterrows():
            ax.annotate(r["formula"], (r["x_b"], r["formation_energy_ev_per_atom"]), fontsize=7, xytext=(3, -9),
                        textcoords="offset points")  # fmt: skip
        ax.set_title(f"{chemsys}: {title}", fontsize=10)
        ax.set_xlabel(f"fraction of {chemsys.split('-')[1]}")
    axes[0].set_ylabel("formation energy (eV/atom)")
    axes[0].legend(loc="lower left", fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def _rounded(d):
    """Floats made JSON-able (numpy scalars to Python, NaN to None)."""
    if isinstance(d, dict):
        return {k: _rounded(v) for k, v in d.items()}
    if isinstance(d, (float, np.floating)):
        return None if not np.isfinite(d) else float(d)
    if isinstance(d, (np.integer,)):
        return int(d)
    return d


def chapter_metrics(result: DecompositionResult, threshold_ev_per_atom: float = 0.0, hull_system: str | None = None):
    """The section's numbers (JSON-able): :func:`~uipbench.transfer.decomposition.summary`, MAE in meV/atom too, the
    stability changes GGA vs r2SCAN by mp-id, and the binary drawn in :func:`fig4_binary_hull`."""
    s = summary(result, threshold_ev_per_atom)
    mae_mev = {k[4:]: 1000 * v["mae_ev_per_atom"] for k, v in s.items() if k.startswith("mae_")}
    changes = stability_changes(result.table, "gga", "r2scan", threshold_ev_per_atom)
    hull = hull_system or pick_hull_system(result.table, threshold_ev_per_atom)
    return _rounded(
        {
            **s,
            "mae_mev_per_atom": mae_mev,
            "stability_changes_gga_vs_r2scan": {
                str(i): f"{r.formula} stable in {r.stable_in}" for i, r in changes.iterrows()
            },
            "hull_system": hull,
        }
    )
