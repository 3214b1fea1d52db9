"""Figures and numbers of the kernel-PCA chapter (surfaces paper, Fig. 2, chapter 02), from the per-descriptor
analyses of :func:`uipbench.surfaces.out_of_domain.analyse_descriptor`.

* :func:`plot_kpca_map` (one axes), :func:`fig2_kpca_map` (one descriptor), :func:`fig2_kpca_map_descriptors`
  (every descriptor side by side), :func:`fig2_ood_correlation` (|error| against the distance from bulk, and every
  Spearman rho with its interval);
* :func:`correlations`: rho of |error| with the distances per descriptor, against the colour model's errors and
  against each model's own errors;
* :func:`tidy_map_table`, :func:`chapter_metrics`: the tidy data and the numbers of ``02_kpca_map_metrics.json``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .out_of_domain import claim_statement, ood_correlations, verdict

MARKERS = {"FCC": "o", "BCC": "s", "HCP": "^", "other": "D", "unknown": "X"}


def plot_kpca_map(
    ax,
    table: pd.DataFrame,
    color_col: str = "abs_error_j_per_m2",
    highlight=(),
    title: str = "",
    vmax: float | None = None,
    cmap: str = "viridis",
    explained=None,
    colorbar: bool = True,
    legend: bool = True,
    label_all: bool = False,
):
    """One point per slab at (kPC1, kPC2), coloured by ``color_col`` (grey when missing), marker = lattice;
    slabs of the ``highlight`` elements get a red edge and their element label at the group's centre; with
    ``label_all`` every other element's cluster gets a small grey label at its median too."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    c = table[color_col].to_numpy(float) if color_col in table else np.full(len(table), np.nan)
    finite = c[np.isfinite(c)]
    norm = Normalize(0.0, vmax if vmax is not None else (np.quantile(finite, 0.98) if len(finite) else 1.0))
    cm = plt.get_cmap(cmap)
    hl = table["element"].isin(list(highlight)).to_numpy()
    for lat, mk in MARKERS.items():
        sel = (table["lattice"] == lat).to_numpy()
        if not sel.any():
            continue
        for is_hl in (False, True):
            s = sel & (hl == is_hl)
            if not s.any():
                continue
            cols = [cm(norm(v)) if np.isfinite(v) else (0.75, 0.75, 0.75, 1.0) for v in c[s]]
            ax.scatter(
                table["kpc1"][s],
                table["kpc2"][s],
                c=cols,
                marker=mk,
                s=34 if is_hl else 18,
                edgecolors="red" if is_hl else "none",
                linewidths=1.0 if is_hl else 0,
                alpha=0.9,
                zorder=3 if is_hl else 2,
            )
    if label_all:  # every element's cluster, small and grey (highlighted ones are labelled below, in red)
        for el, g in table[~hl].groupby("element", sort=True):
            ax.annotate(el, (g["kpc1"].median(), g["kpc2"].median()), fontsize=6.5, color="0.2", ha="left",
                        va="bottom", xytext=(4, 3), textcoords="offset points", zorder=4)  # fmt: skip
    offsets = [(5, 5), (5, -11), (-16, 5), (-16, -11), (8, 0), (-20, 0)]
    for k, el in enumerate(highlight):  # one label per element, at the median of its slabs
        s = table["element"] == el
        if s.any():
            ax.annotate(
                el,
                (table.loc[s, "kpc1"].median(), table.loc[s, "kpc2"].median()),
                fontsize=9,
                color="red",
                fontweight="bold",
                xytext=offsets[k % len(offsets)],
                textcoords="offset points",
                zorder=4,
            )
    xl, yl = "kPC1", "kPC2"
    if explained is not None:
        xl += f" ({100 * explained[0]:.0f}%)"
        yl += f" ({100 * explained[1]:.0f}%)"
    ax.set_xlabel(xl)
    ax.set_ylabel(yl)
    ax.set_title(title, fontsize=10)
    if legend:
        from matplotlib.lines import Line2D

        present = [lat for lat in MARKERS if (table["lattice"] == lat).any()]
        handles = [Line2D([], [], ls="", marker=MARKERS[lat], color="0.35", label=lat) for lat in present]
        if len(highlight):
            handles.append(Line2D([], [], ls="", marker="o", mfc="none", mec="red", label="highlighted"))
        ax.legend(handles=handles, title="bulk lattice", fontsize=7, title_fontsize=8, loc="best")
    if colorbar:
        sm = plt.cm.ScalarMappable(norm=norm, cmap=cm)
        ax.figure.colorbar(sm, ax=ax, label=r"|$\gamma$ error| (J/m$^2$)", extend="max", shrink=0.85)
    return ax


