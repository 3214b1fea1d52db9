"""Tables, figures and numbers of the AtomRef chapter (transfer paper Fig. 2, chapter 11).

* :func:`scaled_energies` and :data:`CHOICES`: energies minus an AtomRef (held-out refits, CHGNet's built-in ones),
  the columns the scaled-energy parities compare; :func:`fig2b_atomref_choices` draws all four choices;
* :func:`reference_table`, :func:`fig_atomref_periodic_table`, :func:`references_vs_chgnet`,
  :func:`fig_atomref_vs_chgnet`: the refitted references against CHGNet's;
* :func:`matpes_pairs`, :func:`fig_matpes_elemental_shift`, :func:`fig_matpes_shift_periodic_table`: MatPES PBE
  and r2SCAN on identical elemental structures;
* :func:`fig_matpes_zero_shot`: pretrained models against MatPES (numbers from :mod:`uipbench.transfer.zero_shot`);
* :func:`chapter_metrics`: the numbers of ``11_atomref_metrics.json``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..figures import periodic_table_heatmap
from .atomref import AtomRefFit
from .energy_shift import regression_stats
from .energy_shift_report import stats_label

#: scaled-energy parities: name -> (r2SCAN column, GGA/GGA+U column) of :func:`scaled_energies`
CHOICES = {
    "raw total energies (no AtomRef)": ("e_r2scan_ev_per_atom", "e_gga_ev_per_atom"),
    "AtomRef refit per functional (held-out, 5-fold)": (
        "scaled_r2scan_refit_cv_ev_per_atom",
        "scaled_gga_refit_cv_ev_per_atom",
    ),
    "CHGNet AtomRefs (MPtrj for GGA, MP-r2SCAN for r2SCAN)": (
        "scaled_r2scan_chgnet_mpr2scan_ev_per_atom",
        "scaled_gga_chgnet_mptrj_ev_per_atom",
    ),
    # control: the GGA AtomRef subtracted from r2SCAN energies too (the wrong reference for the target)
    "CHGNet MPtrj AtomRef for both functionals": (
        "scaled_r2scan_chgnet_mptrj_ev_per_atom",
        "scaled_gga_chgnet_mptrj_ev_per_atom",
    ),
}
_BOX = dict(facecolor="white", edgecolor="0.8", alpha=0.9)


def scaled_energies(data: pd.DataFrame, cv: dict, mptrj: pd.Series, mpr2: pd.Series) -> pd.DataFrame:
    """Per compound: raw energies, energies minus the held-out refit AtomRef of their functional (``cv``: name ->
    :class:`~uipbench.transfer.atomref.CVResult`), and minus CHGNet's MPtrj / MP-r2SCAN AtomRefs."""
    comps = list(data["composition"])
    e_gga, e_r2 = data["e_gga_ev_per_atom"].to_numpy(), data["e_r2scan_ev_per_atom"].to_numpy()
    chg_gga, chg_r2 = AtomRefFit(references=mptrj.dropna()), AtomRefFit(references=mpr2.dropna())
    return pd.DataFrame(
        {
            "formula": data["formula"],
            "e_gga_ev_per_atom": e_gga,
            "e_r2scan_ev_per_atom": e_r2,
            "scaled_gga_refit_cv_ev_per_atom": e_gga - cv["gga"].predictions["reference_energy"],
            "scaled_r2scan_refit_cv_ev_per_atom": e_r2 - cv["r2scan"].predictions["reference_energy"],
            "scaled_gga_chgnet_mptrj_ev_per_atom": chg_gga.scaled(comps, e_gga),
            "scaled_r2scan_chgnet_mpr2scan_ev_per_atom": chg_r2.scaled(comps, e_r2),
            "scaled_r2scan_chgnet_mptrj_ev_per_atom": chg_gga.scaled(comps, e_r2),
            "cv_fold": cv["gga"].predictions["fold"],
            "unseen_elements": cv["gga"].predictions["unseen_elements"],
        },
        index=data.index,
    )


