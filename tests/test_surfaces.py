"""Surfaces: Miller-id parsing, oriented bulk cells (OUC) derived from slabs, MP matching, surface energies.

The OUC derivation is validated on slabs that pymatgen's SlabGenerator cuts from known bulks: the derived cell
must have the bulk's energy per atom (ASE's EMT, deterministic and cheap; elements EMT lacks are checked
geometrically: same volume per atom and the same neighbour shells as the bulk).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from pymatgen.core.surface import SlabGenerator
from pymatgen.io.ase import AseAtomsAdaptor

from uipbench.miller import parse_miller, parse_surface_id
from uipbench.surfaces.bulk_references import match_mp_bulk, oriented_bulk_cell
from uipbench.surfaces.slabs import read_slab, slab_area, surface_energy_j_per_m2
from uipbench.units import EV_PER_A2_TO_J_PER_M2

# ------------------------------------------------------------------------------------------------ Miller ids


@pytest.mark.parametrize(
    "text, hkl",
    [
        ("111", (1, 1, 1)),
        ("210", (2, 1, 0)),
        ("0001", (0, 0, 0, 1)),
        ("11-20", (1, 1, -2, 0)),
        ("2-1-12", (2, -1, -1, 2)),
        ("10-11", (1, 0, -1, 1)),
        ("22-41", (2, 2, -4, 1)),
        ("-111", (-1, 1, 1)),
    ],
)
def test_parse_miller(text, hkl):
    assert parse_miller(text) == hkl


@pytest.mark.parametrize("bad", ["11", "12345", "1-1-12", "000", "1a1", "21-30x", "0000"])
def test_parse_miller_rejects(bad):
    with pytest.raises(ValueError):
        parse_miller(bad)


def test_parse_surface_id_four_index_and_three_index():
    s = parse_surface_id("100Ag11-20")
    assert (s.index, s.element, s.miller, s.hkl, s.hkl3) == (100, "Ag", "11-20", (1, 1, -2, 0), (1, 1, 0))
    s = parse_surface_id("108Bi2-1-12")
    assert (s.element, s.hkl, s.hkl3) == ("Bi", (2, -1, -1, 2), (2, -1, 2))
    s = parse_surface_id("4Li111")
    assert (s.index, s.element, s.hkl3) == (4, "Li", (1, 1, 1))
    with pytest.raises(ValueError):
        parse_surface_id("Ag111")


# ------------------------------------------------------------------------------------------------ OUC from slabs


def _triclinic_cu() -> Atoms:
    """A made-up low-symmetry (P-1) two-atom 'polymorph': no symmetry for the algorithm to lean on."""
    from ase.geometry import cellpar_to_cell

    cell = cellpar_to_cell([2.9, 3.3, 4.1, 82.0, 97.0, 106.0])
    return Atoms("Cu2", scaled_positions=[[0.0, 0.0, 0.0], [0.43, 0.61, 0.47]], cell=cell, pbc=True)


# Cu in several lattices: EMT gives a well-defined energy for any of them, so the OUC energy test is exact
BULKS = {
    "fcc": lambda: bulk("Cu", "fcc", a=3.61, cubic=True),
    "bcc": lambda: bulk("Cu", "bcc", a=2.87, cubic=True),
    "hcp": lambda: bulk("Cu", "hcp", a=2.55, c=4.16),
    "diamond": lambda: bulk("Cu", "diamond", a=5.2, cubic=True),
    "triclinic": _triclinic_cu,
}
MILLERS = {
    "fcc": [(1, 1, 1), (1, 0, 0), (1, 1, 0), (2, 1, 1), (3, 2, 1)],
    "bcc": [(1, 1, 0), (1, 0, 0), (2, 1, 1), (3, 1, 0)],
    "hcp": [(0, 0, 1), (1, 0, 0), (1, 0, 1), (1, 1, 2)],
    "diamond": [(1, 1, 1), (1, 0, 0), (1, 1, 0)],
    "triclinic": [(1, 0, 0), (0, 1, 1), (1, -1, 2)],
}
CASES = [(k, m) for k, ms in MILLERS.items() for m in ms]


def _slab(atoms: Atoms, miller, min_slab=10.0, min_vac=10.0) -> Atoms:
    gen = SlabGenerator(
        AseAtomsAdaptor.get_structure(atoms),
        miller,
        min_slab_size=min_slab,
        min_vacuum_size=min_vac,
        center_slab=True,
        lll_reduce=False,
    )
    slab = gen.get_slabs()[0]
    out = AseAtomsAdaptor.get_atoms(slab)
    out.pbc = True
    return out


def _emt_eps(atoms: Atoms) -> float:
    a = atoms.copy()
    a.calc = EMT()
    return a.get_potential_energy() / len(a)


@pytest.mark.parametrize("kind, miller", CASES, ids=[f"{k}-{''.join(map(str, m))}" for k, m in CASES])
def test_ouc_has_bulk_energy_per_atom(kind, miller):
    b = BULKS[kind]()
    slab = _slab(b, miller)
    ouc, why = oriented_bulk_cell(slab)
    assert ouc is not None, why
    # the OUC keeps the slab's in-plane lattice (Sun & Ceder convention)
    assert np.allclose(ouc.cell[0], slab.cell[0]) and np.allclose(ouc.cell[1], slab.cell[1])
    assert ouc.get_volume() / len(ouc) == pytest.approx(b.get_volume() / len(b), rel=1e-6)
    assert abs(_emt_eps(ouc) - _emt_eps(b)) < 1e-3  # 1 meV/atom


def test_ouc_survives_wrapping_and_surface_relaxation():
    """Atoms wrapped across the cell boundary along c and displaced outer layers do not change the OUC."""
    b = BULKS["fcc"]()
    slab = _slab(b, (2, 1, 1), min_slab=12)
    rng = np.random.default_rng(0)
    h = slab.positions @ (np.cross(slab.cell[0], slab.cell[1]) / np.linalg.norm(np.cross(slab.cell[0], slab.cell[1])))
    outer = (h < h.min() + 1.0) | (h > h.max() - 1.0)
    slab.positions[outer] += rng.normal(scale=0.08, size=(outer.sum(), 3))  # "relaxed" surface layers
    slab.positions += 0.6 * slab.cell[2]  # push the slab across the periodic boundary along c
    slab.wrap()
    ouc, why = oriented_bulk_cell(slab)
    assert ouc is not None, why
    assert abs(_emt_eps(ouc) - _emt_eps(b)) < 1e-3


def _shells(atoms: Atoms, rmax: float = 4.2) -> np.ndarray:
    """Sorted neighbour distances up to ``rmax`` of every atom, as one sorted multiset per atom."""
    from ase.neighborlist import neighbor_list

    i, d = neighbor_list("id", atoms, rmax)
    return np.sort(np.concatenate([np.sort(d[i == k]) for k in range(len(atoms))]).reshape(len(atoms), -1), axis=0)


@pytest.mark.parametrize(
    "name, maker, miller",
    [
        ("Fe-bcc", lambda: bulk("Fe", "bcc", a=2.83, cubic=True), (2, 1, 0)),
        ("W-bcc", lambda: bulk("W", "bcc", a=3.17, cubic=True), (1, 1, 0)),
        ("Mg-hcp", lambda: bulk("Mg", "hcp", a=3.19, c=5.18), (1, 0, 1)),
        ("Ti-hcp", lambda: bulk("Ti", "hcp", a=2.94, c=4.64), (1, 1, 0)),
        ("Si-diamond", lambda: bulk("Si", "diamond", a=5.47, cubic=True), (1, 1, 1)),
    ],
)
def test_ouc_geometry_matches_bulk(name, maker, miller):
    """Elements EMT lacks: same density and the same neighbour distances (coordination shells) as the bulk."""
    b = maker()
    ouc, why = oriented_bulk_cell(_slab(b, miller))
    assert ouc is not None, why
    assert ouc.get_volume() / len(ouc) == pytest.approx(b.get_volume() / len(b), rel=1e-6)
    shells_b, shells_o = _shells(b), _shells(ouc)
    # every OUC atom sees the bulk's neighbour shells: compare the per-atom distance lists
    assert shells_o.shape[1] == shells_b.shape[1]
    assert np.allclose(shells_o[0], shells_b[0], atol=1e-4)
    assert np.allclose(shells_o[-1], shells_b[-1], atol=1e-4)


def test_ouc_failure_reasons():
    ouc, why = oriented_bulk_cell(bulk("Cu", "fcc", a=3.61, cubic=True))  # a bulk, no vacuum
    assert ouc is None and "no vacuum" in why
    ouc, why = oriented_bulk_cell(Atoms("Cu", cell=[3, 3, 20], pbc=True))
    assert ouc is None and "1 atom" in why


# ------------------------------------------------------------------------------------------------ energies


def test_surface_energy_inverts_reconstruction():
    """E_slab = 2 A gamma + N eps  <=>  gamma = (E_slab - N eps) / 2A; EMT Cu(111) gamma is positive and ~1 J/m^2."""
    area, n, eps, gamma_ev_per_a2 = 12.3, 18, -4.1, 0.085
    e = 2 * area * gamma_ev_per_a2 + n * eps
    assert surface_energy_j_per_m2(e, n, eps, area) == pytest.approx(gamma_ev_per_a2 * 16.02176634, rel=1e-12)
    b = bulk("Cu", "fcc", a=3.61, cubic=True)
    slab = _slab(b, (1, 1, 1))
    s = slab.copy()
    s.calc = EMT()
    g = surface_energy_j_per_m2(s.get_potential_energy(), len(s), _emt_eps(b), slab_area(s))
    assert 0.3 < g < 2.0


def test_unit_conversions_are_codata():
    """1 eV/Å² = 16.02176634 J/m² and 1 eV/Å³ = 160.2176634 GPa (exact since the 2019 SI redefinition of e)."""
    from uipbench.units import EV_PER_A3_TO_GPA

    assert EV_PER_A2_TO_J_PER_M2 == 16.02176634  # the very double the committed tables were computed with
    assert pytest.approx(160.2176634, rel=1e-15) == EV_PER_A3_TO_GPA


def test_dft_and_models_share_one_surface_energy():
    """The DFT generator's gamma is the same function as the model protocols' (one formula, one constant)."""
    from uipbench.dft import surfaces as dft_surfaces

    assert dft_surfaces.gamma_j_per_m2 is surface_energy_j_per_m2
    assert dft_surfaces.EV_PER_A2_TO_J_PER_M2 is EV_PER_A2_TO_J_PER_M2


# ------------------------------------------------------------------------------------------------ real data

HAS_DATA = os.environ.get("UIPBENCH_DATA") is not None and (
    os.path.exists(os.path.join(os.environ.get("UIPBENCH_DATA", ""), "se-cgcnn"))
)


@pytest.mark.skipif(not HAS_DATA, reason="UIPBENCH_DATA with the surface data set not available")
def test_real_slabs_ouc_and_mp_match():
    from uipbench import datasets

    table = datasets.load("mp-surfaces").set_index("id")
    refs = datasets.load("mp-pbe-element-refs")
    for sid in ["4Li111", "100Ag11-20", "87Pt322"]:
        slab = read_slab(table.loc[sid, "cif_path"])
        ouc, why = oriented_bulk_cell(slab)
        assert ouc is not None, (sid, why)
        m = match_mp_bulk(ouc, refs[table.loc[sid, "element"]])
        assert m["matched"], (sid, m)
        assert abs(m["volume_ratio"] - 1) < 0.04
        assert -10 < m["eps_dft_ev_per_atom"] < -1


def test_slab_sanity_refuses_truncated_garbage_and_overlapping_cifs(tmp_path, data_dir):
    from uipbench.surfaces.slabs import SlabSanityError, check_slab, read_checked_slab, read_slab

    src = data_dir / "se-cgcnn" / "surface_property2" / "100Ag11-20.cif"
    lines = src.read_text().splitlines(keepends=True)
    good = read_slab(src)
    check_slab(good, src, "Ag")  # the real file passes
    cut = tmp_path / "cut.cif"
    cut.write_text("".join(lines[:-4]))  # cut at a line boundary: still parses, 4 atoms short
    with pytest.raises(SlabSanityError, match="declares"):
        check_slab(read_slab(cut), cut, "Ag")
    with pytest.raises(SlabSanityError, match="expected only Cu"):
        check_slab(good, src, "Cu")
    crowded = good.copy()
    crowded.positions[1] = crowded.positions[0] + [0.5, 0, 0]
    with pytest.raises(SlabSanityError, match="apart"):
        check_slab(crowded)
    filled = good.copy()
    filled.set_cell(filled.cell[:] * [1, 1, 0.45], scale_atoms=False)  # no vacuum left
    with pytest.raises(SlabSanityError):
        check_slab(filled)
    garbage = tmp_path / "garbage.cif"
    garbage.write_text("data_x\n_cell_length_a 3\nloop_\n_atom_site_label\nnonsense\n")
    for path, why in ((src, ""), (cut, "declares"), (garbage, "CIF")):
        atoms, error = read_checked_slab(path, "Ag")
        assert (atoms is None) == bool(why) and why in error and (error or atoms is not None)  # always a reason


def test_all_801_mp_slabs_pass_the_sanity_checks(data_dir):
    from uipbench.surfaces.slabs import load_slabs

    t = load_slabs()
    assert len(t) == 801 and (t["parse_error"] == "").all(), t.loc[t["parse_error"] != "", "parse_error"].tolist()


def test_partial_correlation_removes_a_shared_dependence_on_gamma():
    from uipbench.surfaces import claims

    rng = np.random.default_rng(0)
    gamma = rng.uniform(0.5, 2.5, 400)
    energy = -2.0 * gamma + 0.05 * rng.normal(size=400)  # the energy tracks γ ...
    error = -0.2 * gamma + 0.02 * rng.normal(size=400)  # ... and so does the error, independently otherwise
    raw = claims.bootstrap_correlation(energy, error, None, n_boot=300)
    part = claims.bootstrap_correlation(energy, error, gamma, n_boot=300)
    assert raw["r"] > 0.8 and raw["ci_low"] > 0  # a strong raw correlation ...
    assert abs(part["r"]) < 0.15 and part["ci_low"] < 0 < part["ci_high"]  # ... that γ explains
    assert claims.claim_verdict(raw, part)["verdict"] == "explained by γ"
    shared = rng.normal(size=400)  # now a real link beyond γ
    part2 = claims.bootstrap_correlation(energy + 0.2 * shared, error + 0.05 * shared, gamma, "spearman", 300)
    assert part2["r"] > 0.5 and claims.claim_verdict(raw, part2)["verdict"] == "survives"
    # exact: with no control the partial equals Pearson, with ranks Spearman
    assert np.isclose(claims.partial_correlation(energy, error), np.corrcoef(energy, error)[0, 1])
    from scipy import stats

    assert np.isclose(claims.partial_correlation(energy, error, method="spearman"),
                      stats.spearmanr(energy, error).statistic)  # fmt: skip


def test_functional_shift_ratio_of_two_models_on_the_same_slabs():
    from uipbench.surfaces import functional_shift as FS

    rows = []
    for i, (el, g) in enumerate([("Cu", 1.0), ("Cu", 1.4), ("Ag", 0.8), ("Ag", 0.02)]):
        base = {"id": f"s{i}", "element": el, "miller": "111", "protocol": "static", "status": "ok",
                "gamma_dft_j_per_m2": g * 1.2}  # fmt: skip
        f = 1.1 if el == "Cu" else 1.3
        rows += [{**base, "model": "tensornet", "gamma_model_j_per_m2": g},
                 {**base, "model": "tensornet-r2scan", "gamma_model_j_per_m2": g * f}]  # fmt: skip
    t = FS.shift_table(pd.DataFrame(rows))
    assert len(t) == 4 and np.allclose(t["ratio_r2scan_over_pbe"], [1.1, 1.1, 1.3, 1.3])
    e = FS.per_element(t, n_boot=50).set_index("element")
    assert e.loc["Cu", "median_ratio"] == pytest.approx(1.1) and e.loc["Ag", "n"] == 1  # near-zero γ left out
    assert e.loc["all", "n"] == 3
