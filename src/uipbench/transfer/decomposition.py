"""Decomposition energies on convex hulls under GGA/GGA+U and r2SCAN (transfer paper Fig. 4).

For every chemical system of the paired RxnNet compounds (a compound's element set, with every compound whose
elements are a subset of it) one convex hull per energy variant is built from the *same* compounds with
:class:`pymatgen.analysis.phase_diagram.PhaseDiagram`:

* ``"gga"``: the GGA/GGA+U energies per atom; ``"r2scan"``: the r2SCAN energies per atom;
* ``"gga_shifted"``: GGA/GGA+U energies shifted by the held-out refitted AtomRef difference,
  ``e_gga - ref_gga(comp) + ref_r2scan(comp)``, both references from :func:`~uipbench.transfer.atomref.
  cross_validate_atomref` (same seeded folds), so a compound's shift comes from fits that never saw it; the
  elemental endpoints are shifted by the same linear model (full-data fit: the elements are not table compounds);
* ``"gga_shifted_r2scan_el"``: the same shifted compound energies against r2SCAN's own elemental energies.

**Elemental references.** The table has no elemental compounds, but it carries each functional's formation
energies, and ``e - hf = sum_i x_i mu_i`` holds for all 974 compounds to 1e-13 eV/atom: the elemental reference
energies ``mu`` are recovered exactly by least squares (:func:`elemental_references`; they are the Materials
Project elemental ground states, e.g. GGA Cu = -4.0992 eV/atom, fcc Cu). Each hull's endpoints are elemental
entries at these energies; an element whose ``mu`` is not identifiable from the table leaves its systems
*skipped* with the reason, and their compounds stay in the table with NaN.

**Decomposition energy** (``decomposition_energy_*``): :meth:`PhaseDiagram.get_decomp_and_phase_separation_energy`
(``stable_only=False``), the decomposition enthalpy of Bartel et al., npj Comput. Mater. 6, 97 (2020): for an
unstable compound the energy above the hull (> 0); for a stable one the (negative) energy to the hull built
without it. ``get_decomp_and_e_above_hull`` would give 0 for every stable compound, so it only fills
``e_above_hull_*``.

**Finding: a per-element linear shift moves a hull only through the elements.** Adding ``sum_i x_i d_i`` to every
entry, elements included (``mu_i -> mu_i + d_i``), leaves every formation energy and so every hull and
decomposition energy unchanged (tested). So ``"gga_shifted"`` differs from plain GGA only through the fold-to-fold
differences of the held-out fits (RxnNet: 11 meV/atom MAE) and does not bring GGA closer to r2SCAN (MAE against
r2SCAN 90 vs 87 meV/atom). The AtomRef difference is fitted on compounds only, so it is *not* the elemental
difference ``mu_r2scan - mu_gga`` (RxnNet: 0.29 eV/atom apart on average): it also absorbs each element's mean
change of formation energy. Only when the endpoints are r2SCAN's own elements (``"gga_shifted_r2scan_el"``) does
that part act, and formation and decomposition energies move towards r2SCAN (MAE 51 meV/atom).

**Caveat.** The 974 compounds are a small subset of the Materials Project, so most hulls are sparse (290 compounds
are alone in their system): a stable compound's decomposition energy is then close to its formation energy.

Energies in eV/atom.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .atomref import cross_validate_atomref, fit_atomref
from .compositions import composition_matrix, element_order, to_composition

FUNCTIONALS = ("gga", "r2scan")
VARIANTS = ("gga", "r2scan", "gga_shifted", "gga_shifted_r2scan_el")
#: variant -> column of :attr:`DecompositionResult.references` holding its elemental endpoint energies
ENDPOINTS = {
    "gga": "mu_gga_ev_per_atom",
    "r2scan": "mu_r2scan_ev_per_atom",
    "gga_shifted": "mu_gga_shifted_ev_per_atom",
    "gga_shifted_r2scan_el": "mu_r2scan_ev_per_atom",
}
#: the table's formation energies must be composition-linear in the total energies to this accuracy (eV/atom)
LINEAR_TOL_EV = 1e-6
_NULL_TOL = 1e-8


def elemental_references(data: pd.DataFrame) -> pd.DataFrame:
    """Per element: reference energy ``mu_<f>_ev_per_atom`` for each functional implied by ``e - hf = X mu``.

    ``data``: paired compounds with ``composition``, ``e_<f>_ev_per_atom`` and ``hf_<f>_ev_per_atom``.
    An element whose ``mu`` the compounds do not determine (a null-space direction of ``X``) gets NaN and
    ``identifiable = False``. Raises ``ValueError`` if the formation energies are not composition-linear.
    """
    X, els = composition_matrix(list(data["composition"]))
    _, sv, vt = np.linalg.svd(X, full_matrices=True)
    rank = int((sv > _NULL_TOL * sv.max()).sum())
    identifiable = np.all(np.abs(vt[rank:]) < 1e-6, axis=0)
    out = pd.DataFrame({"n_compounds": (X > 0).sum(0), "identifiable": identifiable}, index=pd.Index(els, name="el"))
    for f in FUNCTIONALS:
        y = (data[f"e_{f}_ev_per_atom"] - data[f"hf_{f}_ev_per_atom"]).to_numpy(dtype=float)
        mu = np.linalg.lstsq(X, y, rcond=None)[0]
        worst = float(np.abs(y - X @ mu).max())
        if worst > LINEAR_TOL_EV:
            raise ValueError(f"{f}: e - hf is not linear in composition (worst residual {worst:.2e} eV/atom)")
        out[f"mu_{f}_ev_per_atom"] = np.where(identifiable, mu, np.nan)
    return out


def heldout_shift(data: pd.DataFrame, n_splits: int = 5, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """(per compound: held-out AtomRef difference ``shift_ev_per_atom`` = ref_r2scan - ref_gga, its fold and
    unseen elements; per element: the full-data difference that shifts the elemental endpoints, eV/atom).

    Both functionals are fitted on the same seeded folds; a compound with an element absent from its training
    folds has a NaN shift (``unseen_elements`` says which).
    """
    comps = list(data["composition"])
    cv = {
        f: cross_validate_atomref(comps, data[f"e_{f}_ev_per_atom"], n_splits, seed, index=data.index)
        for f in FUNCTIONALS
    }
    p = cv["gga"].predictions
    per_compound = pd.DataFrame(
        {
            "shift_ev_per_atom": cv["r2scan"].predictions["reference_energy"] - p["reference_energy"],
            "cv_fold": p["fold"],
            "unseen_elements": p["unseen_elements"],
        }
    )
    full = {f: fit_atomref(comps, data[f"e_{f}_ev_per_atom"]).references for f in FUNCTIONALS}
    per_element = (full["r2scan"] - full["gga"]).rename("shift_ev_per_atom")
    return per_compound, per_element


def chemical_systems(compositions: Sequence) -> list[str]:
    """The chemical system ``"A-B-..."`` (elements in atomic-number order) of each composition."""
    return ["-".join(element_order(str(e) for e in to_composition(c).elements)) for c in compositions]


def hull_decomposition(
    compositions: Sequence, energies_ev_per_atom, elemental_ev_per_atom: Mapping[str, float], evaluate=None
) -> pd.DataFrame:
    """Formation energy, energy above the hull and decomposition energy (eV/atom) of each compound on the hull
    of ``compositions`` plus one elemental entry per element at ``elemental_ev_per_atom``.

    ``evaluate``: positions of the compounds to report (default all; the others still shape the hull); the
    result is indexed by these positions. All compositions must lie in the elements of ``elemental_ev_per_atom``
    (``KeyError`` otherwise).
    """
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition

    comps = [to_composition(c) for c in compositions]
    e = np.asarray(energies_ev_per_atom, dtype=float)
    entries = [PDEntry(c, float(ei) * c.num_atoms) for c, ei in zip(comps, e, strict=True)]
    for c in comps:
        missing = [str(el) for el in c.elements if str(el) not in elemental_ev_per_atom]
        if missing:
            raise KeyError(f"{c.reduced_formula}: no elemental reference for {missing}")
    elements = [PDEntry(Composition(el), float(mu)) for el, mu in elemental_ev_per_atom.items()]
    pd_ = PhaseDiagram(entries + elements)
    rows = []
    evaluate = range(len(entries)) if evaluate is None else list(evaluate)
    for entry in (entries[i] for i in evaluate):
        _, e_d = pd_.get_decomp_and_phase_separation_energy(entry)
        rows.append(
            {
                "formation_energy_ev_per_atom": pd_.get_form_energy_per_atom(entry),
                "e_above_hull_ev_per_atom": pd_.get_e_above_hull(entry),
                "decomposition_energy_ev_per_atom": np.nan if e_d is None else float(e_d),
            }
        )
    return pd.DataFrame(rows, index=evaluate)


@dataclass
class DecompositionResult:
    """Per-compound decomposition energies of every variant, and what could not be computed."""

    table: pd.DataFrame  #: one row per compound (index mp_id); NaN where its system was skipped for a variant
    skipped: pd.DataFrame  #: one row per (chemsys, variant) not computed, with ``reason``
    references: pd.DataFrame  #: per element: mu per functional, shifted-endpoint mu (eV/atom)
    params: dict = field(default_factory=dict)


def _variant_energies(data: pd.DataFrame, shift: pd.Series) -> dict[str, pd.Series]:
    return {
        "gga": data["e_gga_ev_per_atom"],
        "r2scan": data["e_r2scan_ev_per_atom"],
        "gga_shifted": data["e_gga_ev_per_atom"] + shift,
        "gga_shifted_r2scan_el": data["e_gga_ev_per_atom"] + shift,
    }


def _why_skip(elements: list[str], energies: np.ndarray, mu: Mapping[str, float], unseen: np.ndarray) -> str:
    """'' when the hull can be built, else the reason (no elemental reference; compounds without an energy)."""
    no_ref = [el for el in elements if not np.isfinite(mu.get(el, np.nan))]
    if no_ref:
        return f"no elemental reference for {' '.join(no_ref)} (not identifiable from the table)"
    bad = np.isnan(energies)
    if bad.any():
        els = element_order({e for u in unseen[bad] for e in u.split()})
        return (
            f"{int(bad.sum())} compound(s) without a held-out AtomRef shift (unseen in training folds: {' '.join(els)})"
        )
    return ""


def _system_members(systems: pd.Series) -> dict[str, np.ndarray]:
    """chemsys -> positions of every compound whose elements are a subset of it."""
    sets = {s: frozenset(s.split("-")) for s in systems.unique()}
    return {s: np.flatnonzero([sets[t] <= els for t in systems]) for s, els in sets.items()}


def decomposition_table(data: pd.DataFrame, n_splits: int = 5, seed: int = 0) -> DecompositionResult:
    """Decomposition energies of every paired compound for each of :data:`VARIANTS` (see the module docstring).

    ``data``: :func:`~uipbench.transfer.pairing.load_rxnnet_pairs` ``.paired``. Each compound is evaluated on the
    hull of its own chemical system (in a larger system it has the same value: only its own face competes).
    """
    refs = elemental_references(data)
    shift, shift_el = heldout_shift(data, n_splits, seed)
    refs["shift_ev_per_atom"] = shift_el.reindex(refs.index)
    refs["mu_gga_shifted_ev_per_atom"] = refs["mu_gga_ev_per_atom"] + refs["shift_ev_per_atom"]
    # positional arrays: pandas label look-ups in the per-system loop cost more than the hulls
    energies = {v: e.to_numpy(dtype=float) for v, e in _variant_energies(data, shift["shift_ev_per_atom"]).items()}
    mus = {v: refs[col].to_dict() for v, col in ENDPOINTS.items()}
    comps, unseen = list(data["composition"]), shift["unseen_elements"].to_numpy()
    systems = pd.Series(chemical_systems(comps), index=data.index)
    table = pd.concat([pd.DataFrame({"formula": data["formula"], "chemsys": systems}), shift], axis=1)
    table["n_elements"] = systems.str.count("-") + 1
    members = _system_members(systems)
    table["n_hull_compounds"] = systems.map({s: len(m) for s, m in members.items()})
    skipped, parts = [], {v: [] for v in VARIANTS}
    for chemsys, idx in sorted(members.items()):
        own = np.flatnonzero(systems.to_numpy()[idx] == chemsys)  # positions within idx
        elements = chemsys.split("-")
        for v in VARIANTS:
            why = _why_skip(elements, energies[v][idx], mus[v], unseen[idx])
            if why:
                skipped.append({"chemsys": chemsys, "variant": v, "n_compounds": len(own), "reason": why})
                continue
            mu = {el: mus[v][el] for el in elements}
            res = hull_decomposition([comps[i] for i in idx], energies[v][idx], mu, evaluate=own)
            res.index = data.index[idx[own]]
            parts[v].append(res)
    for v in VARIANTS:
        res = pd.concat(parts[v]) if parts[v] else pd.DataFrame(columns=["decomposition_energy_ev_per_atom"])
        for col in res.columns:
            table[col.replace("_ev_per_atom", f"_{v}_ev_per_atom")] = res[col].reindex(table.index)
    skipped = pd.DataFrame(skipped, columns=["chemsys", "variant", "n_compounds", "reason"])
    params = {"n_splits": n_splits, "seed": seed}
    return DecompositionResult(table=table, skipped=skipped, references=refs, params=params)


# ----------------------------------------------------------------------------------------------------------------
# summaries


def _ed(variant: str) -> str:
    return f"decomposition_energy_{variant}_ev_per_atom"


def decomposition_mae(table: pd.DataFrame, variant: str, reference: str = "r2scan") -> dict:
    """MAE (and n, mean signed difference) of ``variant``'s decomposition energies against ``reference``'s, eV/atom,
    over compounds where both are finite."""
    d = (table[_ed(variant)] - table[_ed(reference)]).dropna()
    return {"n": int(len(d)), "mae_ev_per_atom": float(d.abs().mean()), "mean_difference_ev_per_atom": float(d.mean())}


def stability_changes(
    table: pd.DataFrame, a: str = "gga", b: str = "r2scan", threshold_ev_per_atom: float = 0.0
) -> pd.DataFrame:
    """Compounds stable (decomposition energy <= threshold) under one variant and unstable under the other."""
    ea, eb = table[_ed(a)], table[_ed(b)]
    ok = ea.notna() & eb.notna()
    sa, sb = ea <= threshold_ev_per_atom, eb <= threshold_ev_per_atom
    out = table.loc[ok & (sa != sb), ["formula", "chemsys", _ed(a), _ed(b)]].copy()
    out["stable_in"] = np.where(sa[out.index], a, b)
    return out.sort_values(["chemsys", "formula"])


def system_counts(table: pd.DataFrame, threshold_ev_per_atom: float = 0.0) -> pd.DataFrame:
    """Per chemical system: its own compounds, the compounds on its hull, stable compounds per variant and
    stability changes of GGA and of shifted GGA against r2SCAN."""
    t = table.copy()
    for v in VARIANTS:
        t[f"n_stable_{v}"] = (t[_ed(v)] <= threshold_ev_per_atom).astype(int)
    for v in ("gga", "gga_shifted", "gga_shifted_r2scan_el"):
        changed = stability_changes(table, v, "r2scan", threshold_ev_per_atom).index
        t[f"n_changes_{v}_vs_r2scan"] = t.index.isin(changed).astype(int)
    agg = {c: "sum" for c in t.columns if c.startswith("n_stable_") or c.startswith("n_changes_")}
    out = t.groupby("chemsys").agg(
        n_elements=("n_elements", "first"),
        n_compounds=("formula", "size"),
        n_hull_compounds=("n_hull_compounds", "first"),
        **{k: (k, v) for k, v in agg.items()},
    )
    return out.sort_values(["n_compounds", "n_hull_compounds"], ascending=False, kind="stable")


def pick_hull_system(table: pd.DataFrame, threshold_ev_per_atom: float = 0.0, n_elements: int = 2) -> str:
    """The system to draw: among systems of ``n_elements`` elements with a GGA-vs-r2SCAN stability change, the one
    with most own compounds (ties: alphabetical); without any change, the one with most compounds."""
    counts = system_counts(table, threshold_ev_per_atom)
    counts = counts[counts["n_elements"] == n_elements]
    if counts.empty:
        raise ValueError(f"no system with {n_elements} elements")
    changed = counts[counts["n_changes_gga_vs_r2scan"] > 0]
    pool = (changed if len(changed) else counts).reset_index()
    return str(pool.sort_values(["n_compounds", "chemsys"], ascending=[False, True]).iloc[0]["chemsys"])


def summary(result: DecompositionResult, threshold_ev_per_atom: float = 0.0) -> dict:
    """The key numbers: systems and skips, MAE of GGA and shifted GGA vs r2SCAN, stability changes (JSON-able)."""
    t = result.table
    systems = t["chemsys"].nunique()
    skipped = result.skipped
    return {
        "n_compounds": int(len(t)),
        "n_systems": int(systems),
        "n_systems_by_elements": {str(k): int(v) for k, v in t.groupby("n_elements")["chemsys"].nunique().items()},
        "n_skipped": {v: int((skipped["variant"] == v).sum()) for v in VARIANTS},
        "skipped_reasons": {str(k): int(v) for k, v in skipped["reason"].value_counts().items()},
        **{f"mae_{v}_vs_r2scan": decomposition_mae(t, v) for v in VARIANTS if v != "r2scan"},
        "mae_gga_shifted_vs_gga": decomposition_mae(t, "gga_shifted", "gga"),
        "threshold_ev_per_atom": float(threshold_ev_per_atom),
        "n_stable": {v: int((t[_ed(v)] <= threshold_ev_per_atom).sum()) for v in VARIANTS},
        "n_stability_changes_vs_r2scan": {
            v: int(len(stability_changes(t, v, "r2scan", threshold_ev_per_atom))) for v in VARIANTS if v != "r2scan"
        },
        "n_compounds_alone_in_system": int((t["n_hull_compounds"] == 1).sum()),
        **result.params,
    }
