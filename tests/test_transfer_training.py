"""CHGNet transfer training (uipbench.transfer.training*): units, split, AtomRef refits, freezing, resume, store.

Real computations on CPU, seeded: a tiny CHGNet (a few thousand parameters) on real GPAW r2SCAN frames of the
project's legacy pairs (metals and compounds without B/C/N/O/F), 1-2 epochs; chgnet-0.3.0 from the registry for
the stress convention.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from uipbench import paths
from uipbench.transfer.atomref_refit import (
    atomref_weights,
    composition_fractions,
    predict_energy_per_atom,
    refit_atomref,
    refit_atomref_residual,
)
from uipbench.transfer.training import METHODS, TrainConfig, train_method
from uipbench.transfer.training_data import (
    FIRST_ROW_UNCONVERGED,
    ase_stress_to_chgnet_kbar,
    chgnet_kbar_to_ase_stress,
    frame_group,
    frames_to_training_set,
    group_split,
)

PAIRS = paths.PROJECT_DATA / "dft" / "pairs_pbe_r2scan.extxyz"


def tiny_chgnet(seed: int = 0):
    from chgnet.model import CHGNet

    torch.manual_seed(seed)
    return CHGNet(atom_fea_dim=8, bond_fea_dim=8, angle_fea_dim=8, num_radial=5, num_angular=5, n_conv=2,
                  atom_conv_hidden_dim=8, bond_conv_hidden_dim=8, mlp_hidden_dims=(8, 8))  # fmt: skip


@pytest.fixture(scope="module")
def frames():
    from ase.io import read

    if not PAIRS.exists():
        pytest.skip(f"{PAIRS} not present")
    return read(PAIRS, index=":")


@pytest.fixture(scope="module")
def small_set(frames):
    """12 frames: 2 of each of 6 groups free of first-row elements (real GPAW r2SCAN labels)."""
    by_group: dict[str, list] = {}
    for a in frames:
        if not set(a.get_chemical_symbols()) & set(FIRST_ROW_UNCONVERGED):
            by_group.setdefault(frame_group(a), []).append(a)
    sel = [a for g in sorted(by_group)[:6] for a in by_group[g][:2]]
    data = frames_to_training_set(sel, "r2scan", source="gpaw-pbe-r2scan-pairs")
    return data, group_split(data.ids, data.groups, seed=0)


def _synthetic_cells():
    from ase.build import bulk
    from pymatgen.io.ase import AseAtomsAdaptor

    out = []
    for symbols in (["Cu"] * 4, ["Al"] * 4, ["Ni"] * 4, ["Cu", "Cu", "Al", "Al"], ["Cu", "Cu", "Cu", "Ni"],
                    ["Al", "Ni", "Ni", "Ni"]):  # fmt: skip
        a = bulk("Cu", "fcc", a=3.7, cubic=True)
        a.set_chemical_symbols(symbols)
        out.append(AseAtomsAdaptor.get_structure(a))
    return out


# ---------------------------------------------------------------------------------------------------------------
# units


def test_stress_convention_against_chgnet_own_prediction():
    """ASE calculator stress -> label -> StructureData target equals CHGNet's own forward stress (GPa, one cell)."""
    from ase.build import bulk
    from chgnet.data.dataset import StructureData
    from pymatgen.io.ase import AseAtomsAdaptor

    from uipbench.models import load_model

    lm = load_model("chgnet-0.3.0")
    model = lm.calc.inner.model
    atoms = bulk("Cu", "fcc", a=3.40)  # compressed (CHGNet's own a0 is about 3.6 Å)
    atoms.set_cell(atoms.cell[:] @ np.array([[1.0, 0.02, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.99]]), scale_atoms=True)
    atoms.calc = lm.calc
    ase_stress = atoms.get_stress(voigt=False)  # eV/Å³, ASE sign
    assert np.all(np.diag(ase_stress) < 0), "a compressed cell has negative (compressive) ASE stress"
    label = ase_stress_to_chgnet_kbar(ase_stress)
    assert np.all(np.diag(label) > 0), "VASP sign: compression is positive pressure"
    np.testing.assert_allclose(chgnet_kbar_to_ase_stress(label), ase_stress, rtol=1e-12)
    structure = AseAtomsAdaptor.get_structure(atoms)
    ds = StructureData([structure], [0.0], [np.zeros((1, 3))], stresses=[label], graph_converter=model.graph_converter,
                       shuffle=False)  # fmt: skip
    graph, target = ds[0]
    pred = model([graph], task="efs")["s"][0].detach().numpy()
    np.testing.assert_allclose(target["s"].numpy(), pred, rtol=2e-4, atol=2e-4)  # GPa


