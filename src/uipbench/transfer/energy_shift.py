"""The GGA/GGA+U -> r2SCAN energy shift (transfer paper Fig. 1): corrections, statistics, element importance.

* :func:`mp2020_corrections`: the Materials Project 2020 anion + GGA/GGA+U mixing corrections *reconstructed*
  from composition with pymatgen (the RxnNet table holds corrected GGA/GGA+U energies only; see the function);
* :func:`formation_energy_references`: the elemental references behind the formation energies (E - H_f is linear
  in composition);
* :func:`regression_stats`, :func:`element_importance`: the numbers behind the parity plots and the
  periodic-table importance maps.

Units: energies in eV/atom throughout (``*_ev_per_atom``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .compositions import _element_amounts, composition_matrix, to_composition


def mp2020_corrections(compositions: Sequence, chemistry_types: Sequence[str] | None = None) -> pd.DataFrame:
    """MP2020 anion and GGA/GGA+U mixing corrections (eV/atom) reconstructed from composition with pymatgen.

    The Materials Project applies these to GGA/GGA+U energies (Wang et al., Sci. Rep. 11, 15496 (2021)). The
    RxnNet table holds GGA/GGA+U energies *with* them and no uncorrected copy, so removing them needs a
    reconstruction: ``MaterialsProject2020Compatibility`` on a structure-less ``ComputedEntry`` whose Hubbard U
    values follow MP's rule (U on Co, Cr, Fe, Mn, Mo, Ni, V, W in oxides and fluorides). Approximations:

    * peroxide / superoxide / sulfide detection normally uses the structure; here it comes from the RxnNet
      ``chemistry_type`` labels when given (``peroxide``, ``superoxide``, ``sulfide``/``hydrosulfide``), else
      from pymatgen's formula heuristics (a compound with S and no sulfide label gets no S correction);
    * oxidation states are pymatgen's composition guess (as MP does for entries without stored states).

    Returns a DataFrame with ``correction_ev_per_atom`` (add it to an uncorrected energy per atom to get the
    corrected one), ``u_elements`` and ``error`` (empty, or why the compatibility scheme refused the entry).
    """
    from pymatgen.analysis.compatibility import MaterialsProject2020Compatibility
    from pymatgen.entries.computed_entries import ComputedEntry

    compat = MaterialsProject2020Compatibility(check_potcar=False)
    u_settings = compat.u_settings  # {"O": {"Fe": 5.3, ...}, "F": {...}} from MPRelaxSet
    rows = []
    types = list(chemistry_types) if chemistry_types is not None else [""] * len(compositions)
    for comp, ctype in zip((to_composition(c) for c in compositions), types, strict=True):
        symbols = set(_element_amounts(comp))
        anion = "O" if "O" in symbols else ("F" if "F" in symbols else None)
        hubbards = {s: u_settings[anion][s] for s in sorted(symbols) if anion and s in u_settings[anion]}
        data = {}
        labels = set(str(ctype).split())
        if "O" in symbols:
            data["oxide_type"] = (
                ("peroxide" if "peroxide" in labels else "superoxide" if "superoxide" in labels else "oxide")
                if labels
                else None
            )
        if "S" in symbols and labels:
            data["sulfide_type"] = "sulfide" if labels & {"sulfide", "hydrosulfide"} else "sulfate"
        data = {k: v for k, v in data.items() if v is not None}
        entry = ComputedEntry(
            comp,
            0.0,
            parameters={"run_type": "GGA+U" if hubbards else "GGA", "hubbards": hubbards, "software": "reconstructed"},
            data=data,
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "no structure, peroxide detection by formula" etc.
                adjustments = compat.get_adjustments(entry)
            corr, err = sum(a.value for a in adjustments) / comp.num_atoms, ""
        except Exception as exc:  # CompatibilityError: recorded, not fatal
            corr, err = np.nan, f"{type(exc).__name__}: {exc}"
        rows.append({"correction_ev_per_atom": corr, "u_elements": " ".join(hubbards), "error": err})
    return pd.DataFrame(rows)


def regression_stats(x, y) -> dict[str, float]:
    """Pearson/Spearman correlation, least-squares line y = slope*x + intercept, and differences (y - x)."""
    from scipy import stats

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    m = np.isfinite(x) & np.isfinite(y)
    x, y = x[m], y[m]
    if len(x) < 3:
        return {"n": int(len(x))}
    lr = stats.linregress(x, y)
    d = y - x
    return {
        "n": int(len(x)),
        "pearson_r": float(lr.rvalue),
        "r2": float(lr.rvalue**2),
        "spearman_rho": float(stats.spearmanr(x, y).statistic),
        "slope": float(lr.slope),
        "intercept": float(lr.intercept),
        "mean_difference": float(d.mean()),
        "mae": float(np.abs(d).mean()),
        "rmse": float(np.sqrt((d**2).mean())),
    }


def element_importance(
    X: np.ndarray,
    y: np.ndarray,
    elements: Sequence[str],
    n_splits: int = 5,
    seed: int = 0,
    n_estimators: int = 300,
    n_repeats: int = 5,
) -> tuple[pd.DataFrame, dict]:
    """Which elements (composition-fraction features) drive a per-compound quantity ``y``.

    Two views, both cross-validated with ``n_splits`` seeded folds:

    * a random forest (scikit-learn) and its *permutation importance* on each held-out fold (the increase of
      the held-out mean squared error when one element's fraction column is shuffled), averaged over folds;
    * a least-squares linear model on the fractions (an AtomRef fit of ``y``): its coefficient per element,
      in eV/atom per unit fraction, from all data.

    Returns (per-element DataFrame, metrics dict with held-out MAE/R^2 of both models and of predicting the
    mean). Importance is reported in (eV/atom)^2 and as its square root in eV/atom.
    """
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance
    from sklearn.model_selection import KFold

    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    kf = KFold(n_splits=n_splits, shuffle=True, random_state=seed)
    imp = np.zeros((n_splits, X.shape[1]))
    pred_rf = np.full(len(y), np.nan)
    pred_lin = np.full(len(y), np.nan)
    for k, (tr, te) in enumerate(kf.split(X)):
        rf = RandomForestRegressor(n_estimators=n_estimators, random_state=seed, n_jobs=1, min_samples_leaf=2)
        rf.fit(X[tr], y[tr])
        pred_rf[te] = rf.predict(X[te])
        pi = permutation_importance(
            rf, X[te], y[te], n_repeats=n_repeats, random_state=seed, scoring="neg_mean_squared_error", n_jobs=1
        )
        imp[k] = pi.importances_mean
        present = X[tr].sum(0) > 0  # elements absent from the training fold get no coefficient
        coef = np.linalg.pinv(X[tr][:, present]) @ y[tr]
        test_ok = X[te][:, ~present].sum(1) == 0
        pl = np.full(len(te), np.nan)
        pl[test_ok] = X[te][test_ok][:, present] @ coef
        pred_lin[te] = pl
    coef_all = np.linalg.pinv(X) @ y
    table = pd.DataFrame(
        {
            "element": list(elements),
            "n_compounds": (X > 0).sum(0).astype(int),
            "permutation_importance_ev2": imp.mean(0),
            "permutation_importance_std_ev2": imp.std(0),
            "linear_coefficient_ev_per_atom": coef_all,
        }
    )
    table["permutation_importance_ev"] = np.sqrt(np.clip(table["permutation_importance_ev2"], 0, None))
    lin_ok = np.isfinite(pred_lin)

    def _r2(p, t):
        return float(1 - ((t - p) ** 2).sum() / ((t - t.mean()) ** 2).sum())

    metrics = {
        "n": int(len(y)),
        "cv_folds": n_splits,
        "seed": seed,
        "heldout_mae_random_forest_ev_per_atom": float(np.abs(pred_rf - y).mean()),
        "heldout_r2_random_forest": _r2(pred_rf, y),
        "heldout_mae_linear_ev_per_atom": float(np.abs(pred_lin[lin_ok] - y[lin_ok]).mean()),
        "heldout_r2_linear": _r2(pred_lin[lin_ok], y[lin_ok]),
        "heldout_linear_unpredictable": int((~lin_ok).sum()),
        "mae_of_predicting_mean_ev_per_atom": float(np.abs(y - y.mean()).mean()),
    }
    return table, metrics


def formation_energy_references(
    data: pd.DataFrame,
    functionals=(
        ("gga", "e_gga_ev_per_atom", "hf_gga_ev_per_atom"),
        ("r2scan", "e_r2scan_ev_per_atom", "hf_r2scan_ev_per_atom"),
    ),
) -> dict:
    """Least-squares elemental energies mu behind each formation energy, E - H_f = sum_i x_i mu_i.

    Returns functional -> {"max_residual_ev_per_atom": largest |E - H_f - X mu| (zero when H_f is exactly
    E minus fixed elemental energies), "mu": element -> mu (eV/atom)}.
    """
    X, els = composition_matrix(list(data["composition"]))
    out = {}
    for func, e_col, h_col in functionals:
        y = (data[e_col] - data[h_col]).to_numpy()
        mu = np.linalg.lstsq(X, y, rcond=None)[0]
        out[func] = {"max_residual_ev_per_atom": float(np.abs(y - X @ mu).max()), "mu": pd.Series(mu, index=els)}
    return out


#: formation energies compared with experiment (``hf_exp_ev_per_atom``): name -> column
FORMATION_ENERGY_COLUMNS = {
    "GGA/GGA+U as given": "hf_gga_ev_per_atom",
    "GGA/GGA+U, corrections removed (reconstructed)": "hf_gga_uncorrected_ev_per_atom",
    "r2SCAN": "hf_r2scan_ev_per_atom",
    "MP mixing scheme (hf_gga_gga_u_r2scan)": "hf_mixed_ev_per_atom",
}


def with_corrections_removed(data: pd.DataFrame, correction_ev_per_atom: pd.Series) -> pd.DataFrame:
    """``data`` plus the reconstructed MP2020 correction and the GGA/GGA+U formation and total energies without it."""
    out = data.copy()
    out["mp2020_correction_ev_per_atom"] = correction_ev_per_atom
    out["hf_gga_uncorrected_ev_per_atom"] = out["hf_gga_ev_per_atom"] - out["mp2020_correction_ev_per_atom"]
    out["e_gga_uncorrected_ev_per_atom"] = out["e_gga_ev_per_atom"] - out["mp2020_correction_ev_per_atom"]
    return out


def formation_energy_vs_experiment(data: pd.DataFrame) -> dict[str, dict]:
    """Regression statistics of each formation energy of :data:`FORMATION_ENERGY_COLUMNS` against experiment."""
    return {
        name: regression_stats(data["hf_exp_ev_per_atom"], data[col]) for name, col in FORMATION_ENERGY_COLUMNS.items()
    }
