"""Universal vs specialised vs fine-tuned CHGNet on the surfaces of one element (surfaces paper, Fig. 3).

Data per element (:func:`element_frames`, :func:`element_training_set`):

* every Materials Project slab of the element that has a DFT bulk match (:func:`uipbench.surfaces.protocols.
  references`), its total energy **reconstructed** as N eps_bulk + 2 A gamma with eps_bulk of the matched MP PBE
  polymorph, exactly as chapter 01 reconstructs it (the labels reproduce the data set's gamma by construction);
  forces labelled zero (the slabs are relaxed DFT structures: an approximation, the residual forces are not
  published); stresses unlabelled (NaN, left out of the loss);
* every MP PBE polymorph of the element (``mp-pbe-element-refs``) with its energy per atom, forces zero (relaxed
  MP structures), stress unlabelled. The polymorphs are in **every** training split, so a trained model has seen
  the bulk it is referenced to; the run record carries their predictions (``reference_predictions`` of
  :func:`uipbench.transfer.training.train_method`: every single-element frame, i.e. here every frame).

Model surface energy of a test slab (:func:`slab_predictions`): gamma = (E_slab - N eps_bulk) / 2A with both
energies from the same trained model, eps_bulk its prediction for the slab's matched MP polymorph
(:func:`uipbench.surfaces.slabs.surface_energy_j_per_m2`, the one gamma formula). The zero-shot chgnet-0.3.0 arm
(``zero-shot-pretrained``) goes through the same path with the same bulk reference; chapter 01's universal models
(:func:`universal_predictions`) keep chapter 01's reference (the model's energy of the slab's oriented bulk cell).

Split (:func:`facet_folds`): k folds over the element's facets (one Miller index = one group, whatever the
termination or polymorph of its slabs), seeded; no slab of a test facet is in training or validation; validation
is a seeded share of the remaining facets; the bulk polymorphs always stay in training.

Elements (:func:`choose_elements`): a rule on the table of usable slabs per element and its lattice (FCC / BCC /
HCP / other of the MP polymorph most of its slabs match), see there.

Arms (:data:`ARMS`): ``zero-shot`` (chgnet-0.3.0 as published), ``specialised`` (``m1-scratch``: the CHGNet
architecture from random weights, AtomRef fitted to the element and frozen) and ``fine-tuned``
(``m5-atomref-residual``: from chgnet-0.3.0, AtomRef plus the residual fit, frozen). Every (element, fold, arm,
training fraction) is one task of :func:`uipbench.transfer.training_runs.training_tasks` (stored, resumable).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..miller import miller_bravais_to_miller
from .lattices import LATTICES
from .slabs import surface_energy_j_per_m2

#: arm -> training method of :mod:`uipbench.transfer.training` (or the untrained zero-shot evaluation)
ARMS = {"zero-shot": "zero-shot-pretrained", "specialised": "m1-scratch", "fine-tuned": "m5-atomref-residual"}
FUNCTIONAL = "pbe"
SOURCE = "mp-surfaces"
BULK_PREFIX = "bulk:"


# ----------------------------------------------------------------------------------------------------------------
# elements


def usable_slabs(refs: pd.DataFrame) -> pd.DataFrame:
    """The slabs of :func:`~uipbench.surfaces.protocols.references` with a DFT bulk match (hence a slab label)."""
    return refs[refs["matched"].astype(bool) & refs["e_slab_dft_ev"].notna()].reset_index(drop=True)


def element_table(refs: pd.DataFrame, mp_refs: dict | None = None) -> pd.DataFrame:
    """Per element with usable slabs: n_slabs, n_facets, n_atoms (sum over slabs), mp_ref_index (the MP polymorph
    most of its slabs match, ties: lowest index), lattice (of that polymorph), n_polymorphs."""
    from pymatgen.io.ase import AseAtomsAdaptor

    from .lattices import classify_lattice

    mp_refs = mp_refs if mp_refs is not None else _mp_refs()
    rows = []
    for el, g in usable_slabs(refs).groupby("element", sort=True):
        counts = g["mp_ref_index"].value_counts()
        idx = int(min(i for i, c in counts.items() if c == counts.max()))
        poly = mp_refs[el][idx]["structure"]
        rows.append({"element": el, "n_slabs": len(g), "n_facets": len({facet_key(el, m) for m in g["miller"]}),
                     "n_atoms": int(g["n_atoms"].sum()), "mp_ref_index": idx,
                     "lattice": classify_lattice(AseAtomsAdaptor.get_atoms(poly)),
                     "n_polymorphs": len(mp_refs[el])})  # fmt: skip
    return pd.DataFrame(rows)


def choose_elements(
    table: pd.DataFrame, n_elements: int = 8, per_lattice: int = 1, min_facets: int = 5, lattices=LATTICES
) -> list[str]:
    """The rule: among elements with at least ``min_facets`` facets, rank by number of usable slabs (ties: fewer
    atoms, then symbol); take the ``per_lattice`` top-ranked of every lattice class (FCC, BCC, HCP, other: the
    spread), then fill up to ``n_elements`` with the next-ranked of any lattice. Returned in rank order."""
    t = table[table["n_facets"] >= min_facets].sort_values(["n_slabs", "n_atoms", "element"],
                                                         ascending=[False, True, True])  # fmt: skip
    ranked = t["element"].tolist()
    picked = [el for lat in lattices for el in t.loc[t["lattice"] == lat, "element"].head(per_lattice)]
    picked = picked[:n_elements]
    picked += [el for el in ranked if el not in picked][: max(0, n_elements - len(picked))]
    return [el for el in ranked if el in set(picked)]


# ----------------------------------------------------------------------------------------------------------------
# data of one element


def facet_key(element: str, miller: str | Sequence[int]) -> str:
    """The facet group of a slab: element and three-index Miller index (``Ag(1 1 1)``); four-index hexagonal
    indices are converted, so (2 -1 -1 0) and its three-index form are one facet."""
    from ..miller import parse_miller

    hkl = parse_miller(miller) if isinstance(miller, str) else tuple(int(x) for x in miller)
    hkl = miller_bravais_to_miller(hkl) if len(hkl) == 4 else tuple(hkl)
    return f"{element}({' '.join(str(int(x)) for x in hkl)})"


def element_frames(refs_el: pd.DataFrame, atoms_by_id: dict, polymorphs: list[dict]) -> list:
    """ASE frames of one element with ``energy_pbe_ev`` / ``forces_pbe_ev_per_a`` labels (no stress: NaN).

    Slabs (``refs_el``: usable rows of one element; structures from ``atoms_by_id``): energy N eps_bulk + 2 A gamma
    (the ``e_slab_dft_ev`` column of the references, chapter 01's reconstruction), forces zero, ``info`` with id,
    group (:func:`facet_key`), kind "slab", area, gamma, eps_bulk and the matched polymorph id. Polymorphs: id and
    group ``bulk:<element>:<index>``, energy N eps, forces zero, kind "bulk".
    """
    from pymatgen.io.ase import AseAtomsAdaptor

    frames = []
    for _, r in refs_el.iterrows():
        a = atoms_by_id[r["id"]].copy()
        a.calc = None
        a.info = {"id": r["id"], "group": facet_key(r["element"], r["miller"]), "kind": "slab",
                  "element": r["element"], "area_a2": float(r["area_a2"]),
                  "gamma_dft_j_per_m2": float(r["gamma_dft_j_per_m2"]),
                  "eps_dft_ev_per_atom": float(r["eps_dft_ev_per_atom"]),
                  "bulk_id": f"{BULK_PREFIX}{r['element']}:{int(r['mp_ref_index'])}",
                  f"energy_{FUNCTIONAL}_ev": float(r["e_slab_dft_ev"])}  # fmt: skip
        a.arrays[f"forces_{FUNCTIONAL}_ev_per_a"] = np.zeros((len(a), 3))
        frames.append(a)
    element = str(refs_el["element"].iloc[0])
    for i, p in enumerate(polymorphs):
        a = AseAtomsAdaptor.get_atoms(p["structure"])
        a.calc = None
        bid = f"{BULK_PREFIX}{element}:{i}"
        a.info = {"id": bid, "group": bid, "kind": "bulk", "element": element,
                  "eps_dft_ev_per_atom": float(p["energy_per_atom"]),
                  f"energy_{FUNCTIONAL}_ev": float(p["energy_per_atom"]) * len(a)}  # fmt: skip
        a.arrays[f"forces_{FUNCTIONAL}_ev_per_a"] = np.zeros((len(a), 3))
        frames.append(a)
    return frames


def element_training_set(frames):
    """The frames as a :class:`~uipbench.transfer.training_data.TrainingSet` (PBE labels, source mp-surfaces)."""
    from ..transfer.training_data import frames_to_training_set

    return frames_to_training_set(frames, FUNCTIONAL, source=SOURCE)


def slab_meta(frames) -> pd.DataFrame:
    """Per slab frame: id, element, facet, n_atoms, area_a2, gamma_dft_j_per_m2, eps_dft_ev_per_atom, bulk_id."""
    return pd.DataFrame([{"id": a.info["id"], "element": a.info["element"], "facet": a.info["group"],
                          "n_atoms": len(a), "area_a2": a.info["area_a2"],
                          "gamma_dft_j_per_m2": a.info["gamma_dft_j_per_m2"],
                          "eps_dft_ev_per_atom": a.info["eps_dft_ev_per_atom"], "bulk_id": a.info["bulk_id"]}
                         for a in frames if a.info["kind"] == "slab"])  # fmt: skip


def label_gammas(data, meta: pd.DataFrame) -> pd.Series:
    """gamma (J/m²) recomputed from the training labels alone: slab label energy, the label of its matched bulk
    polymorph, the slab area (the check that the labels reproduce the data set's gamma)."""
    e = dict(zip(data.ids, data.energies, strict=True))
    return pd.Series([surface_energy_j_per_m2(e[r.id] * r.n_atoms, r.n_atoms, e[r.bulk_id], r.area_a2)
                      for r in meta.itertuples()], index=meta["id"], name="gamma_label_j_per_m2")  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# facet folds


def facet_folds(
    ids: Sequence[str], groups: Sequence[str], n_folds: int = 5, seed: int = 0, val_fraction: float = 0.1
) -> list[dict[str, list[str]]]:
    """k splits over the facet groups of one element: fold f tests the f-th of ``n_folds`` near-equal parts of a
    seeded permutation of the slab facets; of the others, ``max(1, round(val_fraction * n))`` (seeded per fold) go
    to validation, the rest and every bulk polymorph (ids starting ``bulk:``) to training. Ids keep their order."""
    slab_groups = sorted({g for i, g in zip(ids, groups, strict=True) if not i.startswith(BULK_PREFIX)})
    if len(slab_groups) < max(n_folds, 3) or n_folds < 2:
        raise ValueError(f"{len(slab_groups)} facets cannot make {n_folds} folds (need n_folds >= 2 and >= 3 facets)")
    order = [slab_groups[i] for i in np.random.default_rng(seed).permutation(len(slab_groups))]
    parts = np.array_split(np.arange(len(order)), n_folds)
    out = []
    for f, part in enumerate(parts):
        test = {order[i] for i in part}
        rest = [g for g in order if g not in test]
        n_val = max(1, int(round(val_fraction * len(rest))))
        val = {rest[i] for i in np.random.default_rng([seed, f]).permutation(len(rest))[:n_val]}
        which = {g: "test" if g in test else "val" if g in val else "train" for g in slab_groups}
        split = {"train": [], "val": [], "test": []}
        for i, g in zip(ids, groups, strict=True):
            split["train" if i.startswith(BULK_PREFIX) else which[g]].append(i)
        out.append(split)
    return out


def subsample_training(split: dict, groups: dict[str, str], fraction: float, seed: int = 0) -> dict:
    """The split with only a seeded ``fraction`` of its training facets (at least one; nested: a smaller fraction
    keeps a subset of a larger one's facets); bulk polymorphs, validation and test unchanged (learning curve)."""
    if fraction >= 1.0:
        return split
    train_groups = sorted({groups[i] for i in split["train"] if not i.startswith(BULK_PREFIX)})
    order = [train_groups[i] for i in np.random.default_rng(seed).permutation(len(train_groups))]
    keep = set(order[: max(1, int(round(fraction * len(order))))])
    train = [i for i in split["train"] if i.startswith(BULK_PREFIX) or groups[i] in keep]
    return {**split, "train": train}


# ----------------------------------------------------------------------------------------------------------------
# tasks and runs


@dataclass
class FineTuning:
    """What :func:`run_fine_tuning` did: per element its frames, training set and folds; ``runs`` (one row per
    task: element, fold, fraction, arm, method, key, n_train_slabs); the engine summary; finished records by key;
    failures by key."""

    frames: dict[str, list]
    sets: dict
    folds: dict[str, list[dict]]
    runs: pd.DataFrame
    summary: object
    records: dict[str, dict]
    failures: dict[str, str]


def element_data(refs: pd.DataFrame, slabs: pd.DataFrame, elements: Sequence[str], mp_refs: dict | None = None):
    """(frames, training sets) per element, from the references and the slabs table (structures)."""
    mp_refs = mp_refs if mp_refs is not None else _mp_refs()
    use = usable_slabs(refs)
    atoms_by_id = dict(zip(slabs["id"], slabs["atoms"], strict=True))
    frames = {el: element_frames(use[use["element"] == el], atoms_by_id, mp_refs[el]) for el in elements}
    return frames, {el: element_training_set(f) for el, f in frames.items()}


def fine_tuning_tasks(sets: dict, folds: dict, config, arms: Sequence[str] = tuple(ARMS), run_folds=None,
                      train_fractions: Sequence[float] = (1.0,), fraction_seed: int = 0, start="chgnet-0.3.0",
                      workroot=None, device: str = "cpu"):  # fmt: skip
    """(tasks, runs table): one task per element, fold (``run_folds``: indices, None = all), training fraction
    and arm (the zero-shot arm only at fraction 1). Tasks are :func:`~uipbench.transfer.training_runs.
    training_tasks` tasks (kind ``transfer-training``), keyed by data checksum, split, settings and start."""
    from ..transfer.training_runs import training_tasks

    tasks, rows = [], []
    for el, data in sets.items():
        groups = dict(zip(data.ids, data.groups, strict=True))
        for f, split in enumerate(folds[el]):
            if run_folds is not None and f not in run_folds:
                continue
            for frac in train_fractions:
                sp = subsample_training(split, groups, frac, fraction_seed)
                methods = [ARMS[a] for a in arms if frac >= 1.0 or a != "zero-shot"]
                label = f"{SOURCE}:{el}:fold{f}:frac{frac:g}"
                ts = training_tasks(data, sp, config, methods, start=start, workroot=workroot, dataset=label,
                                    device=device)  # fmt: skip
                n_slabs = sum(not i.startswith(BULK_PREFIX) for i in sp["train"])
                inverse = {m: a for a, m in ARMS.items()}
                for t in ts:
                    rows.append({"element": el, "fold": f, "fraction": frac, "arm": inverse[t.args.method],
                                 "method": t.args.method, "key": t.key, "n_train_slabs": n_slabs,
                                 "n_test_slabs": len(sp["test"])})  # fmt: skip
                tasks += ts
    return tasks, pd.DataFrame(rows)


def run_fine_tuning(refs, slabs, elements, config, store, arms=tuple(ARMS), n_folds: int = 5, split_seed: int = 0,
                    val_fraction: float = 0.1, run_folds=None, train_fractions=(1.0,), start="chgnet-0.3.0",
                    workroot=None, device: str = "cpu", mp_refs=None, **kw) -> FineTuning:  # fmt: skip
    """Data, facet folds and every arm's runs for ``elements`` (stored in ``store``, resumable; ``kw`` to
    :func:`~uipbench.transfer.training_runs.run_training_sweep`: backend, n_workers, progress, max_new). The
    zero-shot evaluations (seconds each) always run; ``max_new`` budgets only the trainings."""
    from ..transfer.training_runs import read_records, run_training_sweep

    frames, sets = element_data(refs, slabs, elements, mp_refs)
    folds = {el: facet_folds(d.ids, d.groups, n_folds, split_seed, val_fraction) for el, d in sets.items()}
    tasks, runs = fine_tuning_tasks(sets, folds, config, arms, run_folds, train_fractions, split_seed, start,
                                    workroot, device)  # fmt: skip
    budget = kw.pop("max_new", None)
    zero = [t for t in tasks if t.args.method.startswith("zero-shot")]
    run_training_sweep(zero, store, **kw)
    summary = run_training_sweep(tasks, store, max_new=budget, **kw)
    records, failures = read_records(tasks, store)
    return FineTuning(frames, sets, folds, runs, summary, records, failures)


# ----------------------------------------------------------------------------------------------------------------
# per-slab predictions


def slab_predictions(ft: FineTuning) -> pd.DataFrame:
    """One row per (run, test slab): element, arm, fold, fraction, n_train_slabs, id, facet, n_atoms, DFT and
    model gamma, bulk (matched polymorph) and slab energies per atom, and their errors (model - DFT)."""
    meta = pd.concat([slab_meta(f) for f in ft.frames.values()], ignore_index=True).set_index("id")
    rows = []
    for run in ft.runs.itertuples():
        rec = ft.records.get(run.key)
        if rec is None:
            continue
        bulk = {p["id"]: p["e_pred"] for p in rec["reference_predictions"] if p["id"].startswith(BULK_PREFIX)}
        for p in rec["test_predictions"]:
            m = meta.loc[p["id"]]
            eps = bulk.get(m["bulk_id"], np.nan)
            n = int(m["n_atoms"])
            rows.append({"element": run.element, "arm": run.arm, "model": rec.get("start", ""), "fold": run.fold,
                         "fraction": run.fraction, "n_train_slabs": run.n_train_slabs, "id": p["id"],
                         "facet": m["facet"], "n_atoms": n, "gamma_dft_j_per_m2": m["gamma_dft_j_per_m2"],
                         "gamma_model_j_per_m2": surface_energy_j_per_m2(p["e_pred"] * n, n, eps, m["area_a2"]),
                         "eps_dft_ev_per_atom": m["eps_dft_ev_per_atom"], "eps_model_ev_per_atom": eps,
                         "e_slab_dft_ev_per_atom": p["e_true"], "e_slab_model_ev_per_atom": p["e_pred"]})  # fmt: skip
    return _with_errors(pd.DataFrame(rows, columns=PREDICTION_COLUMNS))


#: the columns of :func:`slab_predictions` and :func:`universal_predictions` (before the error columns)
PREDICTION_COLUMNS = ["element", "arm", "model", "fold", "fraction", "n_train_slabs", "id", "facet", "n_atoms",
                      "gamma_dft_j_per_m2", "gamma_model_j_per_m2", "eps_dft_ev_per_atom", "eps_model_ev_per_atom",
                      "e_slab_dft_ev_per_atom", "e_slab_model_ev_per_atom"]  # fmt: skip


def universal_predictions(refs: pd.DataFrame, slabs: pd.DataFrame, elements, models, store, **kw) -> pd.DataFrame:
    """Chapter 01's static protocol (its store kinds and keys: stored records are read, missing ones computed) for
    ``models`` on the usable slabs of ``elements``, in the columns of :func:`slab_predictions` (arm "universal",
    fold -1). Bulk reference: the model's energy of the slab's oriented bulk cell, as in chapter 01."""
    from . import protocols as P

    use = usable_slabs(refs)
    use = use[use["element"].isin(list(elements))].reset_index(drop=True)
    sl = slabs[slabs["id"].isin(use["id"])].reset_index(drop=True)
    keys = {(m, "static"): P.run_surfaces(use, sl, m, "static", store, **kw)[1] for m in models}
    res = P.results_table(use, store, keys)
    res = res[res["status"] == "ok"]
    out = pd.DataFrame({"element": res["element"], "arm": "universal", "model": res["model"], "fold": -1,
                        "fraction": 1.0, "n_train_slabs": 0, "id": res["id"],
                        "facet": [facet_key(e, m) for e, m in zip(res["element"], res["miller"], strict=True)],
                        "n_atoms": res["n_atoms"], "gamma_dft_j_per_m2": res["gamma_dft_j_per_m2"],
                        "gamma_model_j_per_m2": res["gamma_model_j_per_m2"],
                        "eps_dft_ev_per_atom": res["eps_dft_ev_per_atom"],
                        "eps_model_ev_per_atom": res["eps_model_ev_per_atom"],
                        "e_slab_dft_ev_per_atom": res["e_slab_dft_ev_per_atom"],
                        "e_slab_model_ev_per_atom": res["e_slab_model_ev_per_atom"]})  # fmt: skip
    return _with_errors(out.reset_index(drop=True))


def _with_errors(df: pd.DataFrame) -> pd.DataFrame:
    df["gamma_error_j_per_m2"] = df["gamma_model_j_per_m2"] - df["gamma_dft_j_per_m2"]
    df["bulk_error_ev_per_atom"] = df["eps_model_ev_per_atom"] - df["eps_dft_ev_per_atom"]
    df["slab_error_ev_per_atom"] = df["e_slab_model_ev_per_atom"] - df["e_slab_dft_ev_per_atom"]
    return df


def run_costs(ft: FineTuning) -> pd.DataFrame:
    """Per trained run: element, arm, fold, fraction, epochs, n_train_atoms, seconds per epoch (mean), total."""
    rows = []
    for run in ft.runs.itertuples():
        rec = ft.records.get(run.key)
        if rec is None or "epoch_seconds" not in rec:
            continue
        s = np.asarray(rec["epoch_seconds"], float)
        rows.append({"element": run.element, "arm": run.arm, "fold": run.fold, "fraction": run.fraction,
                     "epochs": len(s), "n_train_atoms": rec["n_train_atoms"], "seconds_per_epoch": float(s.mean()),
                     "ms_per_atom_epoch": 1e3 * float(s.mean()) / rec["n_train_atoms"],
                     "train_seconds": float(s.sum())})  # fmt: skip
    cols = ["element", "arm", "fold", "fraction", "epochs", "n_train_atoms", "seconds_per_epoch", "ms_per_atom_epoch",
            "train_seconds"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def _mp_refs() -> dict:
    from .protocols import _mp_refs as loaded  # one cached copy of the MP polymorphs for both modules

    return loaded()


def failure_summary(ft: FineTuning) -> dict:
    """Runs without a result, readable: the number not computed yet (budget) and each failure by run label."""
    label = {r.key: f"{r.element}/fold{r.fold}/{r.arm}/frac{r.fraction:g}" for r in ft.runs.itertuples()}
    pending = sum(v == "not computed yet" for v in ft.failures.values())
    failed = {label.get(k, k): v for k, v in ft.failures.items() if v != "not computed yet"}
    return {"not_computed_yet": pending, "failed": failed}