def fig2b_atomref_choices(scaled: pd.DataFrame, corr_stats: dict):
    """One parity per AtomRef choice of :data:`CHOICES`, with its least-squares line and statistics."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(17, 4.4))
    for ax, (name, (x, y)) in zip(axes, CHOICES.items(), strict=True):
        s = corr_stats[name]
        m = scaled[x].notna() & scaled[y].notna()
        ax.scatter(scaled.loc[m, x], scaled.loc[m, y], s=6, alpha=0.5, edgecolors="none")
        lo, hi = scaled.loc[m, x].min(), scaled.loc[m, x].max()
        ax.plot([lo, hi], [s["slope"] * lo + s["intercept"], s["slope"] * hi + s["intercept"]], "k-", lw=1)
        ax.set_title(name, fontsize=9)
        ax.text(0.03, 0.97, stats_label(s), transform=ax.transAxes, va="top", fontsize=8, bbox=_BOX)
        ax.set_xlabel("r$^2$SCAN (eV/atom)")
    axes[0].set_ylabel("GGA/GGA+U (eV/atom)")
    fig.tight_layout()
    return fig


def reference_table(fit: dict, mptrj: pd.Series, mpr2: pd.Series) -> pd.DataFrame:
    """Per element: compounds, the references refitted per functional (``fit``: name -> AtomRefFit), their
    difference, and CHGNet's built-in references and difference (eV/atom)."""
    refs = pd.DataFrame(
        {
            "n_compounds": fit["gga"].counts,
            "mu_gga_refit_ev_per_atom": fit["gga"].references,
            "mu_r2scan_refit_ev_per_atom": fit["r2scan"].references,
        }
    )
    refs["delta_refit_ev_per_atom"] = refs["mu_r2scan_refit_ev_per_atom"] - refs["mu_gga_refit_ev_per_atom"]
    refs["mu_chgnet_mptrj_ev_per_atom"] = mptrj.reindex(refs.index)
    refs["mu_chgnet_mpr2scan_ev_per_atom"] = mpr2.reindex(refs.index)
    refs["delta_chgnet_ev_per_atom"] = refs["mu_chgnet_mpr2scan_ev_per_atom"] - refs["mu_chgnet_mptrj_ev_per_atom"]
    return refs


