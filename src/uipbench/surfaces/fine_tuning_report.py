"""Tables and figures of chapter 03 (universal vs specialised vs fine-tuned, surfaces paper Fig. 3), from the
per-slab tables of :func:`uipbench.surfaces.fine_tuning.slab_predictions` (trained and zero-shot arms) and
:func:`uipbench.surfaces.fine_tuning.universal_predictions` (chapter 01's universal models).

* :func:`combine`: one table with a ``run`` label per arm and model, restricted (:func:`common_slabs`) per element to
  the slabs every run predicted (a paired comparison: same slabs, same DFT references).
* :func:`arm_metrics`: RMSE, MAE and mean signed error with seeded bootstrap 95 % intervals per (element, run) and
  pooled over the elements, for gamma (J/m²), the bulk energy per atom and the slab energy per atom (eV/atom).
* :func:`fig3_triangles`: the paper's Fig. 3: one square per element (columns, surface counts in parentheses) and
  run (rows), split into three triangles: upper gamma RMSE, lower left bulk RMSE, lower right slab RMSE.
* :func:`signed_error_table`: the mean signed error of gamma before (zero-shot) and after fine-tuning.
* :func:`learning_curve_table` / :func:`fig_learning_curve`: gamma RMSE against the number of training slabs.
* :func:`chapter_metrics`: the numbers of ``03_fine_tuning_metrics.json``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .bootstrap import bootstrap_metrics

#: quantity -> (model column, DFT column, label, unit)
QUANTITIES = {
    "gamma": ("gamma_model_j_per_m2", "gamma_dft_j_per_m2", "surface energy", "J/m²"),
    "bulk": ("eps_model_ev_per_atom", "eps_dft_ev_per_atom", "bulk energy", "eV/atom"),
    "slab": ("e_slab_model_ev_per_atom", "e_slab_dft_ev_per_atom", "slab energy", "eV/atom"),
}
ARM_LABELS = {"zero-shot": "chgnet-0.3.0 zero-shot", "specialised": "specialised (scratch)",
              "fine-tuned": "fine-tuned (chgnet-0.3.0)"}  # fmt: skip
POOLED = "all"


def run_label(arm: str, model: str) -> str:
    """The row label of a run: chapter 01 models by name (``<model> (ch. 01)``), the others by arm."""
    return f"{model} (ch. 01)" if arm == "universal" else ARM_LABELS.get(arm, arm)


def combine(trained: pd.DataFrame, universal: pd.DataFrame | None = None, paired: bool = True) -> pd.DataFrame:
    """Trained/zero-shot and universal per-slab rows at full training size, with a ``run`` column; with
    ``paired`` only the slabs of each element that every run predicted (:func:`common_slabs`)."""
    parts = [trained[trained["fraction"] >= 1.0]] if len(trained) else []
    if universal is not None and len(universal):
        parts.append(universal)
    df = pd.concat(parts, ignore_index=True)
    df["model"] = df["model"].fillna("").astype(str).str.split("@").str[0]
    df["run"] = [run_label(a, m) for a, m in zip(df["arm"], df["model"], strict=True)]
    df = df[np.isfinite(df["gamma_model_j_per_m2"].astype(float))]
    return common_slabs(df) if paired else df.reset_index(drop=True)


def common_slabs(df: pd.DataFrame) -> pd.DataFrame:
    """Per element, the rows of the slabs that every run of that element predicted."""
    keep = []
    for _, g in df.groupby("element", sort=False):
        n_runs = g["run"].nunique()
        ids = g.groupby("id")["run"].nunique()
        keep.append(g[g["id"].isin(ids[ids == n_runs].index)])
    return pd.concat(keep, ignore_index=True) if keep else df.iloc[:0]


def run_order(df: pd.DataFrame) -> list[str]:
    """Rows of the figure: chapter 01 models, then zero-shot, specialised, fine-tuned."""
    first = sorted(r for r in df["run"].unique() if r.endswith("(ch. 01)"))
    return first + [ARM_LABELS[a] for a in ARM_LABELS if ARM_LABELS[a] in set(df["run"])]


def arm_metrics(df: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per (element or ``all``, run, quantity): n, rmse, mae, mse (model - DFT) with ``_lo``/``_hi``
    bootstrap bounds (slabs resampled with replacement, seeded)."""
    rows = []
    with warnings.catch_warnings():  # one bulk polymorph per element: a constant input to Spearman
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        for (el, run), g in [*df.groupby(["element", "run"], sort=True),
                             *((( POOLED, r), g) for r, g in df.groupby("run", sort=True))]:  # fmt: skip
            for q, (col_m, col_d, _, _) in QUANTITIES.items():
                ok = g[np.isfinite(g[col_m].astype(float)) & np.isfinite(g[col_d].astype(float))]
                if len(ok) < 2:
                    continue
                m = bootstrap_metrics(ok[col_d], ok[col_m], n_boot=n_boot, seed=seed)
                keys = [f"{k}{s}" for k in ("rmse", "mae", "mse") for s in ("", "_lo", "_hi")]
                rows.append({"element": el, "run": run, "quantity": q, "n": m["n"], **{k: m[k] for k in keys}})
    return pd.DataFrame(rows)


