"""REMatch kernels, descriptors and kPCA of the surfaces map (notebooks/02_kpca_map).

Small structures built with ASE (no dataset needed): fcc Cu/Ag/Au/Al, bcc Li, hcp Mg bulks and slabs.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, fcc100, fcc111, hcp0001

from uipbench.store import ResultStore
from uipbench.surfaces import descriptors as D
from uipbench.surfaces.bootstrap import spearman_bootstrap
from uipbench.surfaces.bulk_references import oriented_bulk_cell
from uipbench.surfaces.kpca import kernel_pca
from uipbench.surfaces.lattices import classify_lattice, standard_primitive
from uipbench.surfaces.out_of_domain import ood_correlations, verdict
from uipbench.surfaces.rematch import rematch_kernel


@pytest.fixture(scope="module")
def structures():
    s = {
        "Cu-bulk": bulk("Cu", "fcc", a=3.61),
        "Cu111": fcc111("Cu", size=(1, 1, 4), vacuum=6.0),
        "Cu100": fcc100("Cu", size=(1, 1, 4), vacuum=6.0),
        "Ag111": fcc111("Ag", size=(1, 1, 4), vacuum=6.0),
        "Al-bulk": bulk("Al", "fcc", a=4.04, cubic=True),
        "Li-bulk": bulk("Li", "bcc", a=3.44, cubic=True),
        "Mg0001": hcp0001("Mg", size=(1, 1, 4), vacuum=6.0),
        "Au-rattled": bulk("Au", "fcc", a=4.08, cubic=True).repeat((2, 1, 1)),
    }
    s["Au-rattled"].rattle(0.05, seed=1)
    for a in s.values():
        a.pbc = True
    return s


@pytest.fixture()
def store(tmp_path):
    return ResultStore(tmp_path / "results.sqlite")


def _kernel(structures, name, store, tmp_path, **kw):
    keys, failures, _ = D.compute_descriptors(name, structures, store, progress=False)
    assert not failures
    return rematch_kernel(list(keys.values()), store, progress=False, **kw)


@pytest.mark.parametrize("name", ["soap", "soap-mu2"])
def test_kernel_symmetric_unit_diagonal_psd(structures, store, tmp_path, name):
    k = _kernel(structures, name, store, tmp_path, block_size=3).matrix
    assert k.shape == (len(structures),) * 2
    np.testing.assert_allclose(k, k.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(k), 1.0, atol=1e-12)
    assert np.all(k <= 1.0 + 1e-9) and np.all(k >= -1e-12)
    # REMatch is not PSD by construction; at alpha = 0.1 it is within numerical noise
    assert np.linalg.eigvalsh(k).min() > -1e-4


def test_block_assembly_equals_dscribe(structures, tmp_path):
    """Many small blocks == one block == dscribe's own REMatchKernel.create(normalize_kernel=True)."""
    from dscribe.kernels import REMatchKernel
    from sklearn.preprocessing import normalize

    st = ResultStore(tmp_path / "r.sqlite")
    keys, _, _ = D.compute_descriptors("soap-mu2", structures, st, progress=False)
    keys = list(keys.values())
    blocks = rematch_kernel(keys, st, block_size=3, progress=False)
    one = rematch_kernel(keys, st, block_size=100, progress=False)
    ref = REMatchKernel(metric="linear", alpha=0.1, threshold=1e-6, normalize_kernel=True).create(
        [normalize(x) for x in D.load_features(st, keys)]
    )
    assert blocks.n_blocks == 6 and one.n_blocks == 1
    np.testing.assert_allclose(blocks.matrix, one.matrix, atol=1e-12)
    np.testing.assert_allclose(one.matrix, ref, atol=1e-10)


@pytest.mark.slow
def test_process_pool_blocks_equal_serial(structures, tmp_path):
    """The same blocks on a 2-process pool give the serial matrix (spawning the workers takes most of the time)."""
    st = ResultStore(tmp_path / "r.sqlite")
    keys, _, _ = D.compute_descriptors("soap-mu2", structures, st, progress=False)
    keys = list(keys.values())
    par = rematch_kernel(keys, st, block_size=3, backend="process", n_workers=2, progress=False)
    ser = rematch_kernel(keys, st, block_size=100, backend="serial", progress=False)
    assert par.summary.ok == 6
    np.testing.assert_allclose(par.matrix, ser.matrix, atol=1e-12)


def test_rectangular_kernel_matches_square(structures, store, tmp_path):
    keys, _, _ = D.compute_descriptors("soap-mu2", structures, store, progress=False)
    keys = list(keys.values())
    full = rematch_kernel(keys, store, progress=False).matrix
    rect = rematch_kernel(keys[:3], store, col_keys=keys[3:], block_size=2, progress=False).matrix
    np.testing.assert_allclose(rect, full[:3, 3:], atol=1e-10)


def test_second_call_assembled_from_the_store(structures, store, tmp_path):
    first = _kernel(structures, "soap-mu2", store, tmp_path)
    second = _kernel(structures, "soap-mu2", store, tmp_path)
    assert not first.from_store and second.from_store
    assert second.summary.ok == 0 and second.compute_seconds == pytest.approx(first.compute_seconds)
    np.testing.assert_array_equal(first.matrix, second.matrix)


def test_species_resolved_soap_is_element_blind_mu2_within_an_element(structures, store, tmp_path):
    """For one-element structures the species-resolved SOAP kernel is 0 across elements and equals the
    element-agnostic (mu2) kernel within an element."""
    ks = _kernel(structures, "soap", store, tmp_path).matrix
    km = _kernel(structures, "soap-mu2", store, tmp_path).matrix
    el = [a.get_chemical_symbols()[0] for a in structures.values()]
    same = np.equal.outer(el, el)
    np.testing.assert_allclose(ks[~same], 0.0, atol=1e-12)
    np.testing.assert_allclose(ks[same], km[same], atol=1e-8)


