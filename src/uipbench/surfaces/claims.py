"""What the surfaces paper's correlation claims rest on: raw and partial correlations with bootstrap intervals.

The paper reports that surface-energy errors correlate with the total energy of the surface simulation (Fig. 1e)
and that large errors come from structures far from the bulk training domain (Fig. 2). Both the errors and
these variables scale with the size of the surface energy itself (a soft model underestimates every γ by a
similar fraction, so large-γ slabs have large errors; high-γ elements are also those with low energies per atom).
A claim about the *variable* survives only if the correlation stays when DFT γ is held fixed:

* :func:`partial_correlation`: Pearson (or Spearman, on ranks) of x and y after removing from each its linear
  dependence on the controls z (the residual method);
* :func:`claims_table`: raw and partial correlations with seeded percentile bootstrap intervals (resampling
  slabs), per model and protocol;
* :func:`claim_verdict`: the rule, stated once: a claim survives if the partial correlation's 95 % interval
  excludes zero and its magnitude is at least :data:`MIN_EFFECT`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

MIN_EFFECT = 0.3  #: |partial r| below this is called negligible even when its interval excludes 0


def _residual(v: np.ndarray, z: np.ndarray) -> np.ndarray:
    A = np.column_stack([np.ones(len(v)), z])
    coef, *_ = np.linalg.lstsq(A, v, rcond=None)
    return v - A @ coef


def partial_correlation(x, y, z=None, method: str = "pearson") -> float:
    """Correlation of x and y controlling linearly for z (None: the raw correlation). ``method="spearman"``
    ranks x, y and every control first (a partial rank correlation)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    zz = None if z is None else np.asarray(z, float).reshape(len(x), -1)
    if method == "spearman":
        x, y = stats.rankdata(x), stats.rankdata(y)
        zz = None if zz is None else np.column_stack([stats.rankdata(c) for c in zz.T])
    elif method != "pearson":
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    if zz is not None:
        x, y = _residual(x, zz), _residual(y, zz)
    if np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def bootstrap_correlation(x, y, z=None, method="pearson", n_boot=1000, seed=0, level=0.95) -> dict:
    """:func:`partial_correlation` with a percentile bootstrap interval (rows resampled with replacement)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    zz = None if z is None else np.asarray(z, float).reshape(len(x), -1)
    point = partial_correlation(x, y, zz, method)
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n_boot):
        i = rng.integers(0, len(x), len(x))
        samples.append(partial_correlation(x[i], y[i], None if zz is None else zz[i], method))
    s = np.asarray(samples)
    s = s[np.isfinite(s)]
    lo, hi = np.percentile(s, [100 * (1 - level) / 2, 100 * (1 + level) / 2]) if s.size else (np.nan, np.nan)
    return {"r": point, "ci_low": float(lo), "ci_high": float(hi), "n": len(x)}


def claims_table(
    results: pd.DataFrame,
    xs: Sequence[str] = ("e_slab_dft_ev_per_atom", "eps_dft_ev_per_atom"),
    ys: Sequence[str] = ("error_j_per_m2", "abs_error_j_per_m2"),
    control: str = "gamma_dft_j_per_m2",
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Per (model, protocol, x, y, method): raw and partial (``control`` held fixed) correlations with intervals,
    on the ok slabs with an MP bulk match (the rows of chapter 01's Fig. 1e)."""
    ok = results[(results["status"] == "ok") & results[list(xs)].notna().all(axis=1)]
    rows = []
    for (model, protocol), g in ok.groupby(["model", "protocol"], sort=True):
        if len(g) < 5:
            continue
        for x in xs:
            for y in ys:
                for method in ("pearson", "spearman"):
                    raw = bootstrap_correlation(g[x], g[y], None, method, n_boot, seed)
                    part = bootstrap_correlation(g[x], g[y], g[control], method, n_boot, seed)
                    rows.append({"model": model, "protocol": protocol, "x": x, "y": y, "method": method,
                                 "n": raw["n"], "raw_r": raw["r"], "raw_ci_low": raw["ci_low"],
                                 "raw_ci_high": raw["ci_high"], "partial_r": part["r"],
                                 "partial_ci_low": part["ci_low"], "partial_ci_high": part["ci_high"],
                                 "control": control, **claim_verdict(raw, part)})  # fmt: skip
    return pd.DataFrame(rows)


def claim_verdict(raw: dict, partial: dict) -> dict:
    """``verdict``: "survives" (partial interval excludes 0 and |partial r| >= MIN_EFFECT), "negligible once γ is
    fixed" (interval excludes 0 but the effect is small), "explained by γ" (raw interval excludes 0, partial does
    not) or "no correlation" (neither)."""

    def excludes_zero(d):
        return np.isfinite(d["ci_low"]) and (d["ci_low"] > 0 or d["ci_high"] < 0)

    if excludes_zero(partial):
        word = "survives" if abs(partial["r"]) >= MIN_EFFECT else "negligible once γ is fixed"
    elif excludes_zero(raw):
        word = "explained by γ"
    else:
        word = "no correlation"
    return {"verdict": word}


def claims_summary(table: pd.DataFrame, x: str = "e_slab_dft_ev_per_atom", y: str = "abs_error_j_per_m2") -> str:
    """One sentence per model and protocol on the Fig. 1e claim (|error| against the slab energy per atom)."""
    t = table[(table["x"] == x) & (table["y"] == y)]
    lines = []
    for (model, protocol), g in t.groupby(["model", "protocol"], sort=True):
        r = g.set_index("method")
        p, s = r.loc["pearson"], r.loc["spearman"]
        lines.append(f"{model} ({protocol}): raw Pearson {p['raw_r']:+.2f}, partial {p['partial_r']:+.2f} "
                     f"[{p['partial_ci_low']:+.2f}, {p['partial_ci_high']:+.2f}] -> {p['verdict']}; partial "
                     f"Spearman {s['partial_r']:+.2f} -> {s['verdict']}")  # fmt: skip
    return "\n".join(lines)


def claims_metrics(table: pd.DataFrame) -> dict:
    """The claims table for the chapter's metrics file: ``model/protocol/x/y/method`` -> raw, partial, verdict."""
    return {f"{r.model}/{r.protocol}/{r.x}/{r.y}/{r.method}": {
                "raw_r": r.raw_r, "partial_r": r.partial_r, "partial_ci": [r.partial_ci_low, r.partial_ci_high],
                "n": int(r.n), "verdict": r.verdict}
            for r in table.itertuples()}  # fmt: skip