def metrics_display(metrics: pd.DataFrame, quantity: str = "gamma") -> pd.DataFrame:
    """RMSE [interval] of one quantity, elements as rows and runs as columns (3 decimals)."""
    t = metrics[metrics["quantity"] == quantity].copy()
    t["cell"] = [f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in zip(t["rmse"], t["rmse_lo"], t["rmse_hi"])]
    return t.pivot(index="element", columns="run", values="cell")


def signed_error_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean signed error of gamma (J/m², model - DFT) with intervals: per element, zero-shot chgnet-0.3.0,
    specialised and fine-tuned side by side, and the change from zero-shot to fine-tuned."""
    t = metrics[(metrics["quantity"] == "gamma") & metrics["run"].isin(ARM_LABELS.values())]
    out = t.pivot(index="element", columns="run", values="mse")
    for run in out.columns:
        sub = t[t["run"] == run].set_index("element")
        lo, hi = sub.loc[out.index, "mse_lo"], sub.loc[out.index, "mse_hi"]
        out[f"{run} 95%"] = [f"[{a:.3f}, {b:.3f}]" for a, b in zip(lo, hi, strict=True)]
    zs, ft = ARM_LABELS["zero-shot"], ARM_LABELS["fine-tuned"]
    if zs in out and ft in out:
        out["change (fine-tuned - zero-shot)"] = out[ft] - out[zs]
    return out.reset_index()


def surface_counts(df: pd.DataFrame) -> dict[str, int]:
    """Slabs per element in the (paired) table: the numbers in parentheses of Fig. 3."""
    return {el: int(g["id"].nunique()) for el, g in df.groupby("element", sort=False)}


def _triangles(x: float, y: float) -> dict[str, list[tuple[float, float]]]:
    """The three triangles tiling the unit square at (x, y): upper (apex at the bottom centre), lower left and
    lower right."""
    return {"gamma": [(x, y + 1), (x + 1, y + 1), (x + 0.5, y)],
            "bulk": [(x, y), (x + 0.5, y), (x, y + 1)],
            "slab": [(x + 0.5, y), (x + 1, y), (x + 1, y + 1)]}  # fmt: skip


def fig3_triangles(metrics: pd.DataFrame, counts: dict[str, int], runs: Sequence[str] | None = None,
                   elements: Sequence[str] | None = None):  # fmt: skip
    """Fig. 3: RMSE per element (columns, ``El (n surfaces)``) and run (rows), each square split into gamma (upper,
    J/m²), bulk energy (lower left, eV/atom) and slab energy (lower right, eV/atom) triangles, each quantity on
    its own colour scale, the value written in the triangle."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    elements = list(elements) if elements is not None else list(counts)
    runs = list(runs) if runs is not None else sorted(metrics["run"].unique())
    fig = plt.figure(figsize=(1.0 * len(elements) + 5.0, 0.85 * len(runs) + 1.4), layout="constrained")
    gs = fig.add_gridspec(1, 4, width_ratios=[max(1, len(elements)), 0.12, 0.12, 0.12])
    ax = fig.add_subplot(gs[0, 0])
    cmaps = {"gamma": "Blues", "bulk": "Oranges", "slab": "Greens"}
    m = metrics.set_index(["element", "run", "quantity"])["rmse"]
    for k, q in enumerate(QUANTITIES):
        cells = [(el, run, _triangles(j, len(runs) - 1 - i)[q]) for j, el in enumerate(elements)
                 for i, run in enumerate(runs)]  # fmt: skip
        vals = np.asarray([m.get((el, run, q), np.nan) for el, run, _ in cells], float)
        vmax = float(np.nanmax(vals)) if np.isfinite(vals).any() else 1.0
        pc = PolyCollection([t for _, _, t in cells], array=np.ma.masked_invalid(vals), cmap=cmaps[q],
                            edgecolor="white", lw=0.8)  # fmt: skip
        pc.set_clim(0, vmax)
        ax.add_collection(pc)
        for (_, _, tri), v in zip(cells, vals, strict=True):
            if np.isfinite(v):
                cx, cy = np.mean(tri, axis=0)
                ax.text(cx, cy, f"{v:.2f}" if q == "gamma" else f"{v:.3f}", ha="center", va="center", fontsize=6,
                        color="white" if v > 0.6 * vmax else "black")  # fmt: skip
        label, unit = QUANTITIES[q][2], QUANTITIES[q][3]
        fig.colorbar(pc, cax=fig.add_subplot(gs[0, k + 1]), label=f"{label} RMSE ({unit})")
    ax.set_xlim(0, len(elements))
    ax.set_ylim(0, len(runs))
    ax.set_xticks(np.arange(len(elements)) + 0.5, [f"{el} ({counts.get(el, 0)})" for el in elements], fontsize=8)
    ax.set_yticks(np.arange(len(runs)) + 0.5, list(reversed(runs)), fontsize=8)
    ax.set_aspect("equal")
    fig.suptitle("RMSE: upper gamma, lower left bulk energy, lower right slab energy", fontsize=9)
    return fig


