"""Export of the store to the committed extended-XYZ files under ``data/dft/`` (plus ``manifest.json`` and the
convergence CSVs), and loading them back (:func:`load`)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from .. import datasets, paths
from ..store import ResultStore
from .calc import KIND_BULK, KIND_EOS, KIND_PAIRS, KIND_SLAB
from .pairs import pair_convergence_table
from .relax import relaxed_items, relaxed_table
from .running import default_store
from .settings import DEFAULT_SETTINGS, PAIR_SETTINGS, SURFACE_SETTINGS, DFTSettings
from .surfaces import (convergence_a0, convergence_elements, convergence_table, eos_results, surface_records,
                       surface_table)

PAIRS_FILE = "dft/pairs_pbe_r2scan.extxyz"
SURFACES_FILE = "dft/surfaces_pbe.extxyz"
EOS_FILE = "dft/eos_pbe.extxyz"
MANIFEST_FILE = "dft/manifest.json"
CONVERGENCE_FILE_PATTERN = "dft/convergence_{element}_gamma.csv"  #: one file per element checked (lower case)
CONVERGENCE_FILE = CONVERGENCE_FILE_PATTERN.format(element="cu")
PAIR_CONVERGENCE_FILE = "dft/convergence_pairs.csv"
RELAXED_FILE = "dft/surfaces_relaxed_pbe.csv"  #: γ of static vs relaxed dataset-2 slabs


def _atoms_from_record(rec) -> Any:
    from ase import Atoms

    return Atoms(numbers=rec["numbers"], positions=rec["positions_a"], cell=rec["cell_a"], pbc=rec["pbc"])


def _ok_frame(store: ResultStore, kind: str, settings: DFTSettings):
    df = store.frame(kind=kind)
    if df.empty:
        return df, df
    failed = df[df["status"] != "ok"]
    ok = df[df["status"] == "ok"]
    ok = ok[[s == settings.as_dict() for s in ok["settings"]]]
    return ok, failed


def _provenance_info(rec, prefix: str = "") -> dict:
    v = rec["versions"]
    return {f"{prefix}gpaw_version": v.get("gpaw", ""), f"{prefix}gpaw_data_version": v.get("gpaw-data", ""),
            f"{prefix}libxc_version": v.get("libxc", ""), f"{prefix}ase_version": v.get("ase", "")}


def _settings_info(settings: DFTSettings) -> dict:
    s = settings
    return {"code": "GPAW", "mode": "PW", "ecut_ev": s.ecut_ev, "kpt_density_per_inv_a": s.kpt_density_per_inv_a,
            "smearing": s.smearing, "smearing_width_ev": s.smearing_width_ev, "setups": s.setups,
            "settings_json": json.dumps(s.as_dict(), sort_keys=True, separators=(",", ":")).replace('"', "'")}


def _write_extxyz(frames: list, path: Path) -> None:
    """Deterministic extended XYZ (frames already sorted; written to a temporary file, then renamed)."""
    from ase.io import write

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    buf = io.StringIO()
    if frames:
        write(buf, frames, format="extxyz", write_results=False)
    tmp.write_text(buf.getvalue())
    tmp.replace(path)


def export(store: ResultStore | None = None, out_dir: Path | None = None,
           settings: DFTSettings = PAIR_SETTINGS, surface_settings: DFTSettings = SURFACE_SETTINGS) -> dict:
    """Write ``data/dft/{pairs_pbe_r2scan,surfaces_pbe,eos_pbe}.extxyz`` and ``manifest.json`` from the store.

    Pairs: one frame per structure with both functionals done (PBE and r2SCAN energies, forces, stresses; info
    ``energy_pbe_ev``, ``stress_r2scan_ev_per_a3`` (Voigt xx yy zz yz xz xy), arrays ``forces_pbe_ev_per_a``, ...).
    Surfaces: slab and oriented-bulk frames with γ in the slab frames. Provenance (settings, GPAW / gpaw-data /
    libxc versions) in every frame's info; failures listed with their reasons in the manifest.
    """
    store = store or default_store()
    store.checkpoint()  # merge the WAL into the database file, which is committed
    out_dir = Path(out_dir) if out_dir is not None else paths.PROJECT_DATA
    manifest: dict[str, Any] = {"settings": settings.as_dict(), "surface_settings": surface_settings.as_dict(),
                                "failures": {}, "counts": {},
                                "calc_seconds": {}}

    # dataset 1
    ok, failed = _ok_frame(store, KIND_PAIRS, settings)
    frames = []
    if not ok.empty:
        ok = ok.assign(sid=ok["item"].str.split("|").str[0])
        for sid, g in ok.groupby("sid", sort=True):
            by_f = None
            for _, h in g.groupby("structure_hash", sort=True):  # pair records of the very same structure
                cand = {r["functional"]: r for _, r in h.iterrows()}
                if {"pbe", "r2scan"} <= set(cand):
                    by_f = cand
                    break
            if by_f is None:
                continue
            atoms = _atoms_from_record(by_f["pbe"])
            proto = sid.split("-")[1]
            atoms.info.update({"id": sid, "prototype": proto, "formula": by_f["pbe"]["formula"],
                               **_settings_info(settings), **_provenance_info(by_f["pbe"])})
            for f in ("pbe", "r2scan"):
                r = by_f[f]
                atoms.info[f"energy_{f}_ev"] = r["energy_ev"]
                atoms.info[f"stress_{f}_ev_per_a3"] = np.array(r["stress_ev_per_a3"])
                atoms.info[f"magmom_{f}_bohr"] = r["magmom_total_bohr"] if r["magmom_total_bohr"] is not None else 0.0
                atoms.info[f"kpts_{f}"] = np.array(r["kpts"])
                atoms.arrays[f"forces_{f}_ev_per_a"] = np.array(r["forces_ev_per_a"])
            frames.append(atoms)
        manifest["calc_seconds"]["pairs"] = float(ok["seconds"].sum())
    _write_extxyz(frames, out_dir / PAIRS_FILE)
    manifest["counts"]["pairs_complete"] = len(frames)
    manifest["counts"]["pairs_single_points"] = int(len(ok))
    manifest["failures"]["pairs"] = {r["item"]: r["error"] for _, r in failed.iterrows()} if len(failed) else {}

    # E-V points
    ok, failed = _ok_frame(store, KIND_EOS, surface_settings)
    frames = []
    for _, r in (ok.sort_values("item").iterrows() if not ok.empty else []):
        atoms = _atoms_from_record(r)
        el, scale = r["item"].split("|")
        atoms.info.update({"id": f"eos-{el}-{scale}", "element": el, "scale": float(scale),
                           "energy_pbe_ev": r["energy_ev"], "stress_pbe_ev_per_a3": np.array(r["stress_ev_per_a3"]),
                           "kpts_pbe": np.array(r["kpts"]), **_settings_info(surface_settings),
                           **_provenance_info(r)})
        atoms.arrays["forces_pbe_ev_per_a"] = np.array(r["forces_ev_per_a"])
        frames.append(atoms)
    _write_extxyz(frames, out_dir / EOS_FILE)
    manifest["counts"]["eos_points"] = len(frames)
    manifest["failures"]["eos"] = {r["item"]: r["error"] for _, r in failed.iterrows()} if len(failed) else {}
    manifest["calc_seconds"]["eos"] = float(ok["seconds"].sum()) if not ok.empty else 0.0
    manifest["eos_fits"] = eos_results(store, surface_settings)

    # dataset 2
    records = surface_records(store, surface_settings)
    table = surface_table(store, surface_settings, records)
    frames, n_slab, n_bulk, cpu = [], 0, 0, 0.0
    failures = {}
    for r in records:
        info = r["info"]
        for kind, rec in (("oriented_bulk", r["bulk"]), ("slab", r["slab"])):
            name = f"{kind}-{info['element']}-{info['miller']}"
            if rec is None:
                continue
            if not rec.ok:
                failures[name] = rec.error
                continue
            p = rec.payload
            cpu += rec.seconds or 0.0
            n_slab += kind == "slab"
            n_bulk += kind == "oriented_bulk"
            atoms = _atoms_from_record(p)
            atoms.info.update({"id": name, "kind": kind, "element": info["element"], "miller": info["miller"],
                               "a0_a": info["a0_a"], "energy_pbe_ev": p["energy_ev"], "kpts_pbe": np.array(p["kpts"]),
                               **_settings_info(surface_settings), **_provenance_info(p)})
            if p["stress_ev_per_a3"] is not None:
                atoms.info["stress_pbe_ev_per_a3"] = np.array(p["stress_ev_per_a3"])
            row = table[(table["element"] == info["element"]) & (table["miller"] == info["miller"])]
            if kind == "slab":
                atoms.info.update({"n_layers": info["n_layers"], "area_a2": info["area_a2"],
                                   "vacuum_a": surface_settings.vacuum_a})
                if len(row):
                    atoms.info["gamma_j_per_m2"] = float(row["gamma_j_per_m2"].iloc[0])
                    atoms.info["e_bulk_pbe_ev_per_atom"] = float(row["e_bulk_ev_per_atom"].iloc[0])
            atoms.arrays["forces_pbe_ev_per_a"] = np.array(p["forces_ev_per_a"])
            frames.append(atoms)
    _write_extxyz(frames, out_dir / SURFACES_FILE)
    manifest["counts"]["slabs"] = n_slab
    manifest["counts"]["oriented_bulks"] = n_bulk
    manifest["counts"]["surface_energies"] = int(len(table))
    manifest["failures"]["surfaces"] = failures
    manifest["calc_seconds"]["surfaces"] = cpu
    manifest["calc_seconds"]["convergence"] = 0.0
    for el in convergence_elements(store):
        # the surface variants are relative to DEFAULT_SETTINGS
        conv = convergence_table(store, el, a0=convergence_a0(store, el), base=DEFAULT_SETTINGS)
        if conv.empty:
            continue
        # rows on dataset 2's own settings are production slabs, counted under "surfaces"
        manifest["calc_seconds"]["convergence"] += float(conv.loc[~conv["dataset2_settings"], "seconds"].sum())
        conv.round(6).to_csv(out_dir / CONVERGENCE_FILE_PATTERN.format(element=el.lower()), index=False)
    pconv = pair_convergence_table(store, settings)
    # the default variant is dataset 1 itself (counted under "pairs")
    manifest["calc_seconds"]["pairs_convergence"] = (float(pconv.loc[pconv["variant"] != "default", "seconds"].sum())
                                                     if not pconv.empty else 0.0)
    if not pconv.empty and (pconv["variant"] != "default").any():  # only once a variant exists to compare
        pconv.round(6).to_csv(out_dir / PAIR_CONVERGENCE_FILE, index=False)
    relaxed = relaxed_table(store, relaxed_items(store), SURFACE_SETTINGS)
    manifest["counts"]["relaxed_slabs"] = int((relaxed["error"] == "").sum())
    manifest["failures"]["relaxations"] = {f"{r.element}|{r.miller}": r.error for r in relaxed.itertuples()
                                           if r.error}
    manifest["calc_seconds"]["relaxations"] = float(relaxed["seconds"].sum())
    if not relaxed.empty:
        relaxed.round(6).to_csv(out_dir / RELAXED_FILE, index=False)
    from .label_convergence import LABEL_CONVERGENCE_FILE, convergence_frame
    from .training_export import export_training

    manifest["training"] = export_training(store, out_dir)
    manifest["calc_seconds"]["training"] = manifest["training"]["calc_seconds"]
    lconv = convergence_frame(store)
    if not lconv.empty:
        lconv.round(6).to_csv(out_dir / LABEL_CONVERGENCE_FILE, index=False)
        manifest["failures"]["label_convergence"] = lconv.attrs.get("failures", {})
    manifest["calc_seconds"]["label_convergence"] = float(lconv["seconds"].sum()) if not lconv.empty else 0.0
    # single-threaded wall time of the calculations (an upper bound on their CPU time on a shared machine)
    manifest["calc_hours_total"] = sum(manifest["calc_seconds"].values()) / 3600
    manifest["versions"] = _versions_in_store(store)
    manifest["surface_energies"] = (table.drop(columns=["slab_seconds", "bulk_seconds"]).round(6)
                                    .to_dict(orient="records") if not table.empty else [])
    path = out_dir / MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True, default=float) + "\n")
    return manifest


def _versions_in_store(store: ResultStore) -> list[dict]:
    seen = {}
    for kind in (KIND_PAIRS, KIND_EOS, KIND_SLAB, KIND_BULK):
        df = store.frame(kind=kind)
        if df.empty or "versions" not in df:
            continue
        for v in df["versions"].dropna():
            seen[json.dumps(v, sort_keys=True)] = v
    return [seen[k] for k in sorted(seen)]


def load(name: str):
    """Load one of the project's own DFT datasets (committed under ``data/dft/``): a list of ``ase.Atoms``.

    The datasets (gpaw-pbe-r2scan-pairs, gpaw-pbe-surfaces, gpaw-pbe-eos) are registered in
    :mod:`uipbench.datasets` with the file names below.
    """
    return datasets.load(name)
