"""Figures and numbers of the energy-shift chapter (transfer paper Figs. 1b-d, chapter 10), and the parity plot
both transfer chapters share.

* :func:`parity_with_marginals`, :func:`stats_label`: a parity scatter with marginal histograms and its statistics;
* :func:`fig1cd_element_importance`, :func:`fig1cd_linear_shift`: periodic tables of which elements drive the
  r2SCAN - GGA/GGA+U formation-energy difference (random-forest permutation importance; linear coefficients);
* :func:`chapter_metrics`: the numbers of ``10_energy_shift_metrics.json``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..figures import periodic_table_heatmap
from .energy_shift import regression_stats


def stats_label(s: Mapping[str, float]) -> str:
    """Short legend text: n, Pearson r, least-squares slope."""
    return f"n = {s['n']}\nPearson r = {s['pearson_r']:.3f}\nslope = {s['slope']:.3f}"


def parity_with_marginals(
    x,
    y,
    xlabel: str,
    ylabel: str,
    title: str = "",
    identity: bool = False,
    bins: int = 40,
    color: str = "C0",
    figsize=(5.6, 5.6),
):
    """Scatter of y against x with marginal histograms (top: x, right: y), the least-squares line, its stats.

    ``identity`` also draws y = x (use when both axes are on one scale). Returns (fig, stats dict).
    """
    import matplotlib.pyplot as plt

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    m = np.isfinite(x) & np.isfinite(y)
    s = regression_stats(x[m], y[m])
    fig = plt.figure(figsize=figsize)
    gs = fig.add_gridspec(2, 2, width_ratios=(4, 1), height_ratios=(1, 4), wspace=0.05, hspace=0.05)
    ax = fig.add_subplot(gs[1, 0])
    axx = fig.add_subplot(gs[0, 0], sharex=ax)
    axy = fig.add_subplot(gs[1, 1], sharey=ax)
    ax.scatter(x[m], y[m], s=8, alpha=0.5, color=color, edgecolors="none")
    lo = min(x[m].min(), y[m].min()) if identity else x[m].min()
    hi = max(x[m].max(), y[m].max()) if identity else x[m].max()
    xs = np.linspace(lo, hi, 2)
    ax.plot(xs, s["slope"] * xs + s["intercept"], color="k", lw=1, label="least-squares fit")
    if identity:
        ax.plot(xs, xs, color="0.5", lw=0.8, ls="--", label="y = x")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.text(
        0.03,
        0.97,
        stats_label(s),
        transform=ax.transAxes,
        va="top",
        fontsize=9,
        bbox=dict(facecolor="white", edgecolor="0.8", alpha=0.9),
    )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    axx.hist(x[m], bins=bins, color=color, alpha=0.7)
    axy.hist(y[m], bins=bins, color=color, alpha=0.7, orientation="horizontal")
    axx.tick_params(labelbottom=False)
    axy.tick_params(labelleft=False)
    axx.set_ylabel("count", fontsize=8)
    axy.set_xlabel("count", fontsize=8)
    if title:
        axx.set_title(title, fontsize=10)
    return fig, s


def _two_tables(importance: Mapping[str, pd.DataFrame], column: str, title: str, **heatmap):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(10, 11))
    for ax, (name, table), tag in zip(axes, importance.items(), "cd", strict=False):
        periodic_table_heatmap(table[column].to_dict(), ax=ax, **heatmap)
        ax.set_title(title.format(tag=tag, name=name), fontsize=10)
    return fig


def fig1cd_element_importance(importance: Mapping[str, pd.DataFrame]):
    """Square root of the held-out permutation importance of each element, one periodic table per target."""
    vmax = max(t["permutation_importance_ev"].max() for t in importance.values())
    return _two_tables(
        importance,
        "permutation_importance_ev",
        "({tag}) r$^2$SCAN - GGA/GGA+U formation energy, {name}",
        cmap="viridis",
        vmin=0,
        vmax=vmax,
        fmt="{:.3f}",
        label="sqrt(permutation importance) (eV/atom), held-out folds",
    )


def fig1cd_linear_shift(importance: Mapping[str, pd.DataFrame]):
    """Signed least-squares coefficient of each element fraction (eV/atom per unit fraction), one table per target."""
    lim = max(t["linear_coefficient_ev_per_atom"].abs().quantile(0.95) for t in importance.values())
    return _two_tables(
        importance,
        "linear_coefficient_ev_per_atom",
        "({tag}) signed per-element shift of the formation-energy difference, {name}",
        cmap="RdBu_r",
        center=0.0,
        vmin=-lim,
        vmax=lim,
        fmt="{:.2f}",
        label="linear coefficient (eV/atom per unit fraction)",
    )


def importance_table(importance: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Tidy per (target, element) rows of the element-importance tables."""
    return pd.concat(dict(importance), names=["target", "element"]).reset_index()


def top_elements(importance: Mapping[str, pd.DataFrame], n: int = 10) -> dict[str, list[str]]:
    return {
        k: list(t.sort_values("permutation_importance_ev2", ascending=False).index[:n]) for k, t in importance.items()
    }


def chapter_metrics(
    data: pd.DataFrame,
    raw: pd.DataFrame,
    pairing,
    elements: list[str],
    stats_1b: dict,
    checks: dict,
    vs_exp: dict,
    chg: dict,
    corrections: pd.DataFrame,
    model_metrics: dict,
    importance: Mapping[str, pd.DataFrame],
) -> dict:
    """The numbers of chapter 10 (``10_energy_shift_metrics.json``)."""
    shift = data["e_r2scan_ev_per_atom"] - data["e_gga_ev_per_atom"]
    return {
        "n_paired": len(data),
        "n_rxnnet_rows": len(raw),
        "n_dropped_no_r2scan": pairing.counts.get("dropped:no e_r2scan_ev_per_atom", 0),
        "n_elements": len(elements),
        "fig1b_total_energy": stats_1b,
        "fig1b_total_energy_corrections_removed": regression_stats(
            data["e_r2scan_ev_per_atom"], data["e_gga_uncorrected_ev_per_atom"]
        ),
        "r2scan_minus_gga_total_energy_mean_ev_per_atom": float(shift.mean()),
        "formation_energy_linearity_max_residual_ev_per_atom": {
            k: v["max_residual_ev_per_atom"] for k, v in checks.items()
        },
        "formation_energy_vs_experiment": {
            k: {kk: v[kk] for kk in ("n", "mae", "mean_difference")} for k, v in vs_exp.items()
        },
        "e_gga_vs_e_chgnet_mae_ev_per_atom": chg["mae"],
        "n_mp2020_reconstruction_failed": int((corrections["error"] != "").sum()),
        "element_importance_models": model_metrics,
        "top_elements_permutation_importance": top_elements(importance),
    }