def test_frames_to_training_set_units_and_masking(frames):
    from ase.units import GPa

    sel = [*[a for a in frames if "N" in a.get_chemical_symbols()][:2], frames[0]]
    data = frames_to_training_set(sel, "pbe", mask_stress=FIRST_ROW_UNCONVERGED)
    for k, a in enumerate(sel):
        assert data.energies[k] == pytest.approx(a.info["energy_pbe_ev"] / len(a), rel=1e-12)
        np.testing.assert_array_equal(data.forces[k], a.arrays["forces_pbe_ev_per_a"])
    assert np.isnan(data.stresses[0]).all() and np.isnan(data.stresses[1]).all()
    assert data.masked_stress_ids == [sel[0].info["id"], sel[1].info["id"]]
    s = np.asarray(sel[2].info["stress_pbe_ev_per_a3"])  # Voigt xx yy zz yz xz xy
    assert data.stresses[2][0, 0] == pytest.approx(-10 * s[0] / GPa)
    assert data.stresses[2][1, 2] == pytest.approx(-10 * s[3] / GPa)


def test_group_split_keeps_families_together(frames):
    ids = [str(a.info["id"]) for a in frames]
    groups = [frame_group(a) for a in frames]
    split = group_split(ids, groups, seed=3)
    assert sorted(split["train"] + split["val"] + split["test"]) == sorted(ids)
    where = {i: k for k, v in split.items() for i in v}
    for g in set(groups):
        assert len({where[i] for i, gg in zip(ids, groups, strict=True) if gg == g}) == 1, g
    n_groups = {k: len({groups[ids.index(i)] for i in v}) for k, v in split.items()}
    n = len(set(groups))
    assert n_groups["val"] == round(0.1 * n) and n_groups["test"] == round(0.1 * n)
    assert group_split(ids, groups, seed=3) == split
    assert group_split(ids, groups, seed=4) != split


# ---------------------------------------------------------------------------------------------------------------
# AtomRef refits on synthetic data (exact)


def test_atomref_refit_exact_and_zeroes_absent_elements():
    structures = _synthetic_cells()
    X = composition_fractions(structures)
    mu = np.zeros(94)
    mu[[28, 12, 27]] = [-4.1, -3.7, -5.5]  # Cu, Al, Ni (z - 1)
    model = tiny_chgnet()
    before = atomref_weights(model)
    info = refit_atomref(model, structures, X @ mu)
    w = atomref_weights(model)
    np.testing.assert_allclose(w[[28, 12, 27]], mu[[28, 12, 27]], atol=2e-5)
    others = np.setdiff1d(np.arange(94), [28, 12, 27])
    assert np.abs(w[others]).max() < 1e-6, "chgnet's AtomRef.fit sets absent elements to (numerically) zero"
    assert {"Fe", "O", "Li"} <= set(info["elements_zeroed"]) and "Cu" not in info["elements_zeroed"]
    assert len(info["elements_zeroed"]) == int(np.sum(np.abs(before[others]) > 1e-8))


def test_atomref_residual_refit_exact_keeps_absent_elements():
    structures = _synthetic_cells()
    X = composition_fractions(structures)
    model = tiny_chgnet()
    before = atomref_weights(model)
    baseline = predict_energy_per_atom(model, structures)
    delta = np.zeros(94)
    delta[[28, 12, 27]] = [-12.0, -13.5, -11.2]  # a GGA -> r2SCAN-like per-element shift
    target = baseline + X @ delta
    info = refit_atomref_residual(model, structures, target)
    w = atomref_weights(model)
    np.testing.assert_allclose(w - before, delta, atol=5e-5)
    others = np.setdiff1d(np.arange(94), [28, 12, 27])
    np.testing.assert_array_equal(w[others], before[others].astype(np.float32))
    np.testing.assert_allclose(predict_energy_per_atom(model, structures), target, atol=1e-4)
    assert info["residual_mae_after_ev_per_atom"] < 1e-9 < info["residual_mae_before_ev_per_atom"]


