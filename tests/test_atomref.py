"""AtomRef fitting (uipbench.transfer.atomref): exact recovery, CHGNet's convention, folds with unseen elements."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition

from uipbench.transfer import atomref

ELEMENTS = ["H", "Li", "C", "O", "Na", "Cl", "Fe", "Cu"]


def _synthetic(n: int = 60, seed: int = 1, max_atoms: int = 6):
    """Random compositions over ELEMENTS and known per-element energies (eV/atom)."""
    rng = np.random.default_rng(seed)
    mu = pd.Series(rng.uniform(-10, -1, len(ELEMENTS)), index=ELEMENTS)
    comps = []
    for _ in range(n):
        k = rng.integers(1, 4)
        els = rng.choice(ELEMENTS, size=k, replace=False)
        comps.append(Composition({e: int(rng.integers(1, max_atoms)) for e in els}))
    return comps, mu


def _intensive_energy(comps, mu):
    return np.array([sum(c.get_atomic_fraction(e) * mu[str(e)] for e in c.elements) for c in comps])


def test_intensive_fit_recovers_known_references_exactly():
    comps, mu = _synthetic()
    fit = atomref.fit_atomref(comps, _intensive_energy(comps, mu), intensive=True)
    assert fit.n_train == len(comps)
    np.testing.assert_allclose(fit.references[ELEMENTS], mu[ELEMENTS], atol=1e-10)
    # the composition-weighted reference reproduces the energies; scaled energies vanish
    np.testing.assert_allclose(fit.scaled(comps, _intensive_energy(comps, mu)), 0, atol=1e-10)


def test_extensive_fit_recovers_known_references_exactly():
    comps, mu = _synthetic(seed=2)
    totals = np.array([sum(n * mu[str(e)] for e, n in c.items()) for c in comps])
    fit = atomref.fit_atomref(comps, totals, intensive=False)
    np.testing.assert_allclose(fit.references[ELEMENTS], mu[ELEMENTS], atol=1e-9)
    np.testing.assert_allclose(fit.predict(comps), totals, atol=1e-9)


def test_intensive_fit_is_size_invariant():
    """Per-atom features: doubling a cell changes nothing (the same physics at any supercell)."""
    comps, mu = _synthetic(seed=3)
    e = _intensive_energy(comps, mu) + np.random.default_rng(0).normal(0, 0.05, len(comps))  # noisy labels
    fit1 = atomref.fit_atomref(comps, e)
    fit2 = atomref.fit_atomref([c * 2 for c in comps], e)
    np.testing.assert_allclose(fit1.references, fit2.references, atol=1e-10)


def test_matches_chgnet_atomref_fit():
    """Same numbers as CHGNet's own AtomRef.fit (pinv of X^T X) on structures with these compositions."""
    torch = pytest.importorskip("torch")
    from chgnet.model.composition_model import AtomRef
    from pymatgen.core import Lattice, Structure

    comps, mu = _synthetic(n=40, seed=4)
    e = _intensive_energy(comps, mu) + np.random.default_rng(1).normal(0, 0.02, len(comps))
    structures = []
    for c in comps:  # positions are irrelevant to a composition model
        species = [str(el) for el, n in c.items() for _ in range(int(n))]
        coords = np.random.default_rng(len(species)).random((len(species), 3))
        structures.append(Structure(Lattice.cubic(10.0), species, coords))
    ref = AtomRef(is_intensive=True)
    ref.fit(structures, e)
    from pymatgen.core import Element

    w = ref.fc.weight.detach().numpy().ravel()
    theirs = pd.Series({el: w[Element(el).Z - 1] for el in ELEMENTS})
    ours = atomref.fit_atomref(comps, e).references
    np.testing.assert_allclose(ours[ELEMENTS], theirs[ELEMENTS], atol=2e-4)  # CHGNet stores float32
    assert torch is not None


def test_unfitted_elements_are_nan_and_predictions_nan():
    comps, mu = _synthetic(seed=5)
    fit = atomref.fit_atomref(comps, _intensive_energy(comps, mu), elements=[*ELEMENTS, "U"])
    assert np.isnan(fit.references["U"]) and fit.counts["U"] == 0
    pred = fit.predict([Composition("UO2"), Composition("Li2O")])
    assert np.isnan(pred[0])
    assert pred[1] == pytest.approx((2 * mu["Li"] + mu["O"]) / 3, abs=1e-10)


