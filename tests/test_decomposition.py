"""Decomposition energies on convex hulls (uipbench.transfer.decomposition): hand-solved hulls, invariance under a
per-element linear shift, stability changes, skipped systems with reasons, and sane numbers on RxnNet."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition

from uipbench.transfer import decomposition as dec
from uipbench.transfer import decomposition_report as report

#: Cu-Zn by hand (formation energies, eV/atom; elements at 0). GGA: CuZn on the hull 0.1 below the Cu-CuZn3 line,
#: CuZn3 0.05 below the CuZn-Zn line, Cu3Zn 0.06 above the Cu-CuZn line. r2SCAN: CuZn3 0.05 above the CuZn-Zn line.
MU = {"gga": {"Cu": -4.0, "Zn": -1.0}, "r2scan": {"Cu": -10.0, "Zn": -9.0}}
HF = {
    "gga": {"Cu3Zn": -0.04, "CuZn": -0.2, "CuZn3": -0.15},
    "r2scan": {"Cu3Zn": -0.04, "CuZn": -0.2, "CuZn3": -0.05},
}
ED = {  # decomposition energies by hand
    "gga": {"Cu3Zn": 0.06, "CuZn": -0.1, "CuZn3": -0.05},
    "r2scan": {"Cu3Zn": 0.06, "CuZn": -0.155, "CuZn3": 0.05},  # r2SCAN CuZn: hull without it Cu-Cu3Zn-CuZn3-Zn
}


def _total_per_atom(formula: str, hf: float, mu: dict) -> float:
    c = Composition(formula)
    return hf + sum(c.get_atomic_fraction(e) * mu[str(e)] for e in c.elements)


def _binary(functional: str):
    comps = list(HF[functional])
    e = [_total_per_atom(f, HF[functional][f], MU[functional]) for f in comps]
    return comps, np.array(e)


@pytest.mark.parametrize("functional", ["gga", "r2scan"])
def test_binary_hull_by_hand(functional):
    comps, e = _binary(functional)
    res = dec.hull_decomposition(comps, e, MU[functional])
    np.testing.assert_allclose(res["formation_energy_ev_per_atom"], list(HF[functional].values()), atol=1e-10)
    np.testing.assert_allclose(res["decomposition_energy_ev_per_atom"], list(ED[functional].values()), atol=1e-6)
    # energy above the hull: zero for the stable ones, the decomposition energy for the unstable ones
    np.testing.assert_allclose(
        res["e_above_hull_ev_per_atom"], np.clip(list(ED[functional].values()), 0, None), atol=1e-6
    )


def test_missing_elemental_reference_raises():
    comps, e = _binary("gga")
    with pytest.raises(KeyError, match="Zn"):
        dec.hull_decomposition(comps, e, {"Cu": -4.0})


def _random_ternary(rng, n=12):
    els = ["Li", "Fe", "O"]
    comps = [Composition({e: int(k) for e, k in zip(els, rng.integers(0, 4, 3)) if k}) for _ in range(n)]
    comps = [c for c in comps if len(c.elements) > 1]
    mu = dict(zip(els, rng.uniform(-8, -2, 3)))
    hf = rng.uniform(-1.0, 0.2, len(comps))
    e = np.array([_total_per_atom(c.formula, h, mu) for c, h in zip(comps, hf)])
    return comps, e, mu


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_element_linear_shift_of_all_entries_changes_nothing(seed):
    """Shifting compounds *and* elements by sum_i x_i d_i leaves every decomposition energy as it was."""
    rng = np.random.default_rng(seed)
    comps, e, mu = _random_ternary(rng)
    d = dict(zip(mu, rng.normal(0, 3, len(mu))))
    shift = np.array([sum(c.get_atomic_fraction(el) * d[str(el)] for el in c.elements) for c in comps])
    before = dec.hull_decomposition(comps, e, mu)
    after = dec.hull_decomposition(comps, e + shift, {el: mu[el] + d[el] for el in mu})
    np.testing.assert_allclose(after.to_numpy(), before.to_numpy(), atol=1e-6)
    # the same shift on the compounds alone does move the hull (the elements carry the effect)
    moved = dec.hull_decomposition(comps, e + shift, mu)
    assert np.abs(moved["decomposition_energy_ev_per_atom"] - before["decomposition_energy_ev_per_atom"]).max() > 0.1


def _synthetic_table() -> pd.DataFrame:
    """The Cu-Zn binary, Cu and Zn oxides (so both elements reach every training fold) and KBr, whose K and Br
    only ever occur together: their elemental references are not identifiable."""
    mu = {f: {**MU[f], "O": -5.0 - i, "K": -1.0 - i, "Br": -1.5 - i} for i, f in enumerate(("gga", "r2scan"))}
    hf = {f: {**HF[f], "CuO": -0.8, "Cu2O": -0.6, "ZnO": -1.8, "ZnO2": -1.2, "KBr": -2.0} for f in HF}
    rows = []
    for formula in hf["gga"]:
        row = {"formula": formula, "composition": Composition(formula)}
        for f in ("gga", "r2scan"):
            row[f"hf_{f}_ev_per_atom"] = hf[f][formula]
            row[f"e_{f}_ev_per_atom"] = _total_per_atom(formula, hf[f][formula], mu[f])
        rows.append(row)
    return pd.DataFrame(rows, index=pd.Index([f"mp-{i}" for i in range(len(rows))], name="mp_id"))


def test_decomposition_table_on_a_synthetic_table():
    data = _synthetic_table()
    res = dec.decomposition_table(data, n_splits=2, seed=0)
    t = res.table
    assert len(t) == len(data) and list(t.index) == list(data.index)  # nothing dropped
    cuzn = t[t["chemsys"] == "Cu-Zn"].set_index("formula")
    for f in ("gga", "r2scan"):
        got = cuzn.loc[list(ED[f]), f"decomposition_energy_{f}_ev_per_atom"]
        np.testing.assert_allclose(got, list(ED[f].values()), atol=1e-6)
    # CuZn3: stable in GGA (-0.05), unstable in r2SCAN (+0.05): a stability change at threshold 0, not at 0.1
    ch = dec.stability_changes(t, "gga", "r2scan", threshold_ev_per_atom=0.0)
    assert list(ch["formula"]) == ["CuZn3"] and list(ch["stable_in"]) == ["gga"]
    assert dec.stability_changes(t, "gga", "r2scan", threshold_ev_per_atom=0.1).empty
    assert dec.pick_hull_system(t) == "Cu-Zn"
    # KBr: skipped for every variant with the reason, its row kept with NaN
    kbr = res.skipped[res.skipped["chemsys"] == "K-Br"]
    assert set(kbr["variant"]) == set(dec.VARIANTS)
    assert kbr["reason"].str.contains("no elemental reference").all()
    assert t.loc[t["formula"] == "KBr", "decomposition_energy_gga_ev_per_atom"].isna().all()
    assert (res.skipped["reason"].str.len() > 0).all()
    counts = dec.system_counts(t)
    assert counts.loc["Cu-Zn", "n_compounds"] == 3 and counts.loc["Cu-Zn", "n_changes_gga_vs_r2scan"] == 1


def test_shifted_variant_equals_both_when_the_functionals_differ_linearly():
    """r2SCAN = GGA + sum_i x_i d_i exactly: every fold's AtomRef difference is d (least squares is linear in the
    target), so the shifted hull (elements shifted alike) is GGA's, and here also r2SCAN's."""
    rng = np.random.default_rng(3)
    comps, e, mu = _random_ternary(rng, n=40)
    d = dict(zip(mu, rng.normal(0, 2, len(mu))))
    lin = np.array([sum(c.get_atomic_fraction(el) * d[str(el)] for el in c.elements) for c in comps])
    hf = e - np.array([_total_per_atom(c.formula, 0.0, mu) for c in comps])
    data = pd.DataFrame(
        {
            "formula": [c.reduced_formula for c in comps],
            "composition": comps,
            "e_gga_ev_per_atom": e,
            "hf_gga_ev_per_atom": hf,
            "e_r2scan_ev_per_atom": e + lin,
            "hf_r2scan_ev_per_atom": hf,
        },
        index=pd.Index([f"mp-{i}" for i in range(len(comps))], name="mp_id"),
    )
    t = dec.decomposition_table(data, n_splits=2, seed=0).table
    ed = {v: t[f"decomposition_energy_{v}_ev_per_atom"] for v in dec.VARIANTS}
    assert ed["gga_shifted"].notna().all() and ed["gga"].abs().max() > 0.05
    for v in ("r2scan", "gga_shifted", "gga_shifted_r2scan_el"):
        np.testing.assert_allclose(ed[v], ed["gga"], atol=1e-6)


def test_report_on_the_synthetic_table():
    import matplotlib

    matplotlib.use("Agg")
    res = dec.decomposition_table(_synthetic_table(), n_splits=2, seed=0)
    pts = report.hull_points(res.table, "Cu-Zn")
    assert set(pts["variant"]) == {"gga", "r2scan"} and len(pts) == 2 * 5
    gga = pts[pts["variant"] == "gga"].set_index("formula")
    assert gga.loc["CuZn3", "on_hull"] and not gga.loc["Cu3Zn", "on_hull"]
    assert report.fig4_binary_hull(res.table, "Cu-Zn") is not None
    assert report.fig4_decomposition_parity(res.table) is not None
    m = report.chapter_metrics(res)
    import json

    json.dumps(m)  # JSON-able
    assert m["hull_system"] == "Cu-Zn" and m["n_stability_changes_vs_r2scan"]["gga"] == 1


@pytest.fixture(scope="module")
def rxnnet_result(data_dir):
    from uipbench.transfer.pairing import load_rxnnet_pairs

    data = load_rxnnet_pairs().paired
    return data, dec.decomposition_table(data)


def test_rxnnet_decomposition_energies_are_sane(rxnnet_result):
    data, res = rxnnet_result
    t, s = res.table, dec.summary(res)
    assert len(t) == len(data) == 974
    assert res.references["identifiable"].all()  # every element's reference follows from the table
    # the hulls reproduce the table's own formation energies (same elemental references)
    for f in ("gga", "r2scan"):
        np.testing.assert_allclose(t[f"formation_energy_{f}_ev_per_atom"], data[f"hf_{f}_ev_per_atom"], atol=1e-8)
        assert t[f"decomposition_energy_{f}_ev_per_atom"].notna().all()
        assert (t[f"e_above_hull_{f}_ev_per_atom"] >= -1e-8).all()
    assert s["n_systems"] == t["chemsys"].nunique() > 500
    # only the shifted variants skip, each with its reason
    assert set(res.skipped["variant"]) <= {"gga_shifted", "gga_shifted_r2scan_el"}
    assert res.skipped["reason"].str.contains("unseen in training folds").all()
    mae = {k: v["mae_ev_per_atom"] for k, v in s.items() if k.startswith("mae_")}
    assert 0.02 < mae["mae_gga_vs_r2scan"] < 0.3
    # consistently shifted endpoints: only the fold-to-fold noise of the held-out fits separates it from GGA
    assert mae["mae_gga_shifted_vs_gga"] < 0.05
    assert mae["mae_gga_shifted_r2scan_el_vs_r2scan"] < mae["mae_gga_vs_r2scan"]
    assert 0 < s["n_stability_changes_vs_r2scan"]["gga"] < 0.2 * len(t)