# ---------------------------------------------------------------------------------------------------------------
# training: freezing, resume, gradients, store


def _final_state(workdir):
    return torch.load(workdir / "state.pt", map_location="cpu", weights_only=True)["model"]


def test_frozen_parameters_stay_frozen(small_set, tmp_path):
    data, split = small_set
    start = tiny_chgnet(1)
    cfg = TrainConfig(epochs=1, batch_size=2, freeze=("atom_embedding",))
    rec = train_method("m3-atomref-frozen", data, split, cfg, tmp_path / "m3", start=start)
    after = _final_state(tmp_path / "m3")
    ref = start.state_dict()
    for name in ("composition_model.fc.weight", "atom_embedding.embedding.weight"):
        assert torch.equal(after[name], ref[name]), f"{name} moved"
        assert name in rec["frozen_parameters"]
    assert not torch.equal(after["mlp.layers.0.weight"], ref["mlp.layers.0.weight"]), "the network must train"
    # control: method 2 passes train_composition_model=True, and its AtomRef does move
    train_method("m2-atomref-trainable", data, split, cfg, tmp_path / "m2", start=start)
    assert not torch.equal(_final_state(tmp_path / "m2")["composition_model.fc.weight"],
                           ref["composition_model.fc.weight"])  # fmt: skip


def test_checkpoint_resume_equals_uninterrupted(small_set, tmp_path):
    data, split = small_set
    cfg = TrainConfig(epochs=2, batch_size=2, seed=7)
    start = tiny_chgnet(2)
    straight = train_method("m4-atomref-refit", data, split, cfg, tmp_path / "a", start=start)
    part = train_method("m4-atomref-refit", data, split, cfg, tmp_path / "b", start=start, stop_after_epochs=1)
    assert part["finished"] is False and part["epochs_done"] == 1
    resumed = train_method("m4-atomref-refit", data, split, cfg, tmp_path / "b", start=start)
    assert resumed["finished"] is True and resumed["epochs_done"] == 2
    assert resumed["final_parameters_sha256"] == straight["final_parameters_sha256"]
    for key in ("history", "test_predictions", "gradient_records", "best_epoch", "atomref", "split"):
        assert resumed[key] == straight[key], key
    with pytest.raises(RuntimeError, match="another run"):
        train_method("m4-atomref-refit", data, split, TrainConfig(epochs=3, batch_size=2), tmp_path / "b", start=start)


