"""Metrics and figures of the surface-energy benchmark (surfaces paper, Fig. 1, chapter 01), from the per-slab
results table of :func:`uipbench.surfaces.protocols.results_table`.

* :func:`metrics_table`: MAE, RMSE, mean signed error, MAPE, R^2, Spearman per (model, protocol), each with a
  seeded bootstrap 95 % interval (:func:`uipbench.surfaces.bootstrap.bootstrap_metrics`).
* :func:`coverage_table`: how many slabs each run evaluated, and why the others were not.
* :func:`error_energy_correlation`: gamma error against the DFT bulk energy per atom and the (reconstructed) DFT
  slab energy per atom, with Pearson and Spearman coefficients (the paper's claim that errors track the energy).
* :func:`bulk_reference_sensitivity`: how much the bulk reference (matched MP polymorph vs the slab's own OUC)
  moves gamma and the MAE, per (model, protocol); :func:`polymorph_matches`: how many MP polymorphs the facets of
  each element matched.
* ``fig1a_bulk_parity`` ... ``fig1e_error_vs_energy``, :func:`fig_bulk_reference_sensitivity`: matplotlib figures.
* :func:`chapter_metrics`: the numbers of ``01_surface_energies_metrics.json``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .bootstrap import METRICS, bootstrap_metrics

__all__ = [
    "METRICS",
    "bootstrap_metrics",
    "bulk_reference_metrics",
    "bulk_reference_sensitivity",
    "chapter_metrics",
    "coverage_table",
    "error_energy_correlation",
    "fig1a_bulk_parity",
    "fig1b_slab_parity",
    "fig1c_gamma_parity",
    "fig1d_error_distributions",
    "fig1e_error_vs_energy",
    "fig_bulk_reference_sensitivity",
    "metrics_table",
    "metrics_with_intervals",
    "polymorph_matches",
    "reason_category",
]


def metrics_table(results: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per (model, protocol): gamma metrics (J/m^2; MAPE in %) over the slabs evaluated ``ok``."""
    rows = []
    for (model, protocol), g in results.groupby(["model", "protocol"], sort=True):
        ok = g[(g["status"] == "ok") & g["gamma_model_j_per_m2"].notna()]
        if len(ok) < 3:
            continue
        m = bootstrap_metrics(ok["gamma_dft_j_per_m2"], ok["gamma_model_j_per_m2"], n_boot=n_boot, seed=seed)
        rows.append({"model": model, "protocol": protocol, **m})
    return pd.DataFrame(rows)