def fig_atomref_periodic_table(refs: pd.DataFrame):
    """The GGA/GGA+U and r2SCAN references refitted here, and their difference, on three periodic tables."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(10, 16))
    panels = [
        ("mu_gga_refit_ev_per_atom", "GGA/GGA+U AtomRef, refit (eV/atom)"),
        ("mu_r2scan_refit_ev_per_atom", "r$^2$SCAN AtomRef, refit (eV/atom)"),
        ("delta_refit_ev_per_atom", "r$^2$SCAN - GGA/GGA+U AtomRef (eV/atom)"),
    ]
    for ax, (col, label) in zip(axes, panels, strict=True):
        periodic_table_heatmap(refs[col].to_dict(), ax=ax, cmap="viridis", center=None, fmt="{:.1f}", label=label)
    return fig


#: refit-vs-CHGNet comparisons: key -> (CHGNet column, refit column, panel title)
_REF_PANELS = {
    "r2scan_refit_vs_chgnet_mpr2scan": (
        "mu_chgnet_mpr2scan_ev_per_atom",
        "mu_r2scan_refit_ev_per_atom",
        "r$^2$SCAN: refit vs CHGNet MP-r$^2$SCAN",
    ),
    "gga_refit_vs_chgnet_mptrj": (
        "mu_chgnet_mptrj_ev_per_atom",
        "mu_gga_refit_ev_per_atom",
        "GGA/GGA+U: refit vs CHGNet MPtrj",
    ),
    "delta_refit_vs_delta_chgnet": (
        "delta_chgnet_ev_per_atom",
        "delta_refit_ev_per_atom",
        "shift r$^2$SCAN - GGA: refit vs CHGNet",
    ),
}


def references_vs_chgnet(refs: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """(elements with both a refit and a CHGNet MP-r2SCAN reference, statistics of each comparison)."""
    both = refs.dropna(subset=["mu_r2scan_refit_ev_per_atom", "mu_chgnet_mpr2scan_ev_per_atom"])
    return both, {key: regression_stats(both[xc], both[yc]) for key, (xc, yc, _) in _REF_PANELS.items()}


def fig_atomref_vs_chgnet(both: pd.DataFrame, cmp_stats: dict):
    """Refitted references against CHGNet's built-in ones (colour: log10 of the compounds per element)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    for ax, (key, (xc, yc, title)) in zip(axes, _REF_PANELS.items(), strict=True):
        s = cmp_stats[key]
        sc = ax.scatter(both[xc], both[yc], c=np.log10(both["n_compounds"]), s=18, cmap="viridis")
        lo, hi = min(both[xc].min(), both[yc].min()), max(both[xc].max(), both[yc].max())
        ax.plot([lo, hi], [lo, hi], color="0.5", ls="--", lw=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("CHGNet built-in (eV/atom)")
        ax.text(
            0.03,
            0.97,
            stats_label(s) + f"\nMAE = {s['mae']:.2f} eV/atom",
            transform=ax.transAxes,
            va="top",
            fontsize=8,
            bbox=_BOX,
        )
        for el in both.index[(both[yc] - both[xc]).abs() > 2.5]:
            ax.annotate(el, (both.loc[el, xc], both.loc[el, yc]), fontsize=7)
    axes[0].set_ylabel("refit on 974 compounds (eV/atom)")
    fig.colorbar(sc, ax=axes, label="log10(number of compounds)", shrink=0.8)
    return fig


def matpes_pairs(paired: pd.DataFrame, refs: pd.DataFrame, mptrj: pd.Series, mpr2: pd.Series):
    """MatPES elemental pairs with the refit and CHGNet AtomRef differences; returns (pairs, PBE-vs-r2SCAN energy
    statistics, statistics of the MatPES shift against each AtomRef difference)."""
    pairs = paired.join(refs[["delta_refit_ev_per_atom", "n_compounds"]], how="left")
    pairs["delta_chgnet_ev_per_atom"] = (mpr2 - mptrj).reindex(pairs.index)  # defined for every element CHGNet has
    pe_stats = regression_stats(pairs["e_r2scan_ev_per_atom"], pairs["e_pbe_ev_per_atom"])
    shift_stats = {
        f"matpes_shift_vs_{d}": regression_stats(pairs["shift_ev_per_atom"], pairs[f"{d}_ev_per_atom"])
        for d in ("delta_refit", "delta_chgnet")
    }
    return pairs, pe_stats, shift_stats


def fig_matpes_elemental_shift(pairs: pd.DataFrame, pe_stats: dict, shift_stats: dict):
    """Left: MatPES PBE against r2SCAN energies of identical structures; right: their difference against the
    AtomRef differences (refit here, CHGNet's)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    ax = axes[0]
    ax.scatter(pairs["e_r2scan_ev_per_atom"], pairs["e_pbe_ev_per_atom"], s=18)
    for el, r in pairs.iterrows():
        ax.annotate(el, (r["e_r2scan_ev_per_atom"], r["e_pbe_ev_per_atom"]), fontsize=6)
    ax.set_xlabel("MatPES r$^2$SCAN energy (eV/atom)")
    ax.set_ylabel("MatPES PBE energy, same structure (eV/atom)")
    ax.set_title(f"{len(pairs)} elemental solids on identical structures", fontsize=10)
    ax.text(0.97, 0.03, stats_label(pe_stats), transform=ax.transAxes, ha="right", va="bottom", fontsize=8, bbox=_BOX)
    ax = axes[1]
    for col, lab, mk in [
        ("delta_refit_ev_per_atom", "AtomRef refit here", "o"),
        ("delta_chgnet_ev_per_atom", "CHGNet MP-r$^2$SCAN - MPtrj", "x"),
    ]:
        s = shift_stats["matpes_shift_vs_" + col.removesuffix("_ev_per_atom")]
        ax.scatter(
            pairs["shift_ev_per_atom"],
            pairs[col],
            s=18,
            marker=mk,
            label=f"{lab}: n = {s['n']}, r = {s['pearson_r']:.3f}, MAE = {s['mae']:.2f}",
        )
    lo, hi = pairs["shift_ev_per_atom"].min(), pairs["shift_ev_per_atom"].max()
    ax.plot([lo, hi], [lo, hi], color="0.5", ls="--", lw=0.8, label="y = x")
    ax.set_xlabel("MatPES r$^2$SCAN - PBE, same structure (eV/atom)")
    ax.set_ylabel("AtomRef difference r$^2$SCAN - GGA/GGA+U (eV/atom)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def fig_matpes_shift_periodic_table(pairs: pd.DataFrame):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5.6))
    periodic_table_heatmap(
        pairs["shift_ev_per_atom"].to_dict(),
        ax=ax,
        fmt="{:.1f}",
        label="MatPES r$^2$SCAN - PBE energy per atom, same structure (eV/atom)",
    )
    return fig


def _r2(text: str) -> str:
    return text.replace("r2SCAN", "r$^2$SCAN")


def fig_matpes_zero_shot(zs: pd.DataFrame, stats: dict):
    """Model against MatPES energy per atom of each elemental solid, one panel per model (marker: lanthanide, not
    in the model's AtomRef, other); elements off by more than 1 eV/atom are labelled."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2))
    for ax, (model, g) in zip(axes, sorted(zs.groupby("model"), reverse=True), strict=False):
        s = stats[model]
        for flag, lab, mk, col in [
            (g["in_model_atomref"] & ~g["lanthanide"], "other elements", "o", "C0"),
            (g["lanthanide"] & g["in_model_atomref"], "lanthanides", "s", "C3"),
            (~g["in_model_atomref"], "not in the model's AtomRef", "x", "k"),
        ]:
            if flag.any():
                ax.scatter(
                    g.loc[flag, "matpes_ev_per_atom"],
                    g.loc[flag, "chgnet_ev_per_atom"],
                    s=16,
                    marker=mk,
                    color=col,
                    label=lab,
                )
        ax.legend(fontsize=7, loc="upper left")
        lo = np.nanmin(g[["matpes_ev_per_atom", "chgnet_ev_per_atom"]].to_numpy())
        hi = np.nanmax(g[["matpes_ev_per_atom", "chgnet_ev_per_atom"]].to_numpy())
        ax.plot([lo, hi], [lo, hi], color="0.5", ls="--", lw=0.8)
        for _, r in g[(g["error_ev_per_atom"].abs() > 1.0)].iterrows():
            ax.annotate(r["element"], (r["matpes_ev_per_atom"], r["chgnet_ev_per_atom"]), fontsize=7)
        func = g["functional"].iloc[0]
        ax.set_xlabel(_r2(f"MatPES {func} energy (eV/atom)"))
        ax.set_ylabel(f"{model} energy (eV/atom)")
        ax.set_title(_r2(f"{model} vs MatPES {func}: {s['n']} elemental solids"), fontsize=10)
        ax.text(
            0.97,
            0.03,
            f"MAE = {s['mae_ev_per_atom']:.3f} eV/atom\nmedian error = "
            f"{s['median_error_ev_per_atom']:+.3f}\nMAE after median offset = "
            f"{s['mae_after_median_offset_ev_per_atom']:.3f}\nMAE without lanthanides and elements\n"
            f"outside the AtomRef = {s['mae_excluding_lanthanides_and_missing_atomref_ev_per_atom']:.3f} "
            f"(n = {s['n_excluding_lanthanides_and_missing_atomref']})",
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=8,
            bbox=_BOX,
        )
    fig.tight_layout()
    return fig


def chapter_metrics(
    data: pd.DataFrame,
    cv: dict,
    *,
    n_splits: int,
    seed: int,
    corr_stats: dict,
    stats_2b: dict,
    ext_stats: dict,
    insample_stats: dict,
    cmp_stats: dict,
    matpes,
    pe_stats: dict,
    shift_stats: dict,
    zero_shot_stats: dict,
) -> dict:
    """The numbers of chapter 11 (``11_atomref_metrics.json``); ``matpes``: the MatPES
    :class:`~uipbench.transfer.pairing.Pairing`."""
    return {
        "n_paired": len(data),
        "cv_folds": n_splits,
        "seed": seed,
        "heldout_unpredictable": {k: v.n_unpredictable for k, v in cv.items()},
        "heldout_unseen_elements": {k: {str(f): e for f, e in v.missing_by_fold.items() if e} for k, v in cv.items()},
        "correlation": corr_stats,
        "fig2b_refit_heldout": stats_2b,
        "extensive_refit_heldout": ext_stats,
        "intensive_refit_insample": insample_stats,
        "references_vs_chgnet": cmp_stats,
        "matpes": {
            "n_pairs": len(matpes.paired),
            "n_rejected": len(matpes.dropped),
            "pbe_vs_r2scan_energy": pe_stats,
            **shift_stats,
        },
        "zero_shot": zero_shot_stats,
    }
