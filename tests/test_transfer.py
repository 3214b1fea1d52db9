"""Transfer-wing helpers (uipbench.transfer: compositions, pairing, energy_shift): checksum guard, pairing,
features, corrections, statistics."""

from __future__ import annotations

import gzip
import pickle
import shutil

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition, Lattice, Structure

from uipbench import datasets
from uipbench.transfer.compositions import composition_matrix, to_composition, unseen_elements
from uipbench.transfer.energy_shift import element_importance, mp2020_corrections, regression_stats
from uipbench.transfer.pairing import load_rxnnet_pairs, pair_columns, pair_matpes

RXNNET = "rxnnet/main.pkl.gz"


class _Tripwire:
    """Unpickling this creates a marker file: proof that a file was (or was not) unpickled."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_checksum_guard_refuses_tampered_pickle_without_unpickling(tmp_path, monkeypatch):
    marker = tmp_path / "UNPICKLED"
    (tmp_path / "rxnnet").mkdir()
    with gzip.open(tmp_path / RXNNET, "wb") as f:
        pickle.dump(_Tripwire(str(marker)), f)
    monkeypatch.setenv("UIPBENCH_DATA", str(tmp_path))
    calls = []
    monkeypatch.setattr(pd, "read_pickle", lambda *a, **k: calls.append(a) or None)
    with pytest.raises(datasets.ChecksumError, match="checksum mismatch"):
        datasets.load("rxnnet-gga-r2scan", download=False)
    assert not marker.exists() and calls == []
    # the tripwire works: unpickling the same bytes does create the marker
    with gzip.open(tmp_path / RXNNET, "rb") as f:
        pickle.load(f)
    assert marker.exists()


def test_checksum_guard_refuses_a_one_byte_change(tmp_path, monkeypatch, data_dir):
    (tmp_path / "rxnnet").mkdir()
    copy = tmp_path / RXNNET
    shutil.copyfile(data_dir / RXNNET, copy)
    raw = bytearray(copy.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    copy.write_bytes(bytes(raw))
    monkeypatch.setenv("UIPBENCH_DATA", str(tmp_path))
    monkeypatch.setattr(pd, "read_pickle", lambda *a, **k: pytest.fail("unpickled an unverified file"))
    with pytest.raises(datasets.ChecksumError):
        datasets.load("rxnnet-gga-r2scan", download=False)


def test_to_composition_rebuilds_stale_pickled_objects():
    stale = Composition.__new__(Composition)  # what unpickling an older pymatgen's Composition gives
    stale.__dict__.update(
        {
            "allow_negative": False,
            "_natoms": 8.0,
            "_data": {Composition("N").elements[0]: 2.0, Composition("Ni").elements[0]: 6.0},
        }
    )
    comp = to_composition(stale)
    assert comp.reduced_formula == "Ni3N" and comp.num_atoms == 8
    assert to_composition({"Fe": 2, "O": 3}) == Composition("Fe2O3")


def test_composition_matrix_fractions_and_counts():
    comps = ["Fe2O3", "NaCl", "H2O"]
    X, els = composition_matrix(comps)
    assert els == ["H", "O", "Na", "Cl", "Fe"]  # atomic-number order
    np.testing.assert_allclose(X.sum(1), 1.0)
    assert X[0, els.index("O")] == pytest.approx(0.6)
    Xc, _ = composition_matrix(comps, els, kind="count")
    assert Xc[0].tolist() == [0, 3, 0, 0, 2]
    with pytest.raises(KeyError, match="Cu"):
        composition_matrix(["CuO"], els)
    assert unseen_elements(["CuO", "FeO"], els) == [("Cu",), ()]


def test_pair_columns_counts_every_dropped_row():
    df = pd.DataFrame({"a": [1.0, np.nan, 3.0, np.nan], "b": [2.0, 5.0, np.nan, np.nan]}, index=list("wxyz"))
    p = pair_columns(df, "a", "b")
    assert list(p.paired.index) == ["w"]
    assert dict(zip(p.dropped.index, p.dropped["reason"])) == {"x": "no a", "y": "no b", "z": "no a and no b"}
    assert p.counts["paired"] + p.counts["dropped"] == len(df)


def _doc(mid, structure, e):
    return {"matpes_id": mid, "structure": structure, "energy_per_atom": e}


def test_pair_matpes_requires_identical_structures():
    cu = Structure(Lattice.cubic(3.6), ["Cu"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    strained = cu.copy()
    strained.apply_strain(0.01)
    moved = cu.copy()
    moved.translate_sites([1], [0.01, 0, 0])
    pbe = {
        "Cu": _doc("mp-30", cu, -3.7),
        "Ag": _doc("mp-124", cu, -2.8),
        "Au": _doc("mp-81", cu, -3.2),
        "Al": _doc("mp-134", cu, -3.7),
        "Ni": _doc("mp-23", cu, -5.0),
    }
    r2 = {
        "Cu": _doc("mp-30", cu, -10.8),
        "Ag": _doc("mp-999", cu, -21.0),
        "Au": _doc("mp-81", strained, -50.0),
        "Al": _doc("mp-134", moved, -6.7),
    }
    # a whole-lattice-vector shift is the same crystal
    cu_img = cu.copy()
    cu_img.translate_sites([0], [1.0, 0, 0], to_unit_cell=False)
    r2["Ni"] = _doc("mp-23", cu_img, -12.0)
    p = pair_matpes(pbe, r2)
    assert sorted(p.paired.index) == ["Cu", "Ni"]
    assert p.paired.loc["Cu", "shift_ev_per_atom"] == pytest.approx(-10.8 - (-3.7))
    reasons = dict(zip(p.dropped["element"], p.dropped["reason"]))
    assert reasons == {"Ag": "different matpes_id", "Au": "different lattice", "Al": "different atomic positions"}


def test_pair_matpes_on_the_real_references(data_dir):
    p = pair_matpes(datasets.load("matpes-pbe-element-refs"), datasets.load("matpes-r2scan-element-refs"))
    assert len(p.paired) == 63 and len(p.paired) + len(p.dropped) == 89  # as documented with the data
    assert (p.paired["shift_ev_per_atom"] < 0).all()  # r2SCAN total energies are lower on the VASP scale


def test_regression_stats_exact_line():
    x = np.linspace(-10, -2, 20)
    s = regression_stats(x, 2 * x + 1)
    assert s["pearson_r"] == pytest.approx(1.0) and s["slope"] == pytest.approx(2.0)
    assert s["intercept"] == pytest.approx(1.0) and s["n"] == 20
    s = regression_stats(np.r_[x, np.nan], np.r_[x + 0.5, 1.0])
    assert s["n"] == 20 and s["mae"] == pytest.approx(0.5) and s["mean_difference"] == pytest.approx(0.5)


def test_mp2020_reconstruction_known_cases():
    from pymatgen.analysis.compatibility import MaterialsProject2020Compatibility

    c = MaterialsProject2020Compatibility(check_potcar=False)
    comp, u = c.comp_correction, c.u_corrections
    out = mp2020_corrections(
        ["MgO", "Fe2O3", "NaCl", "Na2SO4", "ZnS", "Na2O2", "Cu"],
        ["oxide", "oxide", "chloride", "sulfate oxide", "sulfide", "peroxide", ""],
    )
    corr = out["correction_ev_per_atom"].to_numpy()
    assert corr[0] == pytest.approx(comp["oxide"] / 2)
    assert corr[1] == pytest.approx((3 * comp["oxide"] + 2 * u["O"]["Fe"]) / 5)  # anion + GGA/GGA+U mixing
    assert out["u_elements"][1] == "Fe"
    assert corr[2] == pytest.approx(comp["Cl"] / 2)
    assert corr[3] == pytest.approx(4 * comp["oxide"] / 7)  # sulfate: no sulfide correction on S
    assert corr[4] == pytest.approx(comp["S"] / 2)
    assert corr[5] == pytest.approx(2 * comp["peroxide"] / 4)
    assert corr[6] == 0.0  # elements are never corrected
    assert (out["error"] == "").all()


def test_rxnnet_pairs_and_formation_energy_convention(data_dir):
    """974 compounds carry both functionals; E - H_f is exactly linear in composition (fixed elemental refs)."""
    p = load_rxnnet_pairs()
    assert p.counts == {"paired": 974, "dropped": 581, "dropped:no e_r2scan_ev_per_atom": 581}
    d = p.paired
    X, _ = composition_matrix(list(d["composition"]))
    for e, h in [("e_gga_ev_per_atom", "hf_gga_ev_per_atom"), ("e_r2scan_ev_per_atom", "hf_r2scan_ev_per_atom")]:
        y = (d[e] - d[h]).to_numpy()
        resid = y - X @ np.linalg.lstsq(X, y, rcond=None)[0]
        assert np.abs(resid).max() < 1e-9


def test_element_importance_finds_the_driving_element():
    rng = np.random.default_rng(0)
    comps = []
    for _ in range(150):
        els = rng.choice(["Li", "Na", "O", "S", "Cl", "Fe"], size=2, replace=False)
        comps.append(Composition({e: int(rng.integers(1, 4)) for e in els}))
    X, els = composition_matrix(comps)
    y = -0.5 * X[:, els.index("O")] + rng.normal(0, 0.005, len(comps))  # only O matters
    table, metrics = element_importance(X, y, els, n_splits=3, seed=0, n_estimators=50, n_repeats=2)
    table = table.set_index("element")
    assert table["permutation_importance_ev2"].idxmax() == "O"
    assert table.loc["O", "linear_coefficient_ev_per_atom"] == pytest.approx(-0.5, abs=0.02)
    assert metrics["heldout_r2_linear"] > 0.95 and metrics["heldout_r2_random_forest"] > 0.8