def fig2_kpca_map(analysis, highlight=(), vmax: float | None = None, title: str = "", figsize=(9.0, 7.0)):
    """The map of one descriptor's analysis (one point per slab, colour |gamma error|), every element's cluster
    labelled (the highlighted ones in red)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
    _map(ax, analysis, highlight, vmax, title=title, label_all=True)
    return fig


def _map(ax, analysis, highlight, vmax, **kw):
    """:func:`plot_kpca_map` of one analysis, with its explained variances on the axes."""
    plot_kpca_map(ax, analysis.table, highlight=highlight, vmax=vmax,
                  explained=analysis.kpca.explained_variance_ratio, **kw)  # fmt: skip


def fig2_kpca_map_descriptors(analyses: dict, highlight=(), vmax: float | None = None):
    """The maps of every descriptor side by side (one colour bar, one legend)."""
    import matplotlib.pyplot as plt

    names = list(analyses)
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 4.2), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        _map(ax, analyses[name], highlight, vmax, title=name, colorbar=name == names[-1], legend=name == names[0])
    fig.tight_layout()
    return fig


def fig2_ood_correlation(table: pd.DataFrame, corr: pd.DataFrame, descriptor: str, error_model: str):
    """Left: |gamma error| against the distance from the bulk set (log x, marker = lattice) for ``descriptor``;
    right: every Spearman rho of ``corr`` with its 95 % bootstrap interval."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.6))
    for lat, mk in MARKERS.items():
        s = table["lattice"] == lat
        if s.any():
            ax1.scatter(
                table.loc[s, "dist_bulk_set"], table.loc[s, "abs_error_j_per_m2"], marker=mk, s=16, alpha=0.7, label=lat
            )
    ax1.set_xscale("log")
    ax1.set_xlabel(f"distance from the bulk set, 1 - max REMatch similarity ({descriptor})")
    ax1.set_ylabel(r"|$\gamma$ error| (J/m$^2$)")
    r0 = corr[(corr.descriptor == descriptor) & (corr.variable == "dist_bulk_set")].iloc[0]
    ax1.set_title(f"Spearman rho = {r0.rho:.2f} [{r0.ci_low:.2f}, {r0.ci_high:.2f}]", fontsize=10)
    ax1.legend(fontsize=8)
    labels = []
    for i, row in corr.reset_index(drop=True).iterrows():
        color = "C2" if "within" in row.variable else ("C0" if row.variable.startswith("dist") else "C1")
        ax2.errorbar(row.rho, i, xerr=[[row.rho - row.ci_low], [row.ci_high - row.rho]], fmt="o", ms=4, color=color)
        labels.append(f"{row.descriptor}: {row.variable}")
    ax2.axvline(0, color="k", lw=0.8)
    ax2.set_yticks(range(len(labels)), labels, fontsize=7)
    ax2.invert_yaxis()
    ax2.set_xlabel(f"Spearman rho with |gamma error| of {error_model} (95% bootstrap CI)")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------------------------
# the chapter's tables and numbers