def learning_curve_table(trained: pd.DataFrame, n_boot: int = 500, seed: int = 0) -> pd.DataFrame:
    """Gamma RMSE per (element, arm, training fraction) over the folds run, with the mean number of training
    slabs and a bootstrap interval (trained arms only)."""
    rows = []
    t = trained[trained["arm"].isin(["specialised", "fine-tuned"])]
    for (el, arm, frac), g in t.groupby(["element", "arm", "fraction"], sort=True):
        ok = g[np.isfinite(g["gamma_model_j_per_m2"].astype(float))]
        if len(ok) < 2:
            continue
        m = bootstrap_metrics(ok["gamma_dft_j_per_m2"], ok["gamma_model_j_per_m2"], n_boot=n_boot, seed=seed)
        rows.append({"element": el, "arm": arm, "fraction": frac, "n_train_slabs": float(g["n_train_slabs"].mean()),
                     "n": m["n"], "rmse": m["rmse"], "rmse_lo": m["rmse_lo"], "rmse_hi": m["rmse_hi"]})  # fmt: skip
    cols = ["element", "arm", "fraction", "n_train_slabs", "n", "rmse", "rmse_lo", "rmse_hi"]
    return pd.DataFrame(rows, columns=cols)


def fig_learning_curve(curve: pd.DataFrame, zero_shot: pd.DataFrame | None = None):
    """Gamma RMSE against training slabs, one panel per element: specialised vs fine-tuned (bars: 95 %), the
    zero-shot RMSE of the same element as a dashed line when ``zero_shot`` (an :func:`arm_metrics` table) is given."""
    import matplotlib.pyplot as plt

    els = sorted(curve["element"].unique())
    fig, axes = plt.subplots(1, max(1, len(els)), figsize=(3.0 * max(1, len(els)), 2.8), squeeze=False)
    for ax, el in zip(axes[0], els, strict=False):
        for arm, c in (("specialised", "tab:orange"), ("fine-tuned", "tab:blue")):
            g = curve[(curve["element"] == el) & (curve["arm"] == arm)].sort_values("n_train_slabs")
            if len(g):
                err = np.vstack([g["rmse"] - g["rmse_lo"], g["rmse_hi"] - g["rmse"]])
                ax.errorbar(g["n_train_slabs"], g["rmse"], yerr=err, marker="o", color=c, label=arm, capsize=2)
        if zero_shot is not None:
            z = zero_shot[(zero_shot["element"] == el) & (zero_shot["quantity"] == "gamma")
                          & (zero_shot["run"] == ARM_LABELS["zero-shot"])]  # fmt: skip
            if len(z):
                ax.axhline(float(z["rmse"].iloc[0]), ls="--", color="grey", label="zero-shot")
        ax.set_title(el, fontsize=9)
        ax.set_xlabel("training slabs")
    axes[0][0].set_ylabel("gamma RMSE (J/m²)")
    if axes[0][0].get_legend_handles_labels()[0]:
        axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def chapter_metrics(metrics: pd.DataFrame, signed: pd.DataFrame, counts: dict, costs: pd.DataFrame,
                    info: dict) -> dict:  # fmt: skip
    """The numbers of chapter 03: settings and elements (``info``), surface counts, RMSE/MAE/MSE with intervals
    per element, run and quantity, the signed-error table and the training cost per arm."""
    by = {}
    for r in metrics.itertuples():
        by.setdefault(r.element, {}).setdefault(r.run, {})[r.quantity] = {
            k: getattr(r, k) for k in ("n", "rmse", "rmse_lo", "rmse_hi", "mae", "mse", "mse_lo", "mse_hi")
        }
    cost = {}
    if len(costs):
        for arm, g in costs.groupby("arm"):
            cost[arm] = {"runs": len(g), "train_seconds": float(g["train_seconds"].sum()),
                         "ms_per_atom_epoch": float(g["ms_per_atom_epoch"].mean())}  # fmt: skip
    return {**info, "surface_counts": counts, "metrics": by,
            "gamma_mean_signed_error": signed.to_dict(orient="records"), "training_cost": cost}  # fmt: skip
