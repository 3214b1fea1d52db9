"""Zero-shot check of pretrained models on the MatPES elemental solids (transfer paper, chapter 11).

Every model is loaded through the registry (:func:`uipbench.models.load_model`, weights checksum in the store key);
each single point is one engine task in the result store (``kind="single-point-energy"``), so a rerun only reads
the store. Energies in eV/atom.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..engine import RunSummary, Task, run_tasks
from ..store import ResultStore, make_key, structure_hash

KIND = "single-point-energy"
LANTHANIDES = tuple(["La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu"])


def _as_atoms(structure):
    from pymatgen.core import Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    return AseAtomsAdaptor.get_atoms(structure) if isinstance(structure, Structure) else structure


def energy_task(args: dict) -> dict:
    """One single-point energy per atom (eV/atom) of one structure with one registry model."""
    from ..models import load_model
    from ..surfaces.slabs import atoms_from_dict

    atoms = atoms_from_dict(args["atoms"])
    return {"energy_ev_per_atom": load_model(args["model"]).energy(atoms) / len(atoms), "n_atoms": len(atoms)}


def model_energies(
    structures: Mapping[str, object], model: str, store: ResultStore, progress: bool = True
) -> tuple[pd.DataFrame, RunSummary]:
    """Single-point energies per atom of ``structures`` (label -> ASE Atoms or pymatgen Structure) with registry
    ``model``, one structure at a time, stored under (model, weights checksum, structure hash).

    A structure the model cannot evaluate (e.g. an element outside its table) becomes a ``failed`` record with its
    reason. Returns (DataFrame label -> energy_ev_per_atom / status / error, run summary).
    """
    from ..models import weights_checksum
    from ..surfaces.slabs import atoms_to_dict

    weights = weights_checksum(model)
    tasks = []
    for label, s in structures.items():
        atoms = _as_atoms(s)
        key = make_key(kind=KIND, model=model, weights=weights, structure=structure_hash(atoms))
        tasks.append(
            Task(key=key, kind=KIND, model=model, item=str(label), args={"model": model, "atoms": atoms_to_dict(atoms)})
        )
    summary = run_tasks(energy_task, tasks, store, backend="serial", desc=model, progress=progress)
    rows = []
    for t in tasks:
        rec = store.get(t.key, with_array=False)
        rows.append(
            {
                "label": t.item,
                "status": rec.status,
                "energy_ev_per_atom": (rec.payload or {}).get("energy_ev_per_atom", np.nan),
                "error": rec.error or "",
            }
        )
    return pd.DataFrame(rows).set_index("label"), summary


def zero_shot_table(
    runs: Sequence[tuple[str, Mapping[str, dict], str]],
    store: ResultStore,
    model_refs: Mapping[str, pd.Series],
    mp_pbe_refs: Mapping[str, list],
    matpes_pbe: Mapping[str, dict],
    elements: Sequence[str] | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, dict]:
    """Model vs MatPES energy per atom of every elemental solid, for each ``(model, MatPES documents, functional)``.

    Context columns: ``in_model_atomref`` (the element has a reference in ``model_refs[model]``), ``lanthanide``,
    and the lowest Materials Project PBE polymorph minus MatPES PBE (the two PBE settings' offset).
    Returns (table, run summary per model).
    """
    rows, summaries = [], {}
    for model, docs, func in runs:
        els = sorted(docs) if elements is None else [e for e in elements if e in docs]
        pred, summaries[model] = model_energies({e: docs[e]["structure"] for e in els}, model, store, progress)
        for el, r in pred.iterrows():
            rows.append(
                {
                    "model": model,
                    "functional": func,
                    "element": el,
                    "n_sites": len(docs[el]["structure"]),
                    "status": r["status"],
                    "error": r["error"],
                    "chgnet_ev_per_atom": r["energy_ev_per_atom"],
                    "matpes_ev_per_atom": float(docs[el]["energy_per_atom"]),
                }
            )
    zs = pd.DataFrame(rows)
    zs["error_ev_per_atom"] = zs["chgnet_ev_per_atom"] - zs["matpes_ev_per_atom"]
    zs["in_model_atomref"] = [
        bool(np.isfinite(model_refs[m].get(e, np.nan))) for m, e in zip(zs["model"], zs["element"], strict=True)
    ]
    zs["lanthanide"] = zs["element"].isin(LANTHANIDES)
    zs["mp_pbe_lowest_minus_matpes_pbe_ev_per_atom"] = [
        min(d["energy_per_atom"] for d in mp_pbe_refs[e]) - float(matpes_pbe[e]["energy_per_atom"])
        if e in mp_pbe_refs
        else np.nan
        for e in zs["element"]
    ]
    return zs, summaries


def zero_shot_stats(zs: pd.DataFrame, pbe_model: str = "chgnet-0.3.0") -> dict:
    """Per model: MAE, median error, MAE after removing the median offset, and the MAE without lanthanides and
    elements outside the model's AtomRef; for ``pbe_model`` also how far its errors follow the offset between the
    Materials Project and MatPES PBE settings."""
    from .energy_shift import regression_stats

    out = {}
    for model, g in zs.groupby("model"):
        err = g["error_ev_per_atom"].dropna()
        core = g[g["in_model_atomref"] & ~g["lanthanide"]]["error_ev_per_atom"].dropna()
        out[model] = {
            "n": int(len(err)),
            "n_failed": int((g["status"] != "ok").sum()),
            "mae_ev_per_atom": float(err.abs().mean()),
            "median_error_ev_per_atom": float(err.median()),
            "mae_after_median_offset_ev_per_atom": float((err - err.median()).abs().mean()),
            "n_not_in_model_atomref": int((~g["in_model_atomref"]).sum()),
            "n_excluding_lanthanides_and_missing_atomref": int(len(core)),
            "mae_excluding_lanthanides_and_missing_atomref_ev_per_atom": float(core.abs().mean()),
        }
    pbe_rows = zs[zs["model"] == pbe_model]
    if pbe_model in out:
        out[pbe_model]["pearson_r_error_vs_mp_minus_matpes_settings_offset"] = regression_stats(
            pbe_rows["mp_pbe_lowest_minus_matpes_pbe_ev_per_atom"], pbe_rows["error_ev_per_atom"]
        )["pearson_r"]
    settings = pbe_rows["mp_pbe_lowest_minus_matpes_pbe_ev_per_atom"].dropna()
    out["mp_pbe_lowest_polymorph_minus_matpes_pbe"] = {
        "n": int(len(settings)),
        "median_ev_per_atom": float(settings.median()),
        "mean_abs_ev_per_atom": float(settings.abs().mean()),
    }
    return out
