"""Tests of the GPAW reference generator (uipbench.dft).

Structure generation, slab geometry and the γ formula run everywhere. The DFT tests need GPAW (optional extra,
``scripts/install_gpaw.sh``) and skip with the reason otherwise; they use CHEAP_SETTINGS (not converged, seconds
per calculation) because they check consistency (forces = -dE/dx, resume, export), not physical accuracy.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from uipbench import dft, paths
from uipbench.dft.calc import KIND_SLAB, compute, make_spec
from uipbench.dft.pairs import (
    _radius,
    build_prototype,
    pair_convergence_table,
    pair_convergence_tasks,
    pair_structures,
    pair_tasks,
)
from uipbench.dft.running import STORE_FILE
from uipbench.dft.settings import initial_magmoms, kpt_mesh
from uipbench.dft.surface_convergence import convergence_a0, convergence_elements, convergence_tasks
from uipbench.dft.surfaces import (
    EV_PER_A2_TO_J_PER_M2,
    _reduce_2d,
    eos_results,
    gamma_j_per_m2,
    surface_specs,
    surface_table,
    surface_tasks,
)
from uipbench.store import ResultStore

GPAW_OK, GPAW_WHY = dft.gpaw_available()
needs_gpaw = pytest.mark.skipif(not GPAW_OK, reason=GPAW_WHY or "GPAW missing")
gpaw_mark = pytest.mark.gpaw


# ---------------------------------------------------------------------------------------------------------------
# structure generation (no GPAW needed)


def test_pair_structures_deterministic_and_seeded():
    a, _ = pair_structures(["Cu", "Na", "Cl"], ["ref", "rocksalt"], n_per_prototype=2, seed=7)
    b, _ = pair_structures(["Cu", "Na", "Cl"], ["ref", "rocksalt"], n_per_prototype=2, seed=7)
    c, _ = pair_structures(["Cu", "Na", "Cl"], ["ref", "rocksalt"], n_per_prototype=2, seed=8)
    assert [s.id for s in a] == [s.id for s in b]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.atoms.positions, y.atoms.positions)
        np.testing.assert_array_equal(x.atoms.cell[:], y.atoms.cell[:])
    assert not np.allclose(a[0].atoms.cell[:], c[0].atoms.cell[:])
    # each structure has its own random stream: adding elements/prototypes leaves existing structures unchanged
    d, _ = pair_structures(["Cu", "Na", "Cl", "Al", "Mg", "O"], ["ref", "rocksalt", "fcc"], 2, seed=7)
    by_id = {s.id: s for s in d}
    for s in a:
        np.testing.assert_array_equal(s.atoms.positions, by_id[s.id].atoms.positions)


def test_pair_structures_strain_rattle_bounds_and_skips():
    structs, skipped = pair_structures(["Cu", "Na", "O", "Mg"], ["ref", "rocksalt", "fluorite"], 4, seed=0)
    assert "O-ref" in skipped and "no simple reference" in skipped["O-ref"]  # recorded, not silently dropped
    assert {s.prototype for s in structs} == {"ref", "rocksalt"}  # no default fluorite among Cu, Na, O, Mg
    for s in structs:
        eps = np.array(s.atoms.info["strain_voigt"])
        assert np.all(np.abs(eps) <= 0.05 + 1e-12)
        sigma = s.atoms.info["rattle_sigma_a"]
        assert sigma == 0.0 if len(s.atoms) == 1 else 0.02 <= sigma <= 0.1
        assert 1 <= len(s.atoms) <= 8
    # breadth first: every composition's sample 0 before any sample 1; within a sample index, cheapest first
    order = [(s.index, len(s.atoms)) for s in structs]
    assert order == sorted(order)
    first = {(s.prototype, s.species) for s in structs if s.index == 0}
    n_first = sum(1 for s in structs if s.index == 0)
    assert [(s.prototype, s.species) for s in structs[:n_first]] and len(first) == n_first


def test_prototypes_have_expected_stoichiometry_and_distances():
    from ase.neighborlist import neighbor_list

    expect = {
        ("rocksalt", ("Na", "Cl")): "ClNa",
        ("cesiumchloride", ("Ni", "Al")): "AlNi",
        ("zincblende", ("Ga", "As")): "AsGa",
        ("wurtzite", ("Zn", "O")): "O2Zn2",
        ("fluorite", ("Ca", "F")): "CaF2",
        ("fluorite", ("Li", "O")): "Li2O",
        ("L1_2", ("Cu", "Au")): "AuCu3",
    }
    for (proto, species), formula in expect.items():
        at = build_prototype(proto, species)
        assert at.get_chemical_formula(mode="hill") == formula, proto
        d = neighbor_list("d", at, 5.0).min()
        assert np.isclose(d, _radius(species[0]) + _radius(species[1]), atol=0.02), (proto, d)
    cu = build_prototype("ref", ["Cu"])
    assert np.isclose(cu.cell.cellpar()[0], 3.61 / np.sqrt(2), atol=1e-6)  # experimental fcc reference


def test_kpt_mesh_and_2d_reduction():
    from ase.build import bulk, fcc111

    cu = bulk("Cu", "fcc", a=3.6)
    assert kpt_mesh(cu, 3.5) == [11, 11, 11]
    slab = fcc111("Cu", (1, 1, 3), a=3.6, vacuum=6.0)
    assert kpt_mesh(slab, 3.5)[2] == 1  # non-periodic direction
    t = _reduce_2d(np.array([[2.5, 0, 0], [7.5, 2.5, 0]]))
    assert round(np.linalg.det(t)) == 1
    v = t @ np.array([[2.5, 0, 0], [7.5, 2.5, 0]])
    assert np.allclose(sorted(np.linalg.norm(v, axis=1)), [2.5, 2.5])


# ---------------------------------------------------------------------------------------------------------------
# slabs and γ


def test_gamma_formula_limits():
    # a slab whose energy is N bulk atoms has no surface energy; γ is linear in the excess energy
    assert gamma_j_per_m2(-12.0, 6, -2.0, 5.0) == 0.0
    g1 = gamma_j_per_m2(-11.0, 6, -2.0, 5.0)
    assert np.isclose(g1, 1.0 / (2 * 5.0) * EV_PER_A2_TO_J_PER_M2)
    assert np.isclose(gamma_j_per_m2(-10.0, 6, -2.0, 5.0), 2 * g1)
    assert np.isclose(gamma_j_per_m2(-10.0, 6, -2.0, 10.0), g1)  # doubling the area halves γ
    # adding a bulk layer (n atoms of bulk energy) leaves γ unchanged
    assert np.isclose(gamma_j_per_m2(-11.0 - 2 * 3, 9, -2.0, 5.0), g1)


@pytest.mark.parametrize(
    "hkl,layers,area_factor", [((1, 1, 1), 6, np.sqrt(3) / 4), ((1, 0, 0), 6, 0.5), ((1, 1, 0), 8, np.sqrt(2) / 2)]
)
def test_build_slab_geometry(hkl, layers, area_factor):
    a0 = 3.63
    s_spec, b_spec, info = surface_specs("Cu", hkl, a0, dft.DEFAULT_SETTINGS)
    slab, bulk = s_spec.atoms, b_spec.atoms
    assert info["n_layers"] == layers and len(slab) == layers  # 1x1: one atom per layer
    assert np.isclose(info["area_a2"], area_factor * a0**2)  # primitive surface cell of fcc (hkl)
    np.testing.assert_allclose(slab.cell[:2], bulk.cell[:2], atol=1e-8)  # same in-plane lattice
    assert info["bulk_c_orthogonal"]
    assert np.allclose(bulk.cell[2][:2], 0, atol=1e-8) and np.allclose(slab.cell[2][:2], 0, atol=1e-8)
    assert s_spec.kpts[:2] == b_spec.kpts[:2] and s_spec.kpts[2] == 1  # same in-plane k-mesh
    assert np.isclose(len(bulk) * 0, 0) and np.isclose(abs(np.linalg.det(bulk.cell[:])) / len(bulk), a0**3 / 4)
    z = np.sort(slab.positions[:, 2])
    assert np.isclose(slab.cell[2, 2] - (z[-1] - z[0]), dft.DEFAULT_SETTINGS.vacuum_a)
    # symmetric: the layer spacings read the same from both faces
    gaps = np.diff(z)
    np.testing.assert_allclose(gaps, gaps[::-1], atol=1e-6)


def test_functionals_share_identical_settings():
    structs, _ = pair_structures(["Fe", "Na", "Cl"], ["ref", "rocksalt"], 1, seed=0)
    tasks = pair_tasks(structs, ("pbe", "r2scan"))
    for pbe, r2 in zip(tasks[::2], tasks[1::2]):
        assert pbe.args.functional == "pbe" and r2.args.functional == "r2scan"
        assert pbe.args.settings == r2.args.settings and pbe.args.kpts == r2.args.kpts
        assert pbe.args.atoms == r2.args.atoms
    fe = next(t for t in tasks if t.item.startswith("Fe-"))
    assert initial_magmoms(fe.args.atoms, fe.args.settings) == [3.0]  # spin-polarised start for Fe
    na = next(t for t in tasks if t.item.startswith("ClNa-") or t.item.startswith("NaCl-"))
    assert not any(initial_magmoms(na.args.atoms, na.args.settings))
    # datasets 1 and 2 differ from the base settings (and so from each other) only by their k-point density
    for production in (dft.SURFACE_SETTINGS, dft.PAIR_SETTINGS):
        diff = {k for k, v in production.as_dict().items() if dft.DEFAULT_SETTINGS.as_dict()[k] != v}
        assert diff == {"kpt_density_per_inv_a"}
    assert all(t.args.settings == dft.PAIR_SETTINGS for t in tasks)  # dataset 1 runs on its own settings


def test_pair_convergence_table_without_default_records(tmp_path):
    """Variant records whose dataset-1 (default) partner is not computed yet give an empty table, not an error."""
    store = ResultStore(tmp_path / "s.sqlite")
    assert pair_convergence_table(store).empty
    t = next(t for t in pair_convergence_tasks() if t.item.endswith("|k 3.5/Å⁻¹"))
    store.put(
        t.key,
        kind=t.kind,
        model=t.model,
        item=t.item,
        status="ok",
        seconds=1.0,
        payload={"energy_ev_per_atom": -3.0, "forces_ev_per_a": [[0.0, 0.0, 0.0]], "stress_ev_per_a3": [0.0] * 6},
    )
    assert pair_convergence_table(store).empty


def test_pair_convergence_variants_reuse_dataset1_records():
    """The default variant *is* the dataset-1 calculation (same key), and every variant is an ordinary dataset-1
    single point whose key differs only through its settings: no calculation is ever done twice."""
    conv = pair_convergence_tasks()
    structs, _ = pair_structures(["Cu", "Mg", "O"], ["ref", "rocksalt"], 1, seed=0)
    default = {t.item: t.key for t in conv if t.item.count("|") == 1}
    prod = {t.item: t.key for t in pair_tasks(structs) if t.item in default}
    assert {i.split("|")[0] for i in prod} == {"Cu-ref-s0-000", "MgO-rocksalt-s0-000"}
    assert all(default[i] == k for i, k in prod.items())
    assert all(t.kind == dft.KIND_PAIRS for t in conv)
    assert len({t.key for t in conv}) == len(conv)
    k35 = [t for t in conv if t.item.endswith("|k 3.5/Å⁻¹")]
    assert k35 and all(t.args.settings == dft.DEFAULT_SETTINGS for t in k35)  # the settings of the first 14 pairs


def test_task_keys_depend_on_functional_settings_and_structure():
    structs, _ = pair_structures(["Al"], ["ref"], 2, seed=0)
    t = pair_tasks(structs, ("pbe", "r2scan"))
    assert len({x.key for x in t}) == 4
    t2 = pair_tasks(structs, ("pbe", "r2scan"), dft.DEFAULT_SETTINGS.replace(ecut_ev=500.0))
    assert not {x.key for x in t} & {x.key for x in t2}
    assert [x.key for x in pair_tasks(structs, ("pbe", "r2scan"))] == [x.key for x in t]  # stable


# ---------------------------------------------------------------------------------------------------------------
# GPAW


@needs_gpaw
@gpaw_mark
def test_generator_tiny_cell_resumes_and_exports(tmp_path):
    """One 1-atom cell, both functionals, through the engine; a rerun computes nothing; export round-trips."""
    from ase.io import read

    store = ResultStore(tmp_path / "dft.sqlite")
    kw = {
        "elements": ["Al"],
        "prototypes": ["ref"],
        "n_per_prototype": 1,
        "settings": dft.CHEAP_SETTINGS,
        "progress": False,
    }
    summary, skipped = dft.run_pairs(store, **kw)
    assert not skipped
    assert summary.ok == 2 and summary.failed == 0, summary.failures
    again, _ = dft.run_pairs(store, **kw)
    assert again.skipped == 2 and again.ok == 0
    m = dft.export(store, tmp_path, dft.CHEAP_SETTINGS)
    assert m["counts"]["pairs_complete"] == 1
    (frame,) = read(tmp_path / dft.PAIRS_FILE, index=":")
    rec = store.frame(kind=dft.KIND_PAIRS)
    e = dict(zip(rec["functional"], rec["energy_ev"]))
    assert np.isclose(frame.info["energy_pbe_ev"], e["pbe"]) and np.isclose(frame.info["energy_r2scan_ev"], e["r2scan"])
    assert frame.info["gpaw_version"] and frame.info["libxc_version"] and frame.info["ecut_ev"] == 250.0
    assert frame.arrays["forces_r2scan_ev_per_a"].shape == (1, 3)
    assert np.isfinite(frame.info["stress_r2scan_ev_per_a3"]).all() and len(frame.info["stress_pbe_ev_per_a3"]) == 6
    # the functionals differ (GPAW's energies are relative to its reference atoms, so the shift is large)
    assert abs(e["r2scan"] - e["pbe"]) > 0.1
    # export is deterministic
    text = (tmp_path / dft.PAIRS_FILE).read_text()
    dft.export(store, tmp_path, dft.CHEAP_SETTINGS)
    assert (tmp_path / dft.PAIRS_FILE).read_text() == text


@needs_gpaw
@gpaw_mark
@pytest.mark.slow
@pytest.mark.parametrize("functional", ["pbe", "r2scan"])
def test_forces_equal_finite_differences(functional):
    """F = -dE/dx for one rattled 2-atom cell (central difference, h = 0.01 Å)."""
    from ase.build import bulk

    at = bulk("Si", "diamond", a=5.45)
    at.positions[1] += [0.07, -0.04, 0.05]
    s = dft.CHEAP_SETTINGS
    mesh = kpt_mesh(at, s.kpt_density_per_inv_a)
    f = np.array(compute(make_spec(at, functional, s, kpts=mesh, stress=False))["forces_ev_per_a"])
    assert np.abs(f).max() > 0.1  # the rattle makes the force informative
    np.testing.assert_allclose(f.sum(axis=0), 0.0, atol=2e-3)  # translation invariance
    h, i, c = 0.01, 1, 0
    energies = []
    for sign in (1, -1):
        d = at.copy()
        d.positions[i, c] += sign * h
        energies.append(compute(make_spec(d, functional, s, kpts=mesh, stress=False))["energy_ev"])
    fd = -(energies[0] - energies[1]) / (2 * h)
    assert abs(fd - f[i, c]) < 5e-3, (fd, f[i, c])


def _cu_surface_store(tmp_path, put_bm_eos):
    """A store with the E-V points of a known Birch-Murnaghan curve of Cu and slab / bulk records of Cu(111),
    Cu(100) with a known γ, under the keys the generator uses: (store, E-V fit, γ)."""
    store = ResultStore(tmp_path / "dft.sqlite")
    s = dft.SURFACE_SETTINGS
    a0_true, b_true, eps = 3.60, 140.0, -3.5
    put_bm_eos(store, s, a0_true, b_true, eps)
    fit = eos_results(store, s)["Cu"]
    assert abs(fit["a0_a"] - a0_true) < 1e-3 and abs(fit["b_gpa"] - b_true) / b_true < 0.01
    tasks, skipped = surface_tasks({"Cu": fit}, ["Cu"], [(1, 1, 1), (1, 0, 0)], s)
    assert not skipped and len(tasks) == 4
    gamma_true = {"111": 1.25, "100": 1.5}
    for t in tasks:
        miller = t.item.split("|")[1]
        n = len(t.args.atoms)
        e = n * eps
        if t.kind == KIND_SLAB:
            area = np.linalg.norm(np.cross(t.args.atoms.cell[0], t.args.atoms.cell[1]))
            e += 2 * area * gamma_true[miller] / EV_PER_A2_TO_J_PER_M2
        store.put(
            t.key,
            kind=t.kind,
            model=t.model,
            item=t.item,
            payload={"energy_ev": e, "n_atoms": n, "kpts": list(t.args.kpts), "magmom_total_bohr": 0.0},
        )
    return store, fit, gamma_true


def test_eos_fit_and_surface_table_from_store(tmp_path, put_bm_eos):
    """Store plumbing without GPAW: E-V points of a known Birch-Murnaghan curve give back its a0; slab and bulk
    records built with a known γ give back that γ (looked up by the same keys the generator uses)."""
    store, fit, gamma_true = _cu_surface_store(tmp_path, put_bm_eos)
    s = dft.SURFACE_SETTINGS
    table = surface_table(store, s)
    assert dict(zip(table["miller"], table["gamma_j_per_m2"].round(9))) == gamma_true
    # the E-V fit is passed down, not recomputed: with no fits given there is no slab to look up
    assert surface_table(store, s, eos={"Cu": fit}).equals(table) and surface_table(store, s, eos={}).empty


def test_cli_runs_every_dataset_one_way(tmp_path, capsys, put_bm_eos):
    """``run eos`` and ``run surfaces`` on a store that holds every calculation go through run_dataset, compute
    nothing (so no GPAW is needed) and print the E-V fit and the γ table; the command line offers exactly the
    datasets of DATASETS."""
    from uipbench.dft.cli import parser
    from uipbench.dft.running import DATASETS, RunOptions, run_dataset

    store, fit, _ = _cu_surface_store(tmp_path, put_bm_eos)
    path = str(tmp_path / "dft.sqlite")
    assert dft.main(["run", "eos", "--elements", "Cu", "--store", path]) == 0
    out = capsys.readouterr().out
    assert "5 tasks: 5 from store, 0 computed" in out and f"  Cu: {fit}" in out
    assert dft.main(["run", "surfaces", "--elements", "Cu", "--facets", "111", "100", "--store", path]) == 0
    out = capsys.readouterr().out
    assert "4 tasks: 4 from store, 0 computed" in out and "1.25" in out and "1.5" in out
    run = next(a for a in parser()._subparsers._group_actions[0].choices.values() if a.prog.endswith(" run"))
    choices = next(a.choices for a in run._actions if a.dest == "dataset")
    assert list(choices) == list(DATASETS)
    result = run_dataset("eos", store, RunOptions(settings=dft.SURFACE_SETTINGS, elements=["Cu"]), progress=False)
    assert [s.skipped for _, s in result.summaries] == [5] and not result.failures()
    with pytest.raises(ValueError, match="unknown dataset"):
        run_dataset("nope", store, RunOptions(settings=dft.SURFACE_SETTINGS))


def test_export_composes_one_section_per_dataset(tmp_path):
    """An empty store exports empty files and a manifest with every dataset's section; each exporter returns its
    own section (the E-V fits from export_eos are what export passes down)."""
    from uipbench.dft import exporting

    store = ResultStore(tmp_path / "empty.sqlite")
    m = dft.export(store, tmp_path)
    assert json.loads((tmp_path / dft.MANIFEST_FILE).read_text())["counts"] == m["counts"]
    assert m["counts"] == {
        "pairs_complete": 0,
        "pairs_single_points": 0,
        "eos_points": 0,
        "slabs": 0,
        "oriented_bulks": 0,
        "surface_energies": 0,
        "relaxed_slabs": 0,
    }
    assert set(m["calc_seconds"]) == {
        "eos",
        "surfaces",
        "convergence",
        "pairs_convergence",
        "relaxations",
        "training",
        "label_convergence",
    }  # "pairs" only once a pair is done
    assert m["eos_fits"] == {} and m["surface_energies"] == [] and m["versions"] == []
    for name in (dft.PAIRS_FILE, dft.EOS_FILE, dft.SURFACES_FILE):
        assert (tmp_path / name).read_text() == ""
    eos = exporting.export_eos(store, tmp_path)
    assert eos["counts"] == {"eos_points": 0} and eos["eos_fits"] == {}
    assert exporting.export_surfaces(store, tmp_path, eos={})["counts"]["slabs"] == 0


def test_public_face_is_small():
    """The package exports its public face only; everything else is imported from its module."""
    assert len(dft.__all__) <= 30 and all(hasattr(dft, n) for n in dft.__all__)
    assert not [n for n in vars(dft) if n.startswith("_") and not n.startswith("__")]
    assert {
        "pairs_table",
        "element_shifts",
        "chgnet_atomref_shift",
        "eos_table",
        "gamma_vs_mp",
        "run_pairs",
        "CHEAP_SETTINGS",
        "KIND_PAIRS",
        "MANIFEST_FILE",
        "export",
        "load",
        "main",
    } <= set(dft.__all__)


def test_gamma_vs_mp_compares_like_with_like_cells():
    """The Materials Project holds Au and Pt (110) twice: bulk-terminated 1x1 and the 1x2 missing-row
    reconstruction (lower γ). The committed GPAW slabs are 1x1, so they must be compared with the 1x1 entries."""
    from uipbench import datasets

    mp = datasets.load("mp-surfaces")
    gam = dft.gamma_vs_mp(dft.load("gpaw-pbe-surfaces"), mp).set_index(["element", "miller"])
    for el in ("Au", "Pt"):
        if (el, "110") not in gam.index:
            continue
        row = gam.loc[(el, "110")]
        recon = mp[mp["id"].isin(row["mp_reconstructed_ids"].split())]
        assert len(recon) == 1  # one missing-row entry, not the one compared
        assert row["gamma_mp_j_per_m2"] > row["gamma_mp_min_j_per_m2"] == recon["gamma_j_per_m2"].iloc[0]
    assert (gam["mp_reconstructed_ids"] == "").sum() >= len(gam) - 3  # single-entry facets are unaffected


def test_convergence_lattice_constant_is_the_production_one(tmp_path):
    """A surface convergence check of an element other than Cu runs at its E-V lattice constant, rounded as
    dataset 2 rounds it, so its dataset-2 variant reuses the production slab instead of recomputing it."""
    import sqlite3

    # a copy through SQLite's backup API (WAL content included; the committed store is never written)
    src = sqlite3.connect(f"file:{paths.PROJECT_DATA / STORE_FILE}?mode=ro", uri=True)
    dst = sqlite3.connect(tmp_path / "s.sqlite")
    src.backup(dst)
    src.close(), dst.close()
    store = ResultStore(tmp_path / "s.sqlite")
    assert convergence_a0(store, "Cu") == 3.63  # the value the committed Cu check was run with
    with pytest.raises(ValueError, match="run eos"):
        convergence_a0(store, "Xe")
    a0 = convergence_a0(store, "Al")
    assert abs(a0 - 4.04) / 4.04 < 0.01
    prod, _ = surface_tasks(eos_results(store, dft.SURFACE_SETTINGS, ["Al"]), ["Al"], [(1, 1, 1)])
    conv = convergence_tasks("Al", a0, [(1, 1, 1)], ["k 4.5/Å⁻¹"])
    assert {t.key for t in conv} == {t.key for t in prod}
    assert "Cu" in convergence_elements(store)


def test_hexagonal_slab_cells_resolve_to_the_stored_twin(tmp_path):
    """(111) cells have two reduced in-plane bases (60° and 120°); a record stored in either is found from the
    other, so dataset 2 exports the same frames on any machine (no GPAW needed: the record is written here)."""
    from uipbench.dft.calc import KIND_SLAB
    from uipbench.dft.settings import CHEAP_SETTINGS
    from uipbench.dft.surfaces import resolve_spec, surface_specs

    acute, _, info = surface_specs("Cu", (1, 1, 1), 3.63, CHEAP_SETTINGS, tie="acute")
    obtuse, _, _ = surface_specs("Cu", (1, 1, 1), 3.63, CHEAP_SETTINGS, tie="obtuse")
    a, b = acute.atoms.cell[0], acute.atoms.cell[1]
    assert a @ b > 0 > obtuse.atoms.cell[0] @ obtuse.atoms.cell[1]  # the two bases of one lattice
    assert acute.key(KIND_SLAB) != obtuse.key(KIND_SLAB) and acute.kpts == obtuse.kpts
    store = ResultStore(tmp_path / "s.sqlite")
    at = obtuse.atoms
    store.put(
        obtuse.key(KIND_SLAB),
        kind=KIND_SLAB,
        model="gpaw-pbe",
        item="Cu|111",
        payload={
            "label": obtuse.label,
            "settings": obtuse.settings.as_dict(),
            "kpts": list(obtuse.kpts),
            "numbers": at.numbers.tolist(),
            "positions_a": at.positions.tolist(),
            "cell_a": at.cell[:].tolist(),
            "pbc": at.pbc.tolist(),
            "energy_ev": -1.0,
        },
    )
    assert resolve_spec(store, acute, KIND_SLAB).key(KIND_SLAB) == obtuse.key(KIND_SLAB)
    # a different slab (other lattice constant) is not mistaken for it
    other, _, _ = surface_specs("Cu", (1, 1, 1), 3.70, CHEAP_SETTINGS)
    assert resolve_spec(store, other, KIND_SLAB) is other
    assert info["n_layers"] == 6