MAP_COLUMNS = [
    "descriptor",
    "id",
    "element",
    "miller",
    "lattice",
    "spacegroup",
    "kpc1",
    "kpc2",
    "sim_own_bulk",
    "sim_max_bulk",
    "dist_own_bulk",
    "dist_bulk_set",
    "abs_error_j_per_m2",
]


def correlations(
    analyses: dict, error_model: str, own_errors: dict[str, pd.DataFrame], n_boot: int = 2000, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rho of every descriptor against ``error_model``'s errors, rho of each model descriptor against its own
    errors ``own_errors[name]`` (id, abs_error_j_per_m2)), from
    :func:`~uipbench.surfaces.out_of_domain.ood_correlations`."""
    corr, own_corr = [], []
    for name, r in analyses.items():
        c = ood_correlations(r.table, n_boot=n_boot, seed=seed)
        c.insert(0, "descriptor", name)
        corr.append(c)
        own = own_errors.get(name)
        if own is not None:
            t = r.table.drop(columns="abs_error_j_per_m2").merge(own[["id", "abs_error_j_per_m2"]], on="id", how="left")
            c = ood_correlations(t, n_boot=n_boot, seed=seed)
            c.insert(0, "descriptor", name)
            c.insert(1, "error_model", name)
            own_corr.append(c)
    corr = pd.concat(corr, ignore_index=True)
    corr.insert(1, "error_model", error_model)
    own_corr = pd.concat(own_corr, ignore_index=True) if own_corr else pd.DataFrame(columns=corr.columns)
    return corr, own_corr


def tidy_map_table(analyses: dict) -> pd.DataFrame:
    """The per-slab rows of every descriptor's map (``surfaces_fig2_kpca_map.csv``)."""
    tidy = pd.concat([r.table.assign(descriptor=n) for n, r in analyses.items()], ignore_index=True)
    return tidy[MAP_COLUMNS]


def verdicts(analyses: dict, corr: pd.DataFrame) -> dict[str, str]:
    return {name: verdict(corr[corr.descriptor == name]) for name in analyses}


def chapter_metrics(
    analyses: dict,
    corr: pd.DataFrame,
    own_corr: pd.DataFrame,
    *,
    slabs: pd.DataFrame,
    bulk: pd.DataFrame,
    bulk_structs: dict,
    meta: pd.DataFrame,
    main: str,
    settings: dict,
) -> dict:
    """The numbers of chapter 02 (``02_kpca_map_metrics.json``). ``settings``: the chapter's parameters to record
    (error model and protocol, kernel, SOAP settings, descriptor availability, error source)."""
    v = verdicts(analyses, corr)

    def by_descriptor(n, r):
        own = own_corr[own_corr.descriptor == n]
        return {
            "explained_variance_kpc1": r.kpca.explained_variance_ratio[0],
            "explained_variance_kpc2": r.kpca.explained_variance_ratio[1],
            "min_eigenvalue_kernel": r.kpca.min_eigenvalue_uncentred,
            "n_slabs": len(r.table),
            "n_descriptor_failures": len(r.failures),
            "spearman": {
                row.variable: {
                    "rho": row.rho,
                    "ci_low": row.ci_low,
                    "ci_high": row.ci_high,
                    "p_value": row.p_value,
                    "n": row.n,
                }
                for row in corr[corr.descriptor == n].itertuples()
            },
            "verdict": v[n],
            "verdict_own_errors": verdict(own) if len(own) else None,
        }

    return {
        **settings,
        "n_slabs": len(slabs),
        "n_bulk_reference_cells": len(bulk_structs),
        "lattice_counts": bulk["lattice"].value_counts().sort_index().to_dict(),
        "n_slabs_without_bulk_cell": int((bulk["bulk_error"] != "").sum()),
        "n_slabs_with_error": int(meta["abs_error_j_per_m2"].notna().sum()),
        "map_descriptor": main,
        "verdict": v[main],
        "claim": claim_statement(corr[corr.descriptor == main]),
        "by_descriptor": {n: by_descriptor(n, r) for n, r in analyses.items()},
    }