def coverage_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per (model, protocol): slabs selected, evaluated ok, failed, not evaluated, and the reasons (grouped)."""
    rows = []
    for (model, protocol), g in results.groupby(["model", "protocol"], sort=True):
        reasons = g.loc[g["status"] != "ok", "reason"].map(reason_category).value_counts()
        rows.append(
            {
                "model": model,
                "protocol": protocol,
                "selected": len(g),
                "ok": int((g["status"] == "ok").sum()),
                "failed": int((g["status"] == "failed").sum()),
                "not_evaluated": int((g["status"] == "not evaluated").sum()),
                "fraction_ok": float((g["status"] == "ok").mean()),
                "with_dft_bulk": int(((g["status"] == "ok") & g["eps_dft_ev_per_atom"].notna()).sum()),
                "reasons": "; ".join(f"{k}: {v}" for k, v in reasons.items()),
            }
        )
    return pd.DataFrame(rows)


def reason_category(reason: str) -> str:
    """Short category of a reason string (the text before the first parenthesis / detail)."""
    if not reason:
        return ""
    r = reason.split(" (")[0]
    if r.startswith("no OUC: no repeat vector"):
        return "no OUC: no repeat vector of the stacking"
    if r.startswith("no MP match: OUC matches none"):
        return "no MP match: OUC matches no MP polymorph"
    return r[:80]


def error_energy_correlation(results: pd.DataFrame) -> pd.DataFrame:
    """Per (model, protocol): Pearson and Spearman of the gamma error against the DFT bulk energy per atom and
    against the reconstructed DFT slab energy per atom (slabs with an MP match only)."""
    rows = []
    ok = results[(results["status"] == "ok") & results["eps_dft_ev_per_atom"].notna()]
    for (model, protocol), g in ok.groupby(["model", "protocol"], sort=True):
        if len(g) < 3:
            continue
        for x in ("eps_dft_ev_per_atom", "e_slab_dft_ev_per_atom"):
            for y in ("error_j_per_m2", "abs_error_j_per_m2"):
                rows.append(
                    {
                        "model": model,
                        "protocol": protocol,
                        "x": x,
                        "y": y,
                        "n": len(g),
                        "pearson": float(stats.pearsonr(g[x], g[y]).statistic),
                        "spearman": float(stats.spearmanr(g[x], g[y]).statistic),
                    }
                )
    return pd.DataFrame(rows)


#: columns of ``surfaces_gamma_results.csv`` (every slab, model, protocol) and of the Fig. 1c table (ok rows)
GAMMA_RESULT_COLUMNS = ["id", "element", "miller", "model", "protocol", "status", "reason", "n_atoms",
                        "gamma_dft_j_per_m2", "gamma_model_j_per_m2", "error_j_per_m2", "abs_error_j_per_m2",
                        "eps_dft_ev_per_atom", "eps_model_ev_per_atom", "e_slab_dft_ev_per_atom",
                        "e_slab_model_ev_per_atom", "bulk_reference", "bulk_reference_reason",
                        "gamma_model_ouc_j_per_m2", "gamma_model_ideal_j_per_m2", "eps_model_ouc_ev_per_atom",
                        "lattice_volume_mismatch"]  # fmt: skip
FIG1C_COLUMNS = ["id", "element", "miller", "model", "protocol", "gamma_dft_j_per_m2", "gamma_model_j_per_m2"]


# ----------------------------------------------------------------------------------------------------------------
# figures

_PROTOCOL_COLORS = {"static": "tab:blue", "relaxed": "tab:orange"}


def _parity(ax, x, y, label_x, label_y, title, color="tab:blue", text=None):
    x, y = np.asarray(x, float), np.asarray(y, float)
    ax.scatter(x, y, s=9, alpha=0.6, color=color, edgecolor="none")
    if len(x):
        lo, hi = np.nanmin([x.min(), y.min()]), np.nanmax([x.max(), y.max()])
        pad = 0.05 * (hi - lo if hi > lo else 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=0.8)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(label_x)
    ax.set_ylabel(label_y)
    ax.set_title(title, fontsize=10)
    if text:
        ax.text(
            0.04,
            0.96,
            text,
            transform=ax.transAxes,
            va="top",
            fontsize=8,
            bbox=dict(boxstyle="round", fc="white", ec="0.8", alpha=0.9),
        )


#: panels per row of the multi-model figures: wider figures shrink on the book's page until the annotations are
#: unreadable (issue 12), so more models wrap onto more rows
MAX_COLS = 4


def _grid(n_rows: int, n_cols: int, size: float = 3.3):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(size * n_cols + 0.4, size * n_rows + 0.3), squeeze=False, constrained_layout=True
    )
    return fig, axes


def _panel_grid(blocks: int, per_block: int, size: float = 3.3):
    """Axes for ``blocks`` groups (protocols, energy variables) of ``per_block`` panels (models), each group on
    its own rows of at most :data:`MAX_COLS`; returns (fig, axes[block][panel]) with unused axes hidden."""
    ncol = min(MAX_COLS, max(1, per_block))
    rows_per = -(-max(1, per_block) // ncol)
    fig, axes = _grid(blocks * rows_per, ncol, size)
    flat = [list(axes[b * rows_per : (b + 1) * rows_per].ravel()) for b in range(blocks)]
    for block in flat:
        for ax in block[per_block:]:
            ax.set_visible(False)
    return fig, [block[:per_block] for block in flat]


def _share_limits(axes) -> None:
    """One axis range for every parity panel (models compare by eye only on the same scale)."""
    axes = [ax for ax in axes if ax.get_visible()]
    if not axes:
        return
    lo = min(ax.get_xlim()[0] for ax in axes)
    hi = max(ax.get_xlim()[1] for ax in axes)
    for ax in axes:
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)


def _energy_parity(
    results: pd.DataFrame,
    protocol: str,
    exclude: tuple[str, ...],
    quantity: str,
    xlabel: str,
    what: str,
    color: str | None = None,
):
    """One parity panel per model of ``<quantity>_model_ev_per_atom`` against ``<quantity>_dft_ev_per_atom``."""
    dft, model = f"{quantity}_dft_ev_per_atom", f"{quantity}_model_ev_per_atom"
    d = results[
        (results["protocol"] == protocol)
        & (results["status"] == "ok")
        & results[dft].notna()
        & ~results["model"].isin(exclude)
    ]
    models = sorted(d["model"].unique())
    fig, axes = _panel_grid(1, len(models))
    extra = {"color": color} if color else {}
    for ax, m in zip(axes[0], models, strict=False):
        g = d[d["model"] == m]
        err = g[model] - g[dft]
        _parity(
            ax,
            g[dft],
            g[model],
            xlabel,
            f"{m} / eV atom$^{{-1}}$",
            f"{m}: {what}, {protocol}",
            text=f"n = {len(g)}\nMAE = {1000 * err.abs().mean():.0f} meV/atom",
            **extra,
        )
    return fig


def fig1a_bulk_parity(results: pd.DataFrame, protocol: str = "static", exclude: tuple[str, ...] = ()):
    """Model vs MP DFT bulk energy per atom of the slab's bulk reference (the matched MP polymorph; the OUC where
    there is none, then without a DFT energy), one panel per model (``exclude``: models whose absolute energies
    are on another scale, e.g. trained on r2SCAN)."""
    return _energy_parity(results, protocol, exclude, "eps", "DFT (MP PBE) / eV atom$^{-1}$", "bulk")


def fig1b_slab_parity(results: pd.DataFrame, protocol: str = "static", exclude: tuple[str, ...] = ()):
    """Model vs reconstructed DFT slab energy per atom, one panel per model."""
    return _energy_parity(
        results, protocol, exclude, "e_slab", "DFT slab (reconstructed) / eV atom$^{-1}$", "slab", color="tab:green"
    )


def fig1c_gamma_parity(results: pd.DataFrame, metrics: pd.DataFrame | None = None):
    """Model vs DFT surface energy (J/m^2), rows = protocols, columns = models; x = y dashed."""
    d = results[(results["status"] == "ok")]
    models = sorted(d["model"].unique())
    protocols = [p for p in ("static", "relaxed") if p in set(d["protocol"])]
    fig, axes = _panel_grid(max(1, len(protocols)), len(models))
    for i, p in enumerate(protocols):
        for j, m in enumerate(models):
            g = d[(d["model"] == m) & (d["protocol"] == p)]
            text = f"n = {len(g)}"
            if metrics is not None:
                row = metrics[(metrics["model"] == m) & (metrics["protocol"] == p)]
                if len(row):
                    r = row.iloc[0]
                    text += f"\nMAE = {r['mae']:.3f} J/m$^2$\nMSE = {r['mse']:+.3f}\n$\\rho_s$ = {r['spearman']:.2f}"
            _parity(
                axes[i][j],
                g["gamma_dft_j_per_m2"],
                g["gamma_model_j_per_m2"],
                "$\\gamma$ DFT / J m$^{-2}$",
                "$\\gamma$ model / J m$^{-2}$",
                f"{m}, {p}",
                color=_PROTOCOL_COLORS.get(p, "tab:blue"),
                text=text,
            )
    _share_limits([ax for row in axes for ax in row])
    return fig


def fig1d_error_distributions(results: pd.DataFrame):
    """Box plot and violin plot of gamma errors (model - DFT, J/m^2) per model and protocol."""
    import matplotlib.pyplot as plt

    d = results[results["status"] == "ok"]
    groups = [
        (m, p)
        for m in sorted(d["model"].unique())
        for p in ("static", "relaxed")
        if len(d[(d["model"] == m) & (d["protocol"] == p)])
    ]
    data = [d[(d["model"] == m) & (d["protocol"] == p)]["error_j_per_m2"].to_numpy() for m, p in groups]
    labels = [f"{m}\n{p}" for m, p in groups]
    fig, axes = plt.subplots(2, 1, figsize=(max(6.0, 1.3 * len(groups)), 7.5), sharex=True, constrained_layout=True)
    axes[0].boxplot(data, tick_labels=labels, showfliers=True, flierprops=dict(markersize=3))
    parts = axes[1].violinplot(data, showmedians=True)
    for body, (_, p) in zip(parts["bodies"], groups, strict=True):
        body.set_facecolor(_PROTOCOL_COLORS.get(p, "tab:blue"))
        body.set_alpha(0.5)
    axes[1].set_xticks(range(1, len(labels) + 1), labels)
    for ax, title in zip(axes, ("box plot", "violin plot"), strict=True):
        ax.axhline(0, color="k", lw=0.8, ls="--")
        ax.set_ylabel("$\\gamma_{model} - \\gamma_{DFT}$ / J m$^{-2}$")
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    return fig


def fig1e_error_vs_energy(results: pd.DataFrame, corr: pd.DataFrame, protocol: str = "static"):
    """gamma error against the DFT bulk energy per atom and the reconstructed DFT slab energy per atom."""
    d = results[
        (results["protocol"] == protocol) & (results["status"] == "ok") & results["eps_dft_ev_per_atom"].notna()
    ]
    models = sorted(d["model"].unique())
    fig, axes = _panel_grid(2, len(models))
    for j, m in enumerate(models):
        g = d[d["model"] == m]
        for i, (x, lab) in enumerate(
            (
                ("eps_dft_ev_per_atom", "DFT bulk energy / eV atom$^{-1}$"),
                ("e_slab_dft_ev_per_atom", "DFT slab energy (reconstr.) / eV atom$^{-1}$"),
            )
        ):
            ax = axes[i][j]
            ax.scatter(g[x], g["error_j_per_m2"], s=9, alpha=0.6, edgecolor="none")
            ax.axhline(0, color="k", lw=0.8, ls="--")
            c = corr[
                (corr["model"] == m)
                & (corr["protocol"] == protocol)
                & (corr["x"] == x)
                & (corr["y"] == "error_j_per_m2")
            ]
            if len(c):
                ax.text(
                    0.04,
                    0.96,
                    f"Pearson {c.iloc[0]['pearson']:+.2f}\nSpearman {c.iloc[0]['spearman']:+.2f}",
                    transform=ax.transAxes,
                    va="top",
                    fontsize=8,
                    bbox=dict(boxstyle="round", fc="white", ec="0.8", alpha=0.9),
                )
            ax.set_xlabel(lab)
            ax.set_ylabel("$\\gamma$ error / J m$^{-2}$")
            ax.set_title(f"{m}, {protocol}", fontsize=10)
    return fig


# ----------------------------------------------------------------------------------------------------------------
# which bulk reference: matched MP polymorph (default) vs the slab's own OUC

#: a slab "moves" when the reference changes its gamma by more than this fraction
MOVE_FRACTION = 0.05


def bulk_reference_sensitivity(results: pd.DataFrame, move_fraction: float = MOVE_FRACTION) -> pd.DataFrame:
    """Per (model, protocol), over the slabs evaluated ok that have both references: the shift
    dgamma = gamma(MP polymorph) - gamma(OUC) (J/m^2: median, mean, 5 and 95 % quantiles, largest |dgamma|), how many
    slabs move by more than ``move_fraction`` of |gamma(OUC)|, the MAE against DFT with each reference on those
    slabs, the slabs that fell back to the OUC (``n_fallback``) and, for relaxed rows, the median and largest
    |relaxed OUC / relaxed polymorph volume per atom - 1| (the lattice the slab was relaxed on against the lattice
    of its energy reference)."""
    rows = []
    ok = results[results["status"] == "ok"]
    for (model, protocol), g in ok.groupby(["model", "protocol"], sort=True):
        both = g[g["gamma_model_ideal_j_per_m2"].notna() & g["gamma_model_ouc_j_per_m2"].notna()]
        d = both["delta_gamma_ref_j_per_m2"]
        moved = d.abs() > move_fraction * both["gamma_model_ouc_j_per_m2"].abs()
        dft = both["gamma_dft_j_per_m2"]
        mismatch = both["lattice_volume_mismatch"].abs().dropna()
        rows.append(
            {
                "model": model,
                "protocol": protocol,
                "n_ok": len(g),
                "n_both": len(both),
                "n_fallback": int((g["bulk_reference"] != "mp-polymorph").sum()),
                "dgamma_median": float(d.median()) if len(d) else np.nan,
                "dgamma_mean": float(d.mean()) if len(d) else np.nan,
                "dgamma_q05": float(d.quantile(0.05)) if len(d) else np.nan,
                "dgamma_q95": float(d.quantile(0.95)) if len(d) else np.nan,
                "dgamma_max_abs": float(d.abs().max()) if len(d) else np.nan,
                "n_moved": int(moved.sum()),
                "fraction_moved": float(moved.mean()) if len(d) else np.nan,
                "mae_ideal": float((both["gamma_model_ideal_j_per_m2"] - dft).abs().mean()) if len(d) else np.nan,
                "mae_ouc": float((both["gamma_model_ouc_j_per_m2"] - dft).abs().mean()) if len(d) else np.nan,
                "volume_mismatch_median": float(mismatch.median()) if len(mismatch) else np.nan,
                "volume_mismatch_max": float(mismatch.max()) if len(mismatch) else np.nan,
            }
        )
    return pd.DataFrame(rows)


def bulk_reference_metrics(sensitivity: pd.DataFrame) -> dict:
    """The sensitivity table as ``model/protocol`` -> numbers (for the chapter's metrics file)."""
    return _by_run(sensitivity)


def polymorph_matches(refs: pd.DataFrame) -> pd.DataFrame:
    """Per element (slabs with an MP match): slabs, distinct MP polymorphs their OUCs matched, and the spread of
    those polymorphs' DFT energies per atom (meV/atom): where it is not 0 the facets of one element are referred
    to different bulks."""
    m = refs[refs["matched"]]
    out = m.groupby("element").agg(
        slabs=("id", "size"),
        polymorphs=("mp_ref_index", "nunique"),
        dft_spread_mev_per_atom=("eps_dft_ev_per_atom", lambda x: 1000 * float(x.max() - x.min())),
    )
    return out.reset_index().sort_values(["dft_spread_mev_per_atom", "element"], ascending=[False, True])


def fig_bulk_reference_sensitivity(results: pd.DataFrame, move_fraction: float = MOVE_FRACTION):
    """dgamma = gamma(MP polymorph) - gamma(OUC) against gamma(OUC), one panel per (protocol, model); slabs that move
    by more than ``move_fraction`` are drawn in red, the dashed lines are +-``move_fraction`` gamma."""
    d = results[(results["status"] == "ok") & results["delta_gamma_ref_j_per_m2"].notna()]
    models = sorted(d["model"].unique())
    protocols = [p for p in ("static", "relaxed") if p in set(d["protocol"])]
    fig, axes = _grid(max(1, len(protocols)), max(1, len(models)))
    for i, p in enumerate(protocols):
        for j, m in enumerate(models):
            ax = axes[i][j]
            g = d[(d["model"] == m) & (d["protocol"] == p)]
            x, y = g["gamma_model_ouc_j_per_m2"], g["delta_gamma_ref_j_per_m2"]
            moved = y.abs() > move_fraction * x.abs()
            ax.scatter(x[~moved], y[~moved], s=9, alpha=0.6, color=_PROTOCOL_COLORS.get(p), edgecolor="none")
            ax.scatter(x[moved], y[moved], s=12, alpha=0.8, color="tab:red", edgecolor="none")
            if len(g):
                xs = np.linspace(min(0.0, float(x.min())), float(x.max()), 10)
                for sign in (1, -1):
                    ax.plot(xs, sign * move_fraction * np.abs(xs), "k--", lw=0.7)
            ax.axhline(0, color="k", lw=0.6)
            ax.set_xlabel("$\\gamma$ (OUC reference) / J m$^{-2}$")
            ax.set_ylabel("$\\gamma_{MP\\ polymorph} - \\gamma_{OUC}$ / J m$^{-2}$")
            ax.set_title(f"{m}, {p}: {int(moved.sum())}/{len(g)} move > {100 * move_fraction:.0f} %", fontsize=10)
    return fig


# ----------------------------------------------------------------------------------------------------------------
# the chapter's numbers


def _by_run(table: pd.DataFrame) -> dict:
    """``model/protocol`` -> the row's other columns."""
    return {
        f"{r['model']}/{r['protocol']}": {k: r[k] for k in table.columns if k not in ("model", "protocol")}
        for _, r in table.iterrows()
    }


def chapter_metrics(
    refs: pd.DataFrame,
    results: pd.DataFrame,
    coverage: pd.DataFrame,
    metrics: pd.DataFrame,
    metrics_paired: pd.DataFrame,
    corr: pd.DataFrame,
    run_models: list[str],
    skipped_models: dict[str, str],
    relaxed_ids: list[str],
    other_scale: tuple[str, ...],
) -> dict:
    """The numbers of chapter 01 (``01_surface_energies_metrics.json``): OUC and MP coverage, evaluated fractions,
    gamma metrics (all slabs and the relaxed subset), bulk and slab energy MAE, error-energy correlations."""
    ok = results[(results["status"] == "ok") & results["eps_dft_ev_per_atom"].notna()]
    static = ok[(ok["protocol"] == "static") & ~ok["model"].isin(other_scale)]
    return {
        "n_slabs": len(refs),
        "ouc_found": int(refs["ouc_found"].sum()),
        "ouc_found_fraction": float(refs["ouc_found"].mean()),
        "mp_matched": int(refs["matched"].sum()),
        "mp_matched_fraction": float(refs["matched"].mean()),
        "models_run": run_models,
        "models_unavailable": skipped_models,
        "relaxed_subset_size": len(relaxed_ids),
        "coverage": {
            f"{r.model}/{r.protocol}": {
                "selected": r.selected,
                "ok": r.ok,
                "failed": r.failed,
                "not_evaluated": r.not_evaluated,
            }
            for r in coverage.itertuples()
        },
        "gamma_metrics_j_per_m2": _by_run(metrics),
        "gamma_metrics_relaxed_subset_j_per_m2": _by_run(metrics_paired),
        "bulk_mae_ev_per_atom": {
            m: float(g["bulk_error_ev_per_atom"].abs().mean()) for m, g in static.groupby("model")
        },
        "slab_mae_ev_per_atom": {
            m: float(g["slab_error_ev_per_atom"].abs().mean()) for m, g in static.groupby("model")
        },
        "error_vs_energy": {
            f"{r.model}/{r.protocol}/{r.x}/{r.y}": {"pearson": r.pearson, "spearman": r.spearman, "n": r.n}
            for r in corr.itertuples()
        },
    }


def metrics_with_intervals(metrics: pd.DataFrame) -> pd.DataFrame:
    """The metrics table for reading: each metric as ``value [low, high]`` (3 decimals)."""
    show = metrics.copy()
    for k in METRICS:
        show[k] = [f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in zip(show[k], show[f"{k}_lo"], show[f"{k}_hi"])]
    return show[["model", "protocol", "n", *METRICS]]
