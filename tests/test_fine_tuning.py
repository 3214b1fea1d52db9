"""Chapter 03 (uipbench.surfaces.fine_tuning): element rule, facet folds, label reconstruction, stored and resumed
arm runs. Real Au slabs of the MP surface set and their MP polymorphs; a tiny CHGNet (seeded) for training, 1 epoch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from uipbench.surfaces import fine_tuning as F


def tiny_chgnet(seed: int = 0):
    from chgnet.model import CHGNet

    torch.manual_seed(seed)
    return CHGNet(atom_fea_dim=8, bond_fea_dim=8, angle_fea_dim=8, num_radial=5, num_angular=5, n_conv=2,
                  atom_conv_hidden_dim=8, bond_conv_hidden_dim=8, mlp_hidden_dims=(8, 8))  # fmt: skip


@pytest.fixture(scope="module")
def au(data_dir, tmp_path_factory):
    """Au slabs, their references (OUC + MP match, computed into a temporary store) and the element's data."""
    from uipbench.store import ResultStore
    from uipbench.surfaces import protocols as P
    from uipbench.surfaces.slabs import load_slabs

    slabs = load_slabs()
    slabs = slabs[slabs["element"] == "Au"].reset_index(drop=True)
    refs = P.references(slabs, ResultStore(tmp_path_factory.mktemp("refs") / "r.sqlite"), progress=False)
    frames, sets = F.element_data(refs, slabs, ["Au"])
    return slabs, refs, frames["Au"], sets["Au"]


def test_labels_reproduce_the_data_set_gamma(au):
    slabs, refs, frames, data = au
    meta = F.slab_meta(frames)
    use = F.usable_slabs(refs)
    assert len(meta) == len(use) > 10 and set(meta["id"]) == set(use["id"])
    gamma = F.label_gammas(data, meta)
    np.testing.assert_allclose(gamma.to_numpy(), meta["gamma_dft_j_per_m2"].to_numpy(), rtol=0, atol=1e-9)
    # and against the data set's table itself, through the slab ids
    table = slabs.set_index("id")["gamma_j_per_m2"]
    np.testing.assert_allclose(gamma.to_numpy(), table.loc[gamma.index].to_numpy(), rtol=0, atol=1e-6)
    bulk = [i for i in data.ids if i.startswith(F.BULK_PREFIX)]
    assert bulk and set(meta["bulk_id"]) <= set(bulk)
    assert all(np.all(f == 0) for f in data.forces)  # relaxed structures: zero forces (the stated approximation)
    assert all(np.isnan(s).all() for s in data.stresses)  # stresses unlabelled


def test_facet_folds_hold_out_whole_facets_and_keep_bulk_in_training(au):
    from uipbench.transfer.training import check_split

    _, _, _, data = au
    groups = dict(zip(data.ids, data.groups, strict=True))
    folds = F.facet_folds(data.ids, data.groups, n_folds=4, seed=3)
    assert len(folds) == 4
    tested = []
    for split in folds:
        check_split(data, split)  # no group in two parts
        test_facets = {groups[i] for i in split["test"]}
        assert not test_facets & {groups[i] for i in split["train"] + split["val"]}
        assert sorted(split["train"] + split["val"] + split["test"]) == sorted(data.ids)  # each id once
        assert {i for i in data.ids if i.startswith(F.BULK_PREFIX)} <= set(split["train"])
        assert split["val"] and not any(i.startswith(F.BULK_PREFIX) for i in split["val"] + split["test"])
        tested += split["test"]
    slab_ids = [i for i in data.ids if not i.startswith(F.BULK_PREFIX)]
    assert sorted(tested) == sorted(slab_ids)  # every slab predicted exactly once
    assert F.facet_folds(data.ids, data.groups, 4, 3) == folds  # seeded
    # two slabs of one facet (other termination / polymorph) share a group
    assert F.facet_key("Ag", "2-1-10") == F.facet_key("Ag", (2, -1, -1, 0)) == F.facet_key("Ag", (2, -1, 0))
    # the learning-curve subsample keeps bulk, validation and test and is nested
    small = F.subsample_training(folds[0], groups, 0.3, seed=0)
    half = F.subsample_training(folds[0], groups, 0.6, seed=0)
    assert set(small["train"]) <= set(half["train"]) <= set(folds[0]["train"])
    assert (small["val"], small["test"]) == (folds[0]["val"], folds[0]["test"])
    with pytest.raises(ValueError):
        F.facet_folds(["a", "b"], ["A", "B"], n_folds=5)


def test_element_rule_spreads_lattices_then_fills_by_slab_count():
    t = pd.DataFrame(
        {
            "element": ["A", "B", "C", "D", "E", "F", "G", "H"],
            "n_slabs": [50, 40, 30, 20, 15, 10, 9, 60],
            "n_facets": [20, 19, 18, 10, 9, 8, 7, 3],  # H: most slabs but too few facets
            "n_atoms": [100] * 8,
            "lattice": ["FCC", "FCC", "FCC", "HCP", "BCC", "other", "BCC", "FCC"],
        }
    )
    assert F.choose_elements(t, n_elements=4, per_lattice=1) == ["A", "D", "E", "F"]
    assert F.choose_elements(t, n_elements=6, per_lattice=1) == ["A", "B", "C", "D", "E", "F"]
    assert F.choose_elements(t, n_elements=6, per_lattice=2) == ["A", "B", "D", "E", "F", "G"]
    assert F.choose_elements(t, n_elements=3, per_lattice=1, min_facets=2)[0] == "H"


def test_tiny_arm_runs_are_stored_and_resumed(au, tmp_path):
    from uipbench.store import ResultStore
    from uipbench.transfer.training import TrainConfig

    slabs, refs, _, _ = au
    use = F.usable_slabs(refs)
    small = use[use["n_atoms"] <= use["n_atoms"].quantile(0.5)].head(5)  # five small slabs
    store = ResultStore(tmp_path / "train.sqlite")
    kw = dict(arms=("zero-shot", "fine-tuned"), n_folds=2, run_folds=[0], start=tiny_chgnet(),
              workroot=tmp_path / "runs", progress=False)  # fmt: skip
    cfg = TrainConfig(epochs=1, batch_size=2, targets="ef")
    first = F.run_fine_tuning(small, slabs, ["Au"], cfg, store, **kw)
    # the zero-shot evaluation runs first, outside the training budget: the summary counts it as stored
    assert (first.summary.ok, first.summary.skipped, first.summary.failed) == (1, 1, 0), first.summary.failures
    assert len(first.records) == 2
    assert set(first.runs["arm"]) == {"zero-shot", "fine-tuned"} and not first.failures
    pred = F.slab_predictions(first)
    test_ids = first.folds["Au"][0]["test"]
    assert sorted(pred.loc[pred["arm"] == "fine-tuned", "id"]) == sorted(test_ids)
    assert pred["gamma_model_j_per_m2"].notna().all() and pred["eps_model_ev_per_atom"].notna().all()
    assert len(F.run_costs(first)) == 1
    again = F.run_fine_tuning(small, slabs, ["Au"], cfg, store, **kw)
    assert again.summary.skipped == 2 and again.summary.ok == 0
    budget = F.run_fine_tuning(small, slabs, ["Au"], cfg, ResultStore(tmp_path / "b.sqlite"), **kw, max_new=0)
    assert budget.summary.deferred == 1 and len(budget.records) == 1  # zero-shot done, the training deferred
    pd.testing.assert_frame_equal(F.slab_predictions(again), pred)
