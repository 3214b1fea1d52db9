"""Out-of-domain analysis of the surfaces map (paper Fig. 2): is a slab far from the bulk training domain, and
does its surface-energy error grow with that distance?

* :func:`analyse_descriptor`: descriptors -> slab kernel -> kPCA, and slab x bulk kernel -> distances, for one
  descriptor (:mod:`uipbench.surfaces.descriptors`, :mod:`~uipbench.surfaces.rematch`, :mod:`~uipbench.surfaces.kpca`);
* :func:`ood_table`: per slab, the similarity to its own bulk and to the whole bulk set, and the distances 1 - s;
* :func:`ood_correlations`, :func:`verdict`, :func:`claim_statement`: Spearman rho of |error| with the distances
  (seeded bootstrap intervals, :func:`uipbench.surfaces.bootstrap.spearman_bootstrap`) and what they say about the
  paper's claim.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..store import ResultStore
from .bootstrap import spearman_bootstrap
from .kpca import KPCAResult, kernel_pca
from .rematch import KernelResult, KernelSettings, rematch_kernel


def ood_table(
    K_slab_bulk: np.ndarray, slab_ids: Sequence[str], bulk_index_of_slab: Sequence[int | None]
) -> pd.DataFrame:
    """Per slab: similarity to its own bulk, max similarity over all bulk cells, and the distances 1 - s."""
    own = np.array(
        [K_slab_bulk[i, j] if j is not None and j >= 0 else np.nan for i, j in enumerate(bulk_index_of_slab)]
    )
    mx = K_slab_bulk.max(axis=1) if K_slab_bulk.shape[1] else np.full(len(slab_ids), np.nan)
    return pd.DataFrame(
        {
            "id": list(slab_ids),
            "sim_own_bulk": own,
            "sim_max_bulk": mx,
            "dist_own_bulk": 1.0 - own,
            "dist_bulk_set": 1.0 - mx,
        }
    )


@dataclass
class DescriptorAnalysis:
    descriptor: str
    table: pd.DataFrame  #: per slab: id, kpc1, kpc2, sim_own_bulk, sim_max_bulk, dist_own_bulk, dist_bulk_set
    kpca: KPCAResult | None
    kernel: KernelResult | None
    cross: KernelResult | None
    failures: dict  #: item -> reason (descriptor failures of slabs and bulk cells)
    seconds: dict  #: step -> wall seconds


def analyse_descriptor(
    name: str,
    slabs: dict,
    bulks: dict,
    own_bulk: dict,
    store: ResultStore,
    settings: KernelSettings = KernelSettings(),
    backend: str = "process",
    n_workers: int = 2,
    block_size: int = 100,
    progress: bool = True,
) -> DescriptorAnalysis:
    """Descriptors -> slab kernel -> kPCA, and slab x bulk kernel -> out-of-domain table, for descriptor ``name``.

    ``slabs``/``bulks``: id -> Atoms (ordered); ``own_bulk``: slab id -> bulk id (or None). Slabs or bulk cells
    whose descriptor fails are left out of this descriptor's analysis and listed in ``failures``.
    """
    from . import descriptors as D

    sec = {}
    t = time.perf_counter()
    skeys, sfail, _ = D.compute_descriptors(name, slabs, store, backend=backend, n_workers=n_workers, progress=progress)
    bkeys, bfail, _ = D.compute_descriptors(name, bulks, store, backend=backend, n_workers=n_workers, progress=progress)
    sec["descriptors"] = time.perf_counter() - t
    failures = {**{f"slab {k}": v for k, v in sfail.items()}, **{f"bulk {k}": v for k, v in bfail.items()}}
    ids = [s for s in slabs if s in skeys]
    bids = [b for b in bulks if b in bkeys]
    if len(ids) < 3:
        return DescriptorAnalysis(name, pd.DataFrame({"id": ids}), None, None, None, failures, sec)
    kw = dict(settings=settings, block_size=block_size, backend=backend, n_workers=n_workers, progress=progress)
    K = rematch_kernel([skeys[s] for s in ids], store, label=f"{name} slabs", **kw)
    sec["kernel"] = K.seconds
    kp = kernel_pca(K.matrix)
    C = rematch_kernel(
        [skeys[s] for s in ids], store, col_keys=[bkeys[b] for b in bids], label=f"{name} slabs x bulk", **kw
    )
    sec["cross_kernel"] = C.seconds
    col = {b: j for j, b in enumerate(bids)}
    own_idx = [col.get(own_bulk.get(s)) if own_bulk.get(s) is not None else None for s in ids]
    table = ood_table(C.matrix, ids, own_idx)
    table.insert(1, "kpc1", kp.coords[:, 0])
    table.insert(2, "kpc2", kp.coords[:, 1])
    return DescriptorAnalysis(name, table, kp, K, C, failures, sec)


def ood_correlations(
    table: pd.DataFrame,
    error_col: str = "abs_error_j_per_m2",
    n_boot: int = 2000,
    seed: int = 0,
    group_col: str | None = "element",
) -> pd.DataFrame:
    """Spearman rho (bootstrap 95% CI) of the |error| with the distances from bulk and the kPCA coordinates.

    With ``group_col``, also ``<distance>|within element``: both the distance and the error minus their median
    over the slabs of the same element, so that a correlation driven only by which elements are far from the
    bulk set and badly described (e.g. all facets of one element) is told apart from one within each element.
    With a ``gamma_dft_j_per_m2`` column, also ``<distance>|γ fixed``: the partial rank correlation with DFT γ
    held fixed (:func:`~uipbench.surfaces.claims.partial_correlation`): errors scale with γ, and so may distance.
    """
    rows = []
    for var in ("dist_own_bulk", "dist_bulk_set", "kpc1", "kpc2"):
        r = spearman_bootstrap(table[var], table[error_col], n_boot=n_boot, seed=seed)
        rows.append({"variable": var, **r})
    if group_col is not None and group_col in table:
        g = table.groupby(group_col)
        err = table[error_col] - g[error_col].transform("median")
        for var in ("dist_own_bulk", "dist_bulk_set"):
            x = table[var] - g[var].transform("median")
            r = spearman_bootstrap(x, err, n_boot=n_boot, seed=seed)
            rows.append({"variable": f"{var}|within element", **r})
    if "gamma_dft_j_per_m2" in table:
        from .claims import bootstrap_correlation

        for var in ("dist_own_bulk", "dist_bulk_set"):
            t = table[[var, error_col, "gamma_dft_j_per_m2"]].dropna()
            if len(t) < 4:
                continue
            r = bootstrap_correlation(t[var], t[error_col], t["gamma_dft_j_per_m2"], "spearman", n_boot, seed)
            rows.append({"variable": f"{var}|γ fixed", "rho": r["r"], "ci_low": r["ci_low"],
                         "ci_high": r["ci_high"], "p_value": np.nan, "n": r["n"]})  # fmt: skip
    return pd.DataFrame(rows)


def _verdict_one(r) -> tuple[str, str]:
    ci = f"Spearman rho = {r['rho']:.2f}, 95% CI [{r['ci_low']:.2f}, {r['ci_high']:.2f}], n = {int(r['n'])}"
    if not np.isfinite(r["rho"]):
        return "untestable", "too few slabs with both an error and a distance"
    if r["ci_low"] > 0:
        return ("weakly supported" if r["rho"] < 0.3 else "supported"), ci
    if r["ci_high"] < 0:
        return "contradicted", ci
    return "not supported", ci


def verdict(corr: pd.DataFrame, variable: str = "dist_bulk_set") -> str:
    """Plain statement on the claim 'large errors come from structures far from the (bulk) training domain':
    the rank correlation of |error| with the distance from the bulk set, across all slabs and within elements."""
    c = corr.set_index("variable")
    word, ci = _verdict_one(c.loc[variable])
    text = {
        "supported": "supported: larger distance from bulk goes with larger |error|",
        "weakly supported": "weakly supported: larger distance from bulk goes with larger |error|",
        "contradicted": "contradicted: larger distance from bulk goes with smaller |error|",
        "not supported": "not supported: no significant rank correlation between distance from bulk and |error|",
        "untestable": "not testable",
    }[word]
    out = f"{text} ({ci})"
    within = f"{variable}|within element"
    if within in c.index:
        w_word, w_ci = _verdict_one(c.loc[within])
        out += f"; within elements: {w_word} ({w_ci})"
    fixed = f"{variable}|γ fixed"
    if fixed in c.index:
        f_word, f_ci = _verdict_one(c.loc[fixed])
        out += f"; with DFT γ held fixed: {f_word} (partial {f_ci})"
    return out


def claim_statement(corr: pd.DataFrame, variable: str = "dist_bulk_set") -> str:
    """One sentence: do the data support 'large errors come from slabs far from the bulk training domain'?

    Supported only if |error| rises with the distance from the bulk set both across all slabs and within elements
    (otherwise the trend is a between-element difference: some elements are both far from bulk and badly
    described, which says nothing about which *structures* are out of domain)."""
    c = corr.set_index("variable")
    overall, _ = _verdict_one(c.loc[variable])
    within_key = f"{variable}|within element"
    within = _verdict_one(c.loc[within_key])[0] if within_key in c.index else "untestable"
    pos = ("supported", "weakly supported")
    fixed_key = f"{variable}|γ fixed"
    fixed = _verdict_one(c.loc[fixed_key])[0] if fixed_key in c.index else "untestable"
    if overall in pos and within in pos and fixed not in pos and fixed != "untestable":
        return (
            "The data support the claim only through the size of γ: |error| rises with the distance from bulk, also "
            f"within elements, but not once DFT γ is held fixed ({fixed}): far-from-bulk slabs are the high-γ ones."
        )
    if overall in pos and within in pos:
        return "The data support the claim: |error| rises with the distance from bulk, also within elements."
    if overall in pos:
        return (
            "The data support the claim only between elements: across all slabs |error| rises weakly with the "
            "distance from bulk, but within an element the facets farther from bulk are not the worse ones "
            f"(within elements: {within})."
        )
    return f"The data do not support the claim (all slabs: {overall}; within elements: {within})."


def analyse_descriptors(
    names, slabs: dict, bulks: dict, own_bulk: dict, store: ResultStore, meta: pd.DataFrame, **kw
) -> tuple[dict, dict, dict]:
    """:func:`analyse_descriptor` for each of ``names``; each table joined to ``meta`` (id, element, lattice,
    error, ...). Returns (analyses with a kPCA, timings per descriptor, descriptor failures per descriptor)."""
    results, timings, failures = {}, {}, {}
    for name in names:
        t0 = time.perf_counter()
        a = analyse_descriptor(name, slabs, bulks, own_bulk, store, **kw)
        timings[name] = {
            **a.seconds,
            "total": time.perf_counter() - t0,
            "kernel_from_store": a.kernel.from_store if a.kernel else None,
            "kernel_compute": a.kernel.compute_seconds if a.kernel else np.nan,
            "cross_compute": a.cross.compute_seconds if a.cross else np.nan,
        }
        failures[name] = a.failures
        if a.kpca is not None:
            a.table = meta.merge(a.table, on="id", how="inner")
            results[name] = a
    return results, timings, failures


def describe(a: DescriptorAnalysis) -> str:
    """One line on an analysis: slabs, explained variance, smallest kernel eigenvalue, failures, kernel times."""
    if a.kpca is None:
        return f"{a.descriptor}: too few structures with features; failures: {len(a.failures)}"
    return (
        f"{a.descriptor}: {len(a.table)} slabs, explained variance "
        f"{np.round(100 * a.kpca.explained_variance_ratio, 1)} %, min eigenvalue of K "
        f"{a.kpca.min_eigenvalue_uncentred:.1e}, descriptor failures {len(a.failures)}; kernel "
        f"{a.seconds['kernel']:.1f} s, slab x bulk {a.seconds['cross_kernel']:.1f} s"
    )
