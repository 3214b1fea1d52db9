"""Chapter 13 (transfer paper Fig. 5a-b): test energy and force MAE against the number N of training structures,
transfer (method 4), the residual-AtomRef variant (method 5) and training from scratch (method 1), from the runs of
:mod:`~uipbench.transfer.scaling`.

* :func:`fit_table`: power-law fits (slope, intercept, R², fit range) per functional, method and target, to the
  seed means above a threshold.
* :func:`fig5`: one row per target functional (r2SCAN, and PBE beside it when run), energy (a) and force (b) MAE
  against N on log-log axes: mean over seeds (markers), min-max over seeds (band), the fit over its range (line,
  slope and R² in the legend), the untrained model with AtomRef refitted on each subset (dotted) and on the whole
  training part at N = 0 (left edge).
* :func:`efficiency_table`: the data-efficiency ratio with bootstrap-over-seeds intervals; :func:`chapter_metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .methods_report import label
from .scaling import DERIVED, TARGETS, data_efficiency, power_law_fit, predict_mae, size_means

#: the transfer paper's range of N (MP-r2SCAN subsets) and its fit threshold, for the chapter's comparison
PAPER_N_MAX = 190_000
PAPER_FIT_N_MIN = 1_000
TRAINED = ("m4-atomref-refit", "m1-scratch", "m5-atomref-residual")
TITLES = {"energy_covered": "energy, test frames with seen elements"}
COLORS = {"m4-atomref-refit": "C0", "m1-scratch": "C3", "m5-atomref-residual": "C2", "zero-shot-refit": "0.4"}


def fit_table(df: pd.DataFrame, n_min: float = 0.0, targets: Sequence[str] = ("energy", "force")) -> pd.DataFrame:
    """One row per (functional, method, target): :func:`~uipbench.transfer.scaling.power_law_fit` of the seed
    means (mean actual N, mean MAE) with N >= ``n_min``; zero-shot runs are left out (they do not train)."""
    rows = []
    for t in targets:
        means = size_means(df, t)
        for (fn, m), g in means.groupby(["functional", "method"], sort=True):
            if m.startswith("zero-shot"):
                continue
            rows.append({"functional": fn, "method": m, "target": t, **power_law_fit(g["n"], g["mean"], n_min)})
    cols = ["functional", "method", "target", "slope", "intercept", "r2", "n_lo", "n_hi", "n_points", "n_min"]
    return pd.DataFrame(rows, columns=cols)


def zero_shot_at_zero(df: pd.DataFrame, target: str) -> pd.DataFrame:
    """The N = 0 point per functional: zero-shot with AtomRef refitted on the largest subset (the training part)."""
    z = df[df["method"] == "zero-shot-refit"]
    if z.empty:
        return pd.DataFrame(columns=["functional", "n_train", target])
    top = z.loc[z.groupby("functional")["n_target"].transform("max") == z["n_target"]]
    return top.groupby("functional", as_index=False).agg(n_train=("n_train", "mean"), **{target: (target, "mean")})


def fig5(df: pd.DataFrame, fits: pd.DataFrame, targets: Sequence[str] = ("energy", "force")):
    """Fig. 5a-b: MAE vs N, log-log, one row per functional, one column per target (see the module docstring)."""
    import matplotlib.pyplot as plt

    functionals = list(dict.fromkeys(df["functional"]))
    if not functionals:  # no finished runs (too little data, or none trained yet): say so
        fig, ax = plt.subplots(figsize=(6, 1.6))
        ax.axis("off")
        ax.text(0.5, 0.5, "Fig. 5: no finished training runs (see the split above)", ha="center", va="center")
        return fig
    fig, axes = plt.subplots(len(functionals), len(targets), figsize=(5.2 * len(targets), 4.0 * len(functionals)),
                             squeeze=False)  # fmt: skip
    x0 = max(1.0, 0.5 * float(df["n_train"].min())) if len(df) else 1.0
    for r, fn in enumerate(functionals):
        for c, t in enumerate(targets):
            ax = axes[r, c]
            means = size_means(df[df["functional"] == fn], t)
            if not (np.isfinite(means["mean"]) & (means["mean"] > 0)).any():  # e.g. no covered test frame yet
                ax.text(0.5, 0.5, f"no positive {t} MAE to draw", ha="center", va="center", transform=ax.transAxes)
                ax.set_title(f"{TITLES.get(t, t)}, {fn} targets", fontsize=10)
                continue
            _draw_methods(ax, means, fits[(fits["functional"] == fn) & (fits["target"] == t)])
            _draw_zero_shot(ax, means, zero_shot_at_zero(df[df["functional"] == fn], t), t, x0)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("training structures N")
            ax.set_ylabel(TARGETS[t][2] if t in TARGETS else DERIVED.get(t, t))
            ax.set_title(f"({'ab'[c] if c < 2 else c}) {TITLES.get(t, t)}, {fn} targets", fontsize=10)
            ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def _draw_methods(ax, means: pd.DataFrame, fits: pd.DataFrame) -> None:
    for m in TRAINED:
        g = means[means["method"] == m].sort_values("n")
        if g.empty:
            continue
        color = COLORS.get(m)
        f = fits[fits["method"] == m]
        text = label(m)
        if len(f) and np.isfinite(f["slope"].iloc[0]):
            fr = f.iloc[0]
            text += f": slope {fr['slope']:.2f}, R² {fr['r2']:.2f} (N {fr['n_lo']:.0f}-{fr['n_hi']:.0f})"
            xs = np.geomspace(fr["n_lo"], fr["n_hi"], 20)
            ax.plot(xs, predict_mae(fr, xs), "-", color=color, lw=1.0, alpha=0.8)
        ax.fill_between(g["n"], g["lo"], g["hi"], color=color, alpha=0.15, lw=0)
        ax.plot(g["n"], g["mean"], "o", color=color, ms=5, label=text)


def _draw_zero_shot(ax, means: pd.DataFrame, at_zero: pd.DataFrame, target: str, x0: float) -> None:
    g = means[means["method"] == "zero-shot-refit"].sort_values("n")
    if not g.empty:
        ax.plot(g["n"], g["mean"], ":", color=COLORS["zero-shot-refit"], lw=1.0,
                label="zero-shot, AtomRef refit on the subset")  # fmt: skip
    if len(at_zero):
        v = float(at_zero[target].iloc[0])
        text = f"N = 0: zero-shot, AtomRef of all {at_zero['n_train'].iloc[0]:.0f}"
        ax.plot([x0], [v], "*", color="k", ms=10, label=text)
        ax.axvline(x0 * 1.4, color="0.8", lw=0.6)
        ax.annotate("0", (x0, 0), xycoords=("data", "axes fraction"), xytext=(0, -12), textcoords="offset points",
                    ha="center", fontsize=8)  # fmt: skip


def efficiency_table(
    df: pd.DataFrame,
    n_min: float = 0.0,
    n_boot: int = 1000,
    seed: int = 0,
    targets: Sequence[str] = ("energy", "force"),
    transfer: Sequence[str] = ("m4-atomref-refit", "m5-atomref-residual"),
) -> pd.DataFrame:
    """Data-efficiency ratio (scratch structures needed / N) of each transfer method against ``m1-scratch`` at the
    largest N, per functional and target, with a bootstrap-over-seeds interval."""
    rows = []
    for fn in dict.fromkeys(df["functional"]):
        for t in targets:
            for m in transfer:
                if m not in set(df["method"]) or "m1-scratch" not in set(df["method"]):
                    continue
                r = data_efficiency(df, t, "m1-scratch", m, None, n_min, fn, n_boot, seed)
                rows.append({"functional": fn, "target": t, "transfer": m, **{k: v for k, v in r.items()
                             if not k.startswith("fit_") and k not in ("target", "functional")}})  # fmt: skip
    return pd.DataFrame(rows, columns=None if rows else ["functional", "target", "transfer", "ratio"])


def data_range(df: pd.DataFrame) -> dict:
    """This sweep's N range against the paper's."""
    n_max = float(df["n_train"].max()) if len(df) else 0.0
    return {"n_min": float(df["n_train"].min()) if len(df) else 0.0, "n_max": n_max, "paper_n_max": PAPER_N_MAX,
            "paper_fit_n_min": PAPER_FIT_N_MIN, "decades_below_paper_max": float(np.log10(PAPER_N_MAX / n_max))
            if n_max > 0 else None, "overlaps_paper_fit_range": bool(n_max >= PAPER_FIT_N_MIN)}  # fmt: skip


def chapter_metrics(df: pd.DataFrame, fits: pd.DataFrame, eff: pd.DataFrame, sweep, dataset_info: Mapping) -> dict:
    """The numbers of chapter 13 (its metrics file)."""
    means = {t: {f"{r['functional']}/{r['method']}/N{int(r['n_target'])}": {"n": r["n"], "mean": r["mean"],
                 "lo": r["lo"], "hi": r["hi"], "seeds": int(r["seeds"])} for _, r in size_means(df, t).iterrows()}
             for t in ("energy", "force", "energy_covered", "test_covered")}  # fmt: skip
    fit = {f"{r['functional']}/{r['method']}/{r['target']}": {k: r[k] for k in ("slope", "r2", "n_lo", "n_hi",
           "n_points")} for _, r in fits.iterrows()}  # fmt: skip
    ratios = {f"{r['functional']}/{r['transfer']}/{r['target']}": {k: r[k] for k in ("n", "ratio", "ratio_lo",
              "ratio_hi", "extrapolated", "extrapolation_factor", "n_seeds")} for _, r in eff.iterrows()}  # fmt: skip
    return {"dataset": dict(dataset_info), "range": data_range(df), "budget": sweep.budget.as_dict(),
            "sizes": sorted({n for v in sweep.subsets.values() for n in v}),
            "runs": {"planned": len(sweep.meta), "finished": len(sweep.records or {}),
                     "failed_or_missing": len(sweep.failures or {})},
            "mae_by_size": means, "fits": fit, "data_efficiency": ratios}  # fmt: skip