def test_cross_validation_flags_elements_absent_from_a_fold():
    comps, mu = _synthetic(n=50, seed=6)
    comps = [c for c in comps if "Cu" not in c] + [Composition("CuO")]  # Cu occurs once, in the last compound
    e = _intensive_energy(comps, mu)
    cv = atomref.cross_validate_atomref(comps, e, n_splits=5, seed=0)
    pred = cv.predictions
    last = pred.iloc[-1]
    assert np.isnan(last["reference_energy"]) and last["unseen_elements"] == "Cu"
    assert cv.missing_by_fold[int(last["fold"])] == ["Cu"]
    assert cv.n_unpredictable >= 1
    assert cv.unseen_element_counts["Cu"] == 1
    ok = pred["reference_energy"].notna().to_numpy()
    # every compound whose elements were all seen is predicted exactly (noise-free labels)
    np.testing.assert_allclose(pred["reference_energy"].to_numpy()[ok], e[ok], atol=1e-9)
    assert set(pred["fold"]) == set(range(5))


def test_cross_validation_is_seeded():
    comps, mu = _synthetic(seed=7)
    e = _intensive_energy(comps, mu) + np.random.default_rng(2).normal(0, 0.1, len(comps))
    a = atomref.cross_validate_atomref(comps, e, n_splits=4, seed=3).predictions
    b = atomref.cross_validate_atomref(comps, e, n_splits=4, seed=3).predictions
    c = atomref.cross_validate_atomref(comps, e, n_splits=4, seed=4).predictions
    pd.testing.assert_frame_equal(a, b)
    assert not np.array_equal(a["fold"], c["fold"])


def test_rejects_non_finite_energies():
    comps, mu = _synthetic(n=10)
    e = _intensive_energy(comps, mu)
    e[3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        atomref.fit_atomref(comps, e)


def test_chgnet_builtin_atomrefs():
    mptrj = atomref.chgnet_atomref("MPtrj")
    r2scan = atomref.chgnet_atomref("MP-r2SCAN")
    assert len(mptrj) == len(r2scan) == 94 and mptrj.index[0] == "H" and mptrj.index[-1] == "Pu"
    assert mptrj.notna().all()
    assert mptrj["O"] == pytest.approx(-8.3861, abs=1e-4)  # value in chgnet/model/composition_model.py
    # MP-r2SCAN has no Yb, Po, At, Rn, Fr, Ra: CHGNet keeps ~1e-14 there, we report NaN
    assert sorted(r2scan.index[r2scan.isna()]) == sorted(["Yb", "Po", "At", "Rn", "Fr", "Ra"])
    with pytest.raises(ValueError):
        atomref.chgnet_atomref("MPF-unknown")


def test_r2scan_checkpoint_carries_the_mp_r2scan_atomref():
    """The shipped r2SCAN model was fine-tuned with its composition model frozen at MP-r2SCAN."""
    ckpt = atomref.chgnet_checkpoint_atomref("chgnet-r2scan")
    builtin = atomref.chgnet_atomref("MP-r2SCAN")
    pd.testing.assert_series_equal(ckpt.isna(), builtin.isna(), check_names=False)
    np.testing.assert_allclose(ckpt.dropna(), builtin.dropna(), atol=1e-6)


def test_zero_shot_energies_go_through_the_model_registry(tmp_path):
    """Single points of the zero-shot check: the registry's CHGNet (LoadedModel.energy), keyed by its weights
    checksum, read from the store on a rerun; an element outside the model's table is a failure with its reason."""
    from ase.build import bulk

    from uipbench.models import load_model
    from uipbench.store import ResultStore
    from uipbench.transfer.zero_shot import model_energies

    store = ResultStore(tmp_path / "r.sqlite")
    cells = {"Cu": bulk("Cu", "fcc", a=3.61), "Al": bulk("Al", "fcc", a=4.04)}
    first, s1 = model_energies(cells, "chgnet-0.3.0", store, progress=False)
    again, s2 = model_energies(cells, "chgnet-0.3.0", store, progress=False)
    assert s1.ok == 2 and s2.skipped == 2
    m = load_model("chgnet-0.3.0")
    for el, atoms in cells.items():
        assert first.loc[el, "energy_ev_per_atom"] == pytest.approx(m.energy(atoms) / len(atoms), abs=1e-6)
    assert -5 < first.loc["Cu", "energy_ev_per_atom"] < -3  # CHGNet predicts MP's corrected scale: Cu about -4.1
    pd.testing.assert_frame_equal(first, again)
    other, _ = model_energies(cells, "chgnet-0.2.0", store, progress=False)  # other weights: other keys
    assert sum(store.count().values()) == 4 and not np.allclose(other.energy_ev_per_atom, first.energy_ev_per_atom)
