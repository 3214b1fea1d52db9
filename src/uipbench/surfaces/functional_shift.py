"""How γ moves from PBE to r2SCAN with one architecture trained on each (TensorNet MatPES PBE / r2SCAN): the bridge
between the surfaces paper and the transfer paper (chapter 01, issue 17).

The two models share architecture and training structures (MatPES) and differ only in the functional of their
labels, so the ratio of their surface energies on the same slabs (static protocol, DFT PBE geometries) estimates
the functional's effect on γ as the models learned it. Against DFT: the data set's γ are PBE.

What is known: SCAN-type meta-GGAs raise metal surface energies over PBE, which underestimates them against
experiment (Patra, Bates, Sun, Perdew, PNAS 114, E9188 (2017), for SCAN; r2SCAN is built to keep SCAN's accuracy
with better numerical stability). No r2SCAN surface-energy database exists here to check the models against.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def shift_table(results: pd.DataFrame, pbe: str = "tensornet", r2scan: str = "tensornet-r2scan",
                protocol: str = "static") -> pd.DataFrame:  # fmt: skip
    """Per slab evaluated ok by both models: element, DFT (PBE) γ, the two models' γ and their ratio r2SCAN/PBE."""
    ok = results[(results["protocol"] == protocol) & (results["status"] == "ok")]
    cols = ["id", "element", "miller", "gamma_dft_j_per_m2", "gamma_model_j_per_m2"]
    a = ok[ok["model"] == pbe][cols].rename(columns={"gamma_model_j_per_m2": "gamma_pbe_model_j_per_m2"})
    b = ok[ok["model"] == r2scan][["id", "gamma_model_j_per_m2"]].rename(
        columns={"gamma_model_j_per_m2": "gamma_r2scan_model_j_per_m2"}
    )
    t = a.merge(b, on="id")
    t["ratio_r2scan_over_pbe"] = t["gamma_r2scan_model_j_per_m2"] / t["gamma_pbe_model_j_per_m2"]
    return t.reset_index(drop=True)


def per_element(table: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per element (and 'all'): slabs, mean DFT PBE γ, mean model γ of both, median ratio with a bootstrap 95 %
    interval over slabs (positive γ of both models only: a ratio of a near-zero γ says nothing)."""
    rng = np.random.default_rng(seed)
    rows = []
    good = table[(table["gamma_pbe_model_j_per_m2"] > 0.05) & (table["gamma_r2scan_model_j_per_m2"] > 0.05)]
    for el, g in [*good.groupby("element", sort=True), ("all", good)]:
        r = g["ratio_r2scan_over_pbe"].to_numpy()
        boots = [np.median(r[rng.integers(0, len(r), len(r))]) for _ in range(n_boot)] if len(r) > 1 else []
        lo, hi = np.percentile(boots, [2.5, 97.5]) if boots else (np.nan, np.nan)
        rows.append({"element": el, "n": len(g), "gamma_dft_pbe_j_per_m2": g["gamma_dft_j_per_m2"].mean(),
                     "gamma_pbe_model_j_per_m2": g["gamma_pbe_model_j_per_m2"].mean(),
                     "gamma_r2scan_model_j_per_m2": g["gamma_r2scan_model_j_per_m2"].mean(),
                     "median_ratio": float(np.median(r)) if len(r) else np.nan,
                     "ratio_lo": lo, "ratio_hi": hi})  # fmt: skip
    return pd.DataFrame(rows)


def fig_functional_shift(table: pd.DataFrame, elements: pd.DataFrame):
    """(a) r2SCAN-model γ against PBE-model γ per slab, DFT PBE γ as colour; (b) median ratio per element."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    sc = a.scatter(table["gamma_pbe_model_j_per_m2"], table["gamma_r2scan_model_j_per_m2"], s=8,
                   c=table["gamma_dft_j_per_m2"], cmap="viridis", alpha=0.7)  # fmt: skip
    hi = (
        float(np.nanmax(table[["gamma_pbe_model_j_per_m2", "gamma_r2scan_model_j_per_m2"]].to_numpy()))
        if len(table)
        else 1
    )
    a.plot([0, hi], [0, hi], "k--", lw=0.8)
    a.set_xlabel("$\\gamma$ TensorNet-MatPES-PBE / J m$^{-2}$")
    a.set_ylabel("$\\gamma$ TensorNet-MatPES-r$^2$SCAN / J m$^{-2}$")
    a.set_title("(a) the same slabs, two functionals", fontsize=10)
    fig.colorbar(sc, ax=a, label="$\\gamma$ DFT (PBE, MP) / J m$^{-2}$")
    e = elements[elements["element"] != "all"].sort_values("median_ratio")
    err = np.vstack([e["median_ratio"] - e["ratio_lo"], e["ratio_hi"] - e["median_ratio"]])
    b.errorbar(range(len(e)), e["median_ratio"], yerr=np.nan_to_num(err), fmt="o", ms=3, capsize=2)
    b.axhline(1.0, color="k", lw=0.8, ls="--")
    b.set_xticks(range(len(e)), e["element"], fontsize=6, rotation=90)
    b.set_ylabel("median $\\gamma_{r^2SCAN} / \\gamma_{PBE}$ (models)")
    b.set_title("(b) per element (95 % interval over slabs)", fontsize=10)
    return fig