def test_supercell_has_unit_similarity(store, tmp_path):
    """A supercell has the same local environments: REMatch similarity 1 (why primitive cells stand in for OUCs)."""
    cu = bulk("Cu", "fcc", a=3.61)
    sup = cu.repeat((2, 2, 3))
    k = _kernel({"p": cu, "s": sup}, "soap-mu2", store, tmp_path).matrix
    assert k[0, 1] == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("name", ["soap", "soap-mu2", "chgnet-0.3.0"])
def test_descriptor_invariant_to_permutation_and_translation(structures, name):
    a = structures["Cu111"].copy()
    a.rattle(0.02, seed=3)
    x = D.compute_descriptor(a, name)
    perm = np.random.default_rng(0).permutation(len(a))
    xp = D.compute_descriptor(a[perm], name)
    np.testing.assert_allclose(xp, x[perm], atol=1e-6 * max(1.0, np.abs(x).max()))
    b = a.copy()
    b.translate([0.37, -1.21, 2.3])
    b.wrap()
    xt = D.compute_descriptor(b, name)
    np.testing.assert_allclose(xt, x, atol=1e-5 * max(1.0, np.abs(x).max()))


def test_descriptor_cache_roundtrip_and_failure_recorded(structures, store):
    keys, failures, _summary = D.compute_descriptors("soap", {"Cu111": structures["Cu111"]}, store, progress=False)
    x = D.load_features(store, [keys["Cu111"]])[0]
    np.testing.assert_allclose(x, D.compute_descriptor(structures["Cu111"], "soap"))
    again = D.compute_descriptors("soap", {"Cu111": structures["Cu111"]}, store, progress=False)[2]
    assert again.skipped == 1 and again.ok == 0
    fe = bulk("Fe", "bcc", a=2.87)  # not one of the 42 elements of the SOAP species list: recorded, not raised
    _, failures, _ = D.compute_descriptors("soap", {"Fe": fe}, store, progress=False)
    assert "not in the SOAP species list" in failures["Fe"]


@pytest.mark.parametrize(
    "atoms, lattice",
    [
        (bulk("Cu", "fcc", a=3.61, cubic=True), "FCC"),
        (bulk("Li", "bcc", a=3.44, cubic=True), "BCC"),
        (bulk("Mg", "hcp", a=3.21, c=5.21), "HCP"),
        (bulk("Sn", "diamond", a=6.49), "other"),
    ],
)
def test_lattice_classification(atoms, lattice):
    assert classify_lattice(atoms) == lattice


def test_lattice_of_a_slab_bulk_cell():
    slab = fcc111("Pt", size=(1, 1, 6), vacuum=7.0)
    slab.pbc = True
    ouc, why = oriented_bulk_cell(slab)
    assert ouc is not None, why
    assert classify_lattice(ouc) == "FCC"
    assert len(standard_primitive(ouc)) == 1


def test_kernel_pca_explained_variance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3)) * [3.0, 1.0, 0.1]
    k = x @ x.T  # linear kernel: kPCA = PCA, explained variance = PCA's
    res = kernel_pca(k)
    xc = x - x.mean(axis=0)
    pca_var = np.sort(np.linalg.eigvalsh(xc.T @ xc))[::-1]
    np.testing.assert_allclose(res.explained_variance_ratio, pca_var[:2] / pca_var.sum(), rtol=1e-8)
    np.testing.assert_allclose(res.coords.mean(axis=0), 0.0, atol=1e-10)


def test_spearman_bootstrap():
    x = np.arange(50.0)
    r = spearman_bootstrap(x, x**3, n_boot=200, seed=1)
    assert r["rho"] == pytest.approx(1.0) and r["ci_low"] == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=200), rng.normal(size=200)
    r1 = spearman_bootstrap(a, b, n_boot=500, seed=2)
    r2 = spearman_bootstrap(a, b, n_boot=500, seed=2)
    assert r1 == r2  # seeded
    assert r1["ci_low"] < 0 < r1["ci_high"]  # independent samples: interval contains 0
    assert spearman_bootstrap([1, 2, np.nan], [1, 2, 3])["n"] == 2


def test_within_element_correlation_removes_element_offsets():
    """Distance and error both set by the element only: strong overall correlation, none within elements."""
    import pandas as pd

    rng = np.random.default_rng(4)
    el = np.repeat(["A", "B", "C", "D"], 40)
    level = {"A": 0.0, "B": 1.0, "C": 2.0, "D": 3.0}
    base = np.array([level[e] for e in el])
    t = pd.DataFrame(
        {
            "element": el,
            "dist_own_bulk": base + 0.1 * rng.normal(size=160),
            "dist_bulk_set": base + 0.1 * rng.normal(size=160),
            "kpc1": rng.normal(size=160),
            "kpc2": rng.normal(size=160),
            "abs_error_j_per_m2": base + 0.1 * rng.normal(size=160),
        }
    )
    c = ood_correlations(t, n_boot=300).set_index("variable")
    assert c.loc["dist_bulk_set", "ci_low"] > 0.5
    w = c.loc["dist_bulk_set|within element"]
    assert w["ci_low"] < 0 < w["ci_high"]
    assert verdict(c.reset_index()).startswith("supported")
    assert "within elements: not supported" in verdict(c.reset_index())
