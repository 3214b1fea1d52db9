"""Analysis helpers of the cross-functional transfer chapters (GGA/GGA+U vs r2SCAN; Huang et al. 2025).

What the two transfer notebooks share:

* :func:`to_composition` / :func:`composition_matrix`: pymatgen compositions (including the RxnNet pickle's
  objects, written by an older pymatgen) and the element-fraction (or element-count) feature matrices that
  AtomRef fits and the element-importance models use.
* :func:`load_rxnnet_pairs` / :func:`pair_columns`: the Materials Project compounds that have both a GGA/GGA+U
  and an r2SCAN energy, with every unpaired row counted, not silently dropped.
* :func:`pair_matpes`: MatPES PBE/r2SCAN elemental references computed on *identical* structures (same
  ``matpes_id``, lattice, species and positions); every rejected element comes back with its reason.
* :func:`mp2020_corrections`: the Materials Project 2020 anion + GGA/GGA+U mixing corrections *reconstructed*
  from composition with pymatgen (the RxnNet table holds corrected GGA/GGA+U energies only; see the function).
* :func:`regression_stats`, :func:`element_importance`: the numbers behind the parity plots and the
  periodic-table importance maps.

Units: energies in eV/atom throughout (``*_ev_per_atom``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# ----------------------------------------------------------------------------------------------------------------
# compositions and feature matrices


def to_composition(obj):
    """A pymatgen ``Composition`` from a Composition (also one unpickled from an older pymatgen), dict or formula.

    The RxnNet pickle stores ``Composition`` objects whose private attributes predate the installed pymatgen
    (``_natoms`` instead of ``_n_atoms``): some methods fail on them, so they are rebuilt from their element map.
    """
    from pymatgen.core import Composition

    if isinstance(obj, Composition):
        data = getattr(obj, "_data", None)
        if data is None:
            return obj
        return Composition({str(el): float(amt) for el, amt in data.items()})
    if isinstance(obj, Mapping):
        return Composition({str(el): float(amt) for el, amt in obj.items()})
    if isinstance(obj, str):
        return Composition(obj)
    raise TypeError(f"cannot make a Composition from {type(obj).__name__}: {obj!r}")


def _element_amounts(comp) -> dict[str, float]:
    return {str(el): float(amt) for el, amt in comp.get_el_amt_dict().items() if amt != 0}


def element_order(symbols: Iterable[str]) -> list[str]:
    """Element symbols sorted by atomic number (the column order of every feature matrix here)."""
    from pymatgen.core import Element

    return sorted(set(symbols), key=lambda s: Element(s).Z)


def composition_matrix(compositions: Sequence, elements: Sequence[str] | None = None,
                       kind: str = "fraction") -> tuple[np.ndarray, list[str]]:
    """Feature matrix of ``compositions``: one row per composition, one column per element.

    ``kind="fraction"``: atomic fractions (rows sum to one; CHGNet's intensive AtomRef features).
    ``kind="count"``: number of atoms of each element (the extensive variant).

    ``elements`` fixes the columns (e.g. those of a training set); a composition with an element outside them
    raises ``KeyError`` naming it: callers that expect unseen elements check with :func:`unseen_elements` first.
    Returns ``(X, elements)``.
    """
    if kind not in ("fraction", "count"):
        raise ValueError(f"kind must be 'fraction' or 'count', got {kind!r}")
    comps = [to_composition(c) for c in compositions]
    amounts = [_element_amounts(c) for c in comps]
    if elements is None:
        elements = element_order(s for a in amounts for s in a)
    col = {s: j for j, s in enumerate(elements)}
    X = np.zeros((len(comps), len(elements)))
    for i, a in enumerate(amounts):
        total = sum(a.values())
        for s, n in a.items():
            if s not in col:
                raise KeyError(f"element {s} of composition {comps[i].formula} is not among the {len(elements)} "
                               "feature columns")
            X[i, col[s]] = n / total if kind == "fraction" else n
    return X, list(elements)


def unseen_elements(compositions: Sequence, known: Iterable[str]) -> list[tuple[str, ...]]:
    """For each composition, the (sorted) tuple of its elements that are not in ``known`` (empty if none)."""
    known = set(known)
    return [tuple(sorted(set(_element_amounts(to_composition(c))) - known)) for c in compositions]


# ----------------------------------------------------------------------------------------------------------------
# pairing


@dataclass
class Pairing:
    """Rows that carry both quantities, and an account of those that do not."""

    paired: pd.DataFrame
    dropped: pd.DataFrame  #: one row per unpaired entry with a ``reason`` column

    @property
    def counts(self) -> dict[str, int]:
        out = {"paired": len(self.paired), "dropped": len(self.dropped)}
        if len(self.dropped):
            out.update({f"dropped:{k}": int(v) for k, v in self.dropped["reason"].value_counts().items()})
        return out


def pair_columns(df: pd.DataFrame, a: str, b: str) -> Pairing:
    """Rows of ``df`` where both ``a`` and ``b`` are finite numbers; the others with the reason they are not."""
    va = pd.to_numeric(df[a], errors="coerce")
    vb = pd.to_numeric(df[b], errors="coerce")
    ok_a, ok_b = np.isfinite(va), np.isfinite(vb)
    reason = np.where(~ok_a & ~ok_b, f"no {a} and no {b}", np.where(~ok_a, f"no {a}", f"no {b}"))
    mask = ok_a & ok_b
    dropped = df.loc[~mask].copy()
    dropped["reason"] = reason[~mask.to_numpy()]
    return Pairing(paired=df.loc[mask].copy(), dropped=dropped)


#: RxnNet columns -> names with units used in the chapters
RXNNET_COLUMNS = {
    "e_gga_gga_u": "e_gga_ev_per_atom",
    "e_r2scan": "e_r2scan_ev_per_atom",
    "hf_gga_gga_u": "hf_gga_ev_per_atom",
    "hf_r2scan": "hf_r2scan_ev_per_atom",
    "hf_gga_gga_u_r2scan": "hf_mixed_ev_per_atom",
    "hf_ref": "hf_exp_ev_per_atom",
    "e_chgnet": "e_chgnet_ev_per_atom",
}


def tidy_rxnnet(raw: pd.DataFrame) -> pd.DataFrame:
    """The RxnNet table with unit-named columns, pymatgen compositions rebuilt and the element list per row."""
    out = raw.rename(columns=RXNNET_COLUMNS)[list(RXNNET_COLUMNS.values())].copy()
    comps = [to_composition(c) for c in raw["Composition"]]
    out.insert(0, "formula", [c.reduced_formula for c in comps])
    out["composition"] = comps
    out["n_atoms_cell"] = [int(round(c.num_atoms)) for c in comps]
    out["elements"] = [" ".join(element_order(_element_amounts(c))) for c in comps]
    out["chemistry_type"] = [" ".join(t) if isinstance(t, (list, tuple)) else str(t) for t in raw["chemistry_type"]]
    out.index.name = "mp_id"
    return out


def load_rxnnet_pairs(raw: pd.DataFrame | None = None) -> Pairing:
    """Materials Project compounds with both GGA/GGA+U and r2SCAN total energies (the 974 of 1,555 RxnNet rows).

    ``raw`` defaults to ``datasets.load("rxnnet-gga-r2scan")`` (checksum verified before unpickling).
    """
    if raw is None:
        from . import datasets

        raw = datasets.load("rxnnet-gga-r2scan")
    return pair_columns(tidy_rxnnet(raw), "e_gga_ev_per_atom", "e_r2scan_ev_per_atom")


def _same_structure(s1, s2, atol: float) -> str:
    """'' when two pymatgen structures are identical (lattice, species, fractional positions), else why not."""
    if not np.allclose(s1.lattice.matrix, s2.lattice.matrix, atol=atol, rtol=0):
        return "different lattice"
    if len(s1) != len(s2):
        return "different number of sites"
    if [sp.symbol for sp in s1.species] != [sp.symbol for sp in s2.species]:
        return "different species order"
    d = np.asarray(s1.frac_coords) - np.asarray(s2.frac_coords)
    d -= np.round(d)  # periodic images are the same site
    if not np.allclose(d @ s1.lattice.matrix, 0, atol=atol):
        return "different atomic positions"
    return ""


def pair_matpes(pbe: Mapping[str, dict], r2scan: Mapping[str, dict], atol: float = 1e-6) -> Pairing:
    """Elements whose MatPES PBE and r2SCAN references are the same structure (same ``matpes_id`` and geometry).

    ``pbe`` / ``r2scan``: element -> MatPES document with a pymatgen ``structure`` and ``energy_per_atom``
    (``datasets.load("matpes-pbe-element-refs")`` and ``...-r2scan-...``). Paired rows carry
    ``e_pbe_ev_per_atom``, ``e_r2scan_ev_per_atom`` and their difference ``shift_ev_per_atom`` (r2SCAN - PBE);
    each rejected element carries the reason (missing in one file, other matpes_id, other lattice, ...).
    """
    rows, dropped = [], []
    for el in element_order(set(pbe) | set(r2scan)):
        p, r = pbe.get(el), r2scan.get(el)
        base = {"element": el}
        if p is None or r is None:
            dropped.append({**base, "reason": f"missing in the {'PBE' if p is None else 'r2SCAN'} file"})
            continue
        base.update(matpes_id_pbe=p["matpes_id"], matpes_id_r2scan=r["matpes_id"])
        if p["matpes_id"] != r["matpes_id"]:
            dropped.append({**base, "reason": "different matpes_id"})
            continue
        why = _same_structure(p["structure"], r["structure"], atol)
        if why:
            dropped.append({**base, "reason": why})
            continue
        e_p, e_r = float(p["energy_per_atom"]), float(r["energy_per_atom"])
        rows.append({**base, "matpes_id": p["matpes_id"], "n_sites": len(p["structure"]),
                     "e_pbe_ev_per_atom": e_p, "e_r2scan_ev_per_atom": e_r, "shift_ev_per_atom": e_r - e_p})
    paired = pd.DataFrame(rows, columns=["element", "matpes_id", "n_sites", "e_pbe_ev_per_atom",
                                         "e_r2scan_ev_per_atom", "shift_ev_per_atom"])
    dropped = pd.DataFrame(dropped, columns=["element", "matpes_id_pbe", "matpes_id_r2scan", "reason"])
    return Pairing(paired=paired.set_index("element", drop=False), dropped=dropped)


# ----------------------------------------------------------------------------------------------------------------
# Materials Project 2020 corrections, reconstructed


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
            data["oxide_type"] = ("peroxide" if "peroxide" in labels else
                                  "superoxide" if "superoxide" in labels else "oxide") if labels else None
        if "S" in symbols and labels:
            data["sulfide_type"] = "sulfide" if labels & {"sulfide", "hydrosulfide"} else "sulfate"
        data = {k: v for k, v in data.items() if v is not None}
        entry = ComputedEntry(comp, 0.0, parameters={"run_type": "GGA+U" if hubbards else "GGA",
                                                     "hubbards": hubbards, "software": "reconstructed"},
                              data=data)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "no structure, peroxide detection by formula" etc.
                adjustments = compat.get_adjustments(entry)
            corr, err = sum(a.value for a in adjustments) / comp.num_atoms, ""
        except Exception as exc:  # CompatibilityError: recorded, not fatal
            corr, err = np.nan, f"{type(exc).__name__}: {exc}"
        rows.append({"correction_ev_per_atom": corr, "u_elements": " ".join(hubbards), "error": err})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------------------------
# statistics


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


def element_importance(X: np.ndarray, y: np.ndarray, elements: Sequence[str], n_splits: int = 5, seed: int = 0,
                       n_estimators: int = 300, n_repeats: int = 5) -> tuple[pd.DataFrame, dict]:
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
        pi = permutation_importance(rf, X[te], y[te], n_repeats=n_repeats, random_state=seed,
                                    scoring="neg_mean_squared_error", n_jobs=1)
        imp[k] = pi.importances_mean
        present = X[tr].sum(0) > 0  # elements absent from the training fold get no coefficient
        coef = np.linalg.pinv(X[tr][:, present]) @ y[tr]
        test_ok = X[te][:, ~present].sum(1) == 0
        pl = np.full(len(te), np.nan)
        pl[test_ok] = X[te][test_ok][:, present] @ coef
        pred_lin[te] = pl
    coef_all = np.linalg.pinv(X) @ y
    table = pd.DataFrame({
        "element": list(elements),
        "n_compounds": (X > 0).sum(0).astype(int),
        "permutation_importance_ev2": imp.mean(0),
        "permutation_importance_std_ev2": imp.std(0),
        "linear_coefficient_ev_per_atom": coef_all,
    })
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


# ----------------------------------------------------------------------------------------------------------------
# zero-shot CHGNet energies (cached in the result store)

#: checkpoint files of the pretrained CHGNet models shipped in the chgnet wheel
CHGNET_CHECKPOINTS = {"0.3.0": "0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar",
                      "r2scan": "r2scan/chgnet_r2scan_transfer_learning_e15f36s161m23.pth.tar"}
_CHGNET_CACHE: dict = {}


def chgnet_checkpoint_sha256(model_name: str) -> str:
    """sha256 of a pretrained CHGNet checkpoint (part of the result-store key: other weights, other results)."""
    from pathlib import Path

    import chgnet

    from .datasets import sha256sum

    return sha256sum(Path(chgnet.__file__).parent / "pretrained" / CHGNET_CHECKPOINTS[model_name])


def _chgnet(model_name: str):
    if model_name not in _CHGNET_CACHE:
        from chgnet.model import CHGNet

        _CHGNET_CACHE[model_name] = CHGNet.load(model_name=model_name, use_device="cpu", verbose=False)
    return _CHGNET_CACHE[model_name]


def chgnet_energy_task(args: dict) -> dict:
    """One single-point CHGNet energy (eV/atom) of one structure; the unit of work of :func:`chgnet_energies`."""
    from pymatgen.core import Structure

    structure = Structure.from_dict(args["structure"])
    pred = _chgnet(args["model_name"]).predict_structure(structure, task="e")
    return {"energy_ev_per_atom": float(np.asarray(pred["e"]).ravel()[0]), "n_atoms": len(structure)}


def chgnet_energies(structures: Mapping[str, object], model_name: str, store=None, progress: bool = True):
    """Single-point CHGNet energies per atom of ``structures`` (label -> pymatgen Structure), one at a time.

    Each result is written to the :class:`~uipbench.store.ResultStore` (default: ``results_dir()/results.sqlite``)
    under a key of (model, checkpoint sha256, chgnet version, structure hash), so a rerun only reads the store.
    A structure the model cannot evaluate (e.g. an element outside its table) becomes a ``failed`` record with
    its reason. Returns (DataFrame label -> energy_ev_per_atom / status / error, run summary).
    """
    import chgnet
    from pymatgen.io.ase import AseAtomsAdaptor

    from .engine import Task, run_tasks
    from .store import ResultStore, make_key, structure_hash

    store = store if store is not None else ResultStore()
    weights = chgnet_checkpoint_sha256(model_name)
    model = f"chgnet-{model_name}"
    tasks, keys = [], {}
    for label, s in structures.items():
        key = make_key(kind="single-point-energy", model=model, weights_sha256=weights,
                       chgnet_version=chgnet.__version__,
                       structure=structure_hash(AseAtomsAdaptor.get_atoms(s)))
        keys[label] = key
        tasks.append(Task(key=key, kind="single-point-energy", model=model, item=str(label),
                          args={"model_name": model_name, "structure": s.as_dict()}))
    summary = run_tasks(chgnet_energy_task, tasks, store, backend="serial", desc=model, progress=progress)
    rows = []
    for label, key in keys.items():
        rec = store.get(key, with_array=False)
        rows.append({"label": label, "status": rec.status,
                     "energy_ev_per_atom": (rec.payload or {}).get("energy_ev_per_atom", np.nan),
                     "error": rec.error or ""})
    return pd.DataFrame(rows).set_index("label"), summary


# ----------------------------------------------------------------------------------------------------------------
# plotting (shared by both chapters)


def stats_label(s: Mapping[str, float]) -> str:
    """Short legend text: n, Pearson r, least-squares slope."""
    return f"n = {s['n']}\nPearson r = {s['pearson_r']:.3f}\nslope = {s['slope']:.3f}"


def parity_with_marginals(x, y, xlabel: str, ylabel: str, title: str = "", identity: bool = False,
                          bins: int = 40, color: str = "C0", figsize=(5.6, 5.6)):
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
    ax.text(0.03, 0.97, stats_label(s), transform=ax.transAxes, va="top", fontsize=9,
            bbox=dict(facecolor="white", edgecolor="0.8", alpha=0.9))
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