def test_gradient_records_at_tenths_of_first_epoch(small_set, tmp_path):
    data, split = small_set
    rec = train_method(
        "m5-atomref-residual", data, split, TrainConfig(epochs=1, batch_size=1), tmp_path, start=tiny_chgnet()
    )
    n_batches = len(rec["split"]["train"])
    steps = sorted({k * n_batches // 10 for k in range(1, 11)} - {0})
    assert [r["step"] for r in rec["gradient_records"]] == steps
    assert rec["gradient_records"][-1]["fraction"] == 1.0
    for r in rec["gradient_records"]:
        assert set(r["norms"]) == set(rec["gradient_parameters"]) and len(r["norms"]) == 8
        assert all(np.isfinite(v) and v > 0 for v in r["norms"].values())
    assert rec["test_mae_e_ev_per_atom"] >= 0 and np.isfinite(rec["test_mae_f_ev_per_a"])


def test_methods_as_resumable_store_tasks(small_set, tmp_path):
    from uipbench.store import ResultStore
    from uipbench.transfer.training_runs import run_training_sweep, training_tasks

    data, split = small_set
    store = ResultStore(tmp_path / "r.sqlite")
    cfg = TrainConfig(epochs=1, batch_size=4)
    methods = ("m1-scratch", "m4-atomref-refit", "zero-shot-refit")
    tasks = training_tasks(data, split, cfg, methods=methods, start=tiny_chgnet(), workroot=tmp_path / "runs")
    first = run_training_sweep(tasks, store, progress=False)
    assert (first.ok, first.failed) == (3, 0), first.failures
    for t in tasks:
        rec = store.get(t.key)
        assert rec.ok and rec.array is None
        p = rec.payload
        assert p["split"] == {k: [i for i in v] for k, v in split.items()}
        assert {"test_predictions", "test_mae_e_ev_per_atom", "atomref"} <= set(p)
        if not t.model.startswith("zero-shot"):
            assert {"history", "gradient_records", "epoch_seconds"} <= set(p)
        assert not any("state" in k or "weight" in k for k in p), "weights are never stored"
    again = run_training_sweep(tasks, store, progress=False)
    assert again.skipped == 3 and again.ok == 0
    assert set(METHODS) == {"m1-scratch", "m2-atomref-trainable", "m3-atomref-frozen", "m4-atomref-refit",
                            "m5-atomref-residual"}  # fmt: skip


_KILL_SCRIPT = """
import os, signal, sys
sys.path.insert(0, sys.argv[1])
import test_transfer_training as t
from ase.io import read
from uipbench.transfer import training

save = training._save_state


def save_then_die(path, signature, model, trainer, st):
    save(path, signature, model, trainer, st)
    if st.epoch_done == 1:
        os.kill(os.getpid(), signal.SIGKILL)  # killed right after the first epoch's checkpoint


training._save_state = save_then_die
data, split = t.small_set.__wrapped__(read(t.PAIRS, index=":"))
training.train_method("m4-atomref-refit", data, split, training.TrainConfig(epochs=2, batch_size=2, seed=7),
                      sys.argv[2], start=t.tiny_chgnet(2))
"""


def test_killed_run_resumes_from_last_checkpoint(small_set, tmp_path):
    """A run SIGKILLed after its first epoch (another process) resumes here and equals an uninterrupted run."""
    import subprocess
    import sys
    from pathlib import Path

    data, split = small_set
    cfg = TrainConfig(epochs=2, batch_size=2, seed=7)
    work = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", _KILL_SCRIPT, str(Path(__file__).parent), str(work)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == -9, proc.stderr[-2000:]
    saved = torch.load(work / "state.pt", map_location="cpu", weights_only=True)
    assert saved["epoch_done"] == 1
    resumed = train_method("m4-atomref-refit", data, split, cfg, work, start=tiny_chgnet(2))
    straight = train_method("m4-atomref-refit", data, split, cfg, tmp_path / "straight", start=tiny_chgnet(2))
    assert resumed["final_parameters_sha256"] == straight["final_parameters_sha256"]
    assert resumed["history"] == straight["history"] and resumed["test_predictions"] == straight["test_predictions"]


def test_all_masked_stress_batch_trains(frames, small_set, tmp_path):
    """Frames with masked (NaN) stresses train: a batch with only masked stresses adds 0, not NaN, to the loss."""
    from chgnet.trainer.trainer import CombinedLoss

    clean, clean_split = small_set
    masked = [a for a in frames if set(a.get_chemical_symbols()) & set(FIRST_ROW_UNCONVERGED)][:3]
    mdata = frames_to_training_set(masked, "r2scan", mask_stress=FIRST_ROW_UNCONVERGED)
    assert len(mdata.masked_stress_ids) == 3
    data = frames_to_training_set(
        masked + [a for a in frames if str(a.info["id"]) in set(clean.ids)], "r2scan", mask_stress=FIRST_ROW_UNCONVERGED
    )
    split = {**clean_split, "train": mdata.ids + clean_split["train"]}
    nan = torch.full((3, 3), float("nan"))
    bare = CombinedLoss(target_str="efs", criterion="Huber")
    e, f = torch.zeros(1), [torch.zeros(1, 3)]
    assert torch.isnan(bare({"e": e, "f": f, "s": [nan]}, {"e": e, "f": f, "s": [torch.zeros(3, 3)]})["loss"])
    rec = train_method("m4-atomref-refit", data, split, TrainConfig(epochs=1, batch_size=1), tmp_path,
                       start=tiny_chgnet())  # fmt: skip
    assert all(np.isfinite(v) for k in "efs" for v in rec["history"][k]["train"] + rec["history"][k]["val"])
    assert np.isfinite(rec["test_mae_s_gpa"]) and rec["masked_stress_ids"] == mdata.ids
    bad = {**split, "test": [*split["test"], mdata.ids[0]]}
    with pytest.raises(ValueError, match="more than one split"):
        train_method("m4-atomref-refit", data, bad, TrainConfig(epochs=1), tmp_path / "bad", start=tiny_chgnet())


def test_zero_shot_residual_atomref_removes_the_functional_shift(frames):
    """chgnet-0.3.0 untrained on GPAW r2SCAN: its GGA AtomRef misses the energy scale by eV/atom; the residual
    AtomRef fitted on the training groups brings test frames whose elements were all seen to the network's error."""
    from uipbench.transfer.training import evaluate_zero_shot

    by_group: dict[str, list] = {}
    for a in frames:
        if not set(a.get_chemical_symbols()) & set(FIRST_ROW_UNCONVERGED):
            by_group.setdefault(frame_group(a), []).append(a)
    data = frames_to_training_set([v[0] for _, v in sorted(by_group.items())], "r2scan")  # one frame per group
    split = group_split(data.ids, data.groups, seed=0)
    seen = {el for i in split["train"] for el in data.structures[data.index([i])[0]].symbol_set}
    res = {v: evaluate_zero_shot(data, split, atomref=v) for v in ("pretrained", "residual")}
    ok = [k for k, row in enumerate(res["residual"]["test_predictions"])
          if set(data.structures[data.index([row["id"]])[0]].symbol_set) <= seen]  # fmt: skip
    assert ok, "some test frame has only elements seen in training"
    err = {v: np.array([abs(r["e_pred"] - r["e_true"]) for r in res[v]["test_predictions"]])[ok] for v in res}
    assert err["pretrained"].mean() > 1.0  # GPAW energies are not on the VASP/MP scale (data/dft/README)
    assert err["residual"].mean() < 0.1 * err["pretrained"].mean()
    assert res["residual"]["atomref"]["elements_zeroed"] == []


def test_composition_covered_split_holds_out_only_groups_the_training_data_determine():
    from pymatgen.core import Composition

    groups = ["Al-ref", "Cu-ref", "AlCu-cesiumchloride", "Mg2-ref", "MgO-rocksalt", "Li-ref", "AgMg-cesiumchloride",
              "Ag-ref", "Au-ref", "AuCu3-L1_2", "PtNi3-L1_2"]  # fmt: skip
    comps = {g: {str(e): x for e, x in Composition(g.split("-")[0]).fractional_composition.items()} for g in groups}
    ids = [f"{g}-{k}" for g in groups for k in range(3)]
    fam = [g for g in groups for _ in range(3)]
    for seed in range(30):
        split = group_split(ids, fam, seed=seed, fractions=(0.6, 0.2, 0.2), compositions=comps)
        held = {i.rsplit("-", 1)[0] for part in ("val", "test") for i in split[part]}
        train = {i.rsplit("-", 1)[0] for i in split["train"]}
        assert held and not held & train
        els = sorted({e for c in comps.values() for e in c})
        X = np.array([[comps[g].get(e, 0) for e in els] for g in train])
        for g in held:  # in the span of the training compositions: its AtomRef energy is determined
            x = np.array([comps[g].get(e, 0) for e in els])
            assert np.linalg.matrix_rank(np.vstack([X, x])) == np.linalg.matrix_rank(X), (seed, g)
        assert not held & {"Li-ref", "MgO-rocksalt", "PtNi3-L1_2"}  # Li, O and Pt/Ni occur nowhere else
    only_compound = {g: comps[g] for g in ["Au-ref", "AuCu3-L1_2", "Al-ref", "AlCu-cesiumchloride"]}
    with pytest.raises(ValueError, match="composition-covered"):  # one held out, no second is determined by the rest
        group_split([f"{g}-0" for g in only_compound], list(only_compound), compositions=only_compound)


def test_split_covers_the_test_groups_when_validation_cannot_be_covered_too():
    from pymatgen.core import Composition

    groups = ["Ag-ref", "Mg2-ref", "AgMg-cesiumchloride", "Al-ref", "Li-ref"]  # the committed set, today
    comps = {g: {str(e): x for e, x in Composition(g.split("-")[0]).fractional_composition.items()} for g in groups}
    ids, fam = [f"{g}-0" for g in groups], list(groups)
    with pytest.raises(ValueError, match="cover='all'"):
        group_split(ids, fam, compositions=comps)  # only one of Ag, Mg2, AgMg can leave training
    split = group_split(ids, fam, compositions=comps, cover="test")
    (test,) = [i.rsplit("-", 1)[0] for i in split["test"]]
    assert test in {"Ag-ref", "Mg2-ref", "AgMg-cesiumchloride"}  # determined by the other two
    assert split["val"] and not set(split["val"]) & set(split["test"])
