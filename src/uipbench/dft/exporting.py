"""Export of the store to the committed extended-XYZ files under ``data/dft/`` (plus ``manifest.json`` and the
convergence CSVs), and loading them back (:func:`load`).

One exporter per dataset (:func:`export_pairs`, :func:`export_eos`, :func:`export_surfaces`,
:func:`export_convergence`, :func:`export_relaxations`, :func:`export_label_convergence`; the training set is
:func:`uipbench.dft.training_export.export_training`): each reads the store for its kind once, writes its files
and returns its manifest section, which :func:`export` composes into ``manifest.json``. The E-V fit is computed
once (by :func:`export_eos`) and passed down to the surfaces, the convergence checks and the relaxations.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from .. import datasets, paths
from ..store import ResultStore
from .calc import KIND_BULK, KIND_EOS, KIND_PAIRS, KIND_SLAB
from .eos import eos_results_from_frame
from .pairs import pair_convergence_table
from .relax import relaxed_items, relaxed_table
from .running import default_store
from .settings import DEFAULT_SETTINGS, PAIR_SETTINGS, SURFACE_SETTINGS, DFTSettings
from .surface_convergence import convergence_a0, convergence_elements, convergence_table
from .surfaces import surface_records, surface_table

PAIRS_FILE = "dft/pairs_pbe_r2scan.extxyz"
SURFACES_FILE = "dft/surfaces_pbe.extxyz"
EOS_FILE = "dft/eos_pbe.extxyz"
MANIFEST_FILE = "dft/manifest.json"
CONVERGENCE_FILE_PATTERN = "dft/convergence_{element}_gamma.csv"  #: one file per element checked (lower case)
CONVERGENCE_FILE = CONVERGENCE_FILE_PATTERN.format(element="cu")
PAIR_CONVERGENCE_FILE = "dft/convergence_pairs.csv"
RELAXED_FILE = "dft/surfaces_relaxed_pbe.csv"  #: γ of static vs relaxed dataset-2 slabs

#: manifest entries that every section may add to (merged); any other key of a section is set as it is
_MERGED = ("counts", "failures", "calc_seconds")


def _atoms_from_record(rec) -> Any:
    from ase import Atoms

    return Atoms(numbers=rec["numbers"], positions=rec["positions_a"], cell=rec["cell_a"], pbc=rec["pbc"])


def _split(df, settings: DFTSettings):
    """(ok records of ``settings``, failed records) of one kind's ``store.frame``."""
    if df.empty:
        return df, df
    failed = df[df["status"] != "ok"]
    ok = df[df["status"] == "ok"]
    ok = ok[[s == settings.as_dict() for s in ok["settings"]]] if "settings" in ok else ok.iloc[0:0]
    return ok, failed


def _failures(failed) -> dict[str, str]:
    return {r["item"]: r["error"] for _, r in failed.iterrows()} if len(failed) else {}


def _versions(*frames) -> dict[str, dict]:
    """Software versions of every record in ``frames`` (any status or settings), keyed by their JSON."""
    seen = {}
    for df in frames:
        if df.empty or "versions" not in df:
            continue
        for v in df["versions"].dropna():
            seen[json.dumps(v, sort_keys=True)] = v
    return seen


def _write_csv(df, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.round(6).to_csv(path, index=False)


def _provenance_info(rec, prefix: str = "") -> dict:
    v = rec["versions"]
    return {
        f"{prefix}gpaw_version": v.get("gpaw", ""),
        f"{prefix}gpaw_data_version": v.get("gpaw-data", ""),
        f"{prefix}libxc_version": v.get("libxc", ""),
        f"{prefix}ase_version": v.get("ase", ""),
    }


def _settings_info(settings: DFTSettings) -> dict:
    s = settings
    return {
        "code": "GPAW",
        "mode": "PW",
        "ecut_ev": s.ecut_ev,
        "kpt_density_per_inv_a": s.kpt_density_per_inv_a,
        "smearing": s.smearing,
        "smearing_width_ev": s.smearing_width_ev,
        "setups": s.setups,
        "settings_json": json.dumps(s.as_dict(), sort_keys=True, separators=(",", ":")).replace('"', "'"),
    }


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


# ----------------------------------------------------------------------------------------------------------------
# dataset 1


def _complete_pairs(ok):
    """(structure id, {functional: record}) of every structure with both PBE and r2SCAN done, sorted by id."""
    ok = ok.assign(sid=ok["item"].str.split("|").str[0])
    for sid, g in ok.groupby("sid", sort=True):
        for _, h in g.groupby("structure_hash", sort=True):  # pair records of the very same structure
            cand = {r["functional"]: r for _, r in h.iterrows()}
            if {"pbe", "r2scan"} <= set(cand):
                yield sid, cand
                break


def _pair_frame(sid: str, by_f: dict, settings: DFTSettings):
    atoms = _atoms_from_record(by_f["pbe"])
    atoms.info.update(
        {
            "id": sid,
            "prototype": sid.split("-")[1],
            "formula": by_f["pbe"]["formula"],
            **_settings_info(settings),
            **_provenance_info(by_f["pbe"]),
        }
    )
    return set_pair_labels(atoms, by_f)


def set_pair_labels(atoms, by_functional: dict):
    """Write each functional's energy, stress, moment, k-mesh (info) and forces (arrays) into ``atoms``."""
    for f, r in by_functional.items():
        atoms.info[f"energy_{f}_ev"] = r["energy_ev"]
        atoms.info[f"stress_{f}_ev_per_a3"] = np.array(r["stress_ev_per_a3"])
        atoms.info[f"magmom_{f}_bohr"] = r["magmom_total_bohr"] if r["magmom_total_bohr"] is not None else 0.0
        atoms.info[f"kpts_{f}"] = np.array(r["kpts"])
        atoms.arrays[f"forces_{f}_ev_per_a"] = np.array(r["forces_ev_per_a"])
    return atoms


def export_pairs(store: ResultStore, out_dir: Path, settings: DFTSettings = PAIR_SETTINGS) -> dict:
    """Dataset 1: one frame per structure with both functionals done (PBE and r2SCAN energies, forces, stresses;
    info ``energy_pbe_ev``, ``stress_r2scan_ev_per_a3`` (Voigt xx yy zz yz xz xy), arrays
    ``forces_pbe_ev_per_a``, ...)."""
    df = store.frame(kind=KIND_PAIRS)
    ok, failed = _split(df, settings)
    frames = [_pair_frame(sid, by_f, settings) for sid, by_f in _complete_pairs(ok)] if not ok.empty else []
    _write_extxyz(frames, out_dir / PAIRS_FILE)
    section = {
        "counts": {"pairs_complete": len(frames), "pairs_single_points": len(ok)},
        "failures": {"pairs": _failures(failed)},
        "calc_seconds": {},
        "versions": _versions(df),
    }
    if not ok.empty:
        section["calc_seconds"]["pairs"] = float(ok["seconds"].sum())
    return section


# ----------------------------------------------------------------------------------------------------------------
# E-V points and dataset 2


def _eos_frame(r, settings: DFTSettings):
    atoms = _atoms_from_record(r)
    el, scale = r["item"].split("|")
    atoms.info.update(
        {
            "id": f"eos-{el}-{scale}",
            "element": el,
            "scale": float(scale),
            "energy_pbe_ev": r["energy_ev"],
            "stress_pbe_ev_per_a3": np.array(r["stress_ev_per_a3"]),
            "kpts_pbe": np.array(r["kpts"]),
            **_settings_info(settings),
            **_provenance_info(r),
        }
    )
    atoms.arrays["forces_pbe_ev_per_a"] = np.array(r["forces_ev_per_a"])
    return atoms


def export_eos(store: ResultStore, out_dir: Path, settings: DFTSettings = SURFACE_SETTINGS) -> dict:
    """E-V points of ``settings``, and their fits (section ``eos_fits``, the one E-V fit of an export)."""
    df = store.frame(kind=KIND_EOS)
    ok, failed = _split(df, settings)
    frames = [_eos_frame(r, settings) for _, r in ok.sort_values("item").iterrows()] if not ok.empty else []
    _write_extxyz(frames, out_dir / EOS_FILE)
    return {
        "counts": {"eos_points": len(frames)},
        "failures": {"eos": _failures(failed)},
        "calc_seconds": {"eos": float(ok["seconds"].sum()) if not ok.empty else 0.0},
        "eos_fits": eos_results_from_frame(df, settings),
        "versions": _versions(df),
    }


def _surface_frame(kind: str, rec, info: dict, row, settings: DFTSettings):
    p = rec.payload
    atoms = _atoms_from_record(p)
    atoms.info.update(
        {
            "id": f"{kind}-{info['element']}-{info['miller']}",
            "kind": kind,
            "element": info["element"],
            "miller": info["miller"],
            "a0_a": info["a0_a"],
            "energy_pbe_ev": p["energy_ev"],
            "kpts_pbe": np.array(p["kpts"]),
            **_settings_info(settings),
            **_provenance_info(p),
        }
    )
    if p["stress_ev_per_a3"] is not None:
        atoms.info["stress_pbe_ev_per_a3"] = np.array(p["stress_ev_per_a3"])
    if kind == "slab":
        atoms.info.update({"n_layers": info["n_layers"], "area_a2": info["area_a2"], "vacuum_a": settings.vacuum_a})
        if len(row):
            atoms.info["gamma_j_per_m2"] = float(row["gamma_j_per_m2"].iloc[0])
            atoms.info["e_bulk_pbe_ev_per_atom"] = float(row["e_bulk_ev_per_atom"].iloc[0])
    atoms.arrays["forces_pbe_ev_per_a"] = np.array(p["forces_ev_per_a"])
    return atoms


def export_surfaces(
    store: ResultStore, out_dir: Path, settings: DFTSettings = SURFACE_SETTINGS, eos: dict[str, dict] | None = None
) -> dict:
    """Dataset 2: slab and oriented-bulk frames (γ in the slab frames) at the lattice constants of the E-V fits
    ``eos`` (computed when not given); the γ table as section ``surface_energies``."""
    records = surface_records(store, settings, eos=eos)
    table = surface_table(store, settings, records)
    frames, failures, cpu = [], {}, 0.0
    for r in records:
        info = r["info"]
        row = table[(table["element"] == info["element"]) & (table["miller"] == info["miller"])]
        for kind, rec in (("oriented_bulk", r["bulk"]), ("slab", r["slab"])):
            if rec is None:
                continue
            if not rec.ok:
                failures[f"{kind}-{info['element']}-{info['miller']}"] = rec.error
                continue
            cpu += rec.seconds or 0.0
            frames.append(_surface_frame(kind, rec, info, row, settings))
    _write_extxyz(frames, out_dir / SURFACES_FILE)
    n_slab = sum(at.info["kind"] == "slab" for at in frames)
    energies = (
        table.drop(columns=["slab_seconds", "bulk_seconds"]).round(6).to_dict(orient="records")
        if not table.empty
        else []
    )
    return {
        "counts": {"slabs": n_slab, "oriented_bulks": len(frames) - n_slab, "surface_energies": len(table)},
        "failures": {"surfaces": failures},
        "calc_seconds": {"surfaces": cpu},
        "surface_energies": energies,
        "versions": _versions(store.frame(kind=KIND_SLAB), store.frame(kind=KIND_BULK)),
    }


# ----------------------------------------------------------------------------------------------------------------
# convergence checks and relaxations


def export_convergence(
    store: ResultStore, out_dir: Path, pair_settings: DFTSettings = PAIR_SETTINGS, eos: dict[str, dict] | None = None
) -> dict:
    """The surface-energy convergence CSV of every element checked (at :func:`convergence_a0`, with the E-V fits
    ``eos`` of dataset 2's settings) and dataset 1's (once a variant exists to compare)."""
    seconds = 0.0
    for el in convergence_elements(store):
        # the surface variants are relative to DEFAULT_SETTINGS
        conv = convergence_table(store, el, a0=convergence_a0(store, el, eos=eos), base=DEFAULT_SETTINGS)
        if conv.empty:
            continue
        # rows on dataset 2's own settings are production slabs, counted under "surfaces"
        seconds += float(conv.loc[~conv["dataset2_settings"], "seconds"].sum())
        _write_csv(conv, out_dir / CONVERGENCE_FILE_PATTERN.format(element=el.lower()))
    pconv = pair_convergence_table(store, pair_settings)
    variants = pconv["variant"] != "default" if not pconv.empty else None  # the default variant is dataset 1
    if not pconv.empty and variants.any():  # only once a variant exists to compare
        _write_csv(pconv, out_dir / PAIR_CONVERGENCE_FILE)
    pair_seconds = float(pconv.loc[variants, "seconds"].sum()) if not pconv.empty else 0.0  # "pairs" has the rest
    return {"calc_seconds": {"convergence": seconds, "pairs_convergence": pair_seconds}}


def export_relaxations(
    store: ResultStore, out_dir: Path, settings: DFTSettings = SURFACE_SETTINGS, eos: dict[str, dict] | None = None
) -> dict:
    """γ of static vs relaxed dataset-2 slabs for every relaxation in the store (E-V fits ``eos`` of ``settings``)."""
    relaxed = relaxed_table(store, relaxed_items(store), settings, eos=eos)
    if not relaxed.empty:
        _write_csv(relaxed, out_dir / RELAXED_FILE)
    return {
        "counts": {"relaxed_slabs": int((relaxed["error"] == "").sum())},
        "failures": {"relaxations": {f"{r.element}|{r.miller}": r.error for r in relaxed.itertuples() if r.error}},
        "calc_seconds": {"relaxations": float(relaxed["seconds"].sum())},
    }


def export_label_convergence(store: ResultStore, out_dir: Path) -> dict:
    """The label-convergence study of the training set (:mod:`uipbench.dft.label_convergence`)."""
    from .label_convergence import LABEL_CONVERGENCE_FILE, convergence_frame

    lconv = convergence_frame(store)
    section: dict[str, Any] = {
        "calc_seconds": {"label_convergence": float(lconv["seconds"].sum()) if not lconv.empty else 0.0}
    }
    if not lconv.empty:
        _write_csv(lconv, out_dir / LABEL_CONVERGENCE_FILE)
        section["failures"] = {"label_convergence": lconv.attrs.get("failures", {})}
    return section


def _training_section(store: ResultStore, out_dir: Path) -> dict:
    from .training_export import export_training

    training = export_training(store, out_dir)
    return {"training": training, "calc_seconds": {"training": training["calc_seconds"]}}


# ----------------------------------------------------------------------------------------------------------------
# the manifest


def export(
    store: ResultStore | None = None,
    out_dir: Path | None = None,
    settings: DFTSettings = PAIR_SETTINGS,
    surface_settings: DFTSettings = SURFACE_SETTINGS,
) -> dict:
    """Write every dataset's files under ``data/dft/`` (or ``out_dir/dft/``) and ``manifest.json`` from the store.

    Provenance (settings, GPAW / gpaw-data / libxc versions) in every frame's info; failures listed with their
    reasons in the manifest. ``settings``: dataset 1's; ``surface_settings``: dataset 2's (E-V points, slabs,
    convergence a0, relaxations).
    """
    store = store or default_store()
    store.checkpoint()  # merge the WAL into the database file, which is committed
    out_dir = Path(out_dir) if out_dir is not None else paths.PROJECT_DATA
    manifest: dict[str, Any] = {
        "settings": settings.as_dict(),
        "surface_settings": surface_settings.as_dict(),
        "failures": {},
        "counts": {},
        "calc_seconds": {},
    }
    versions: dict[str, dict] = {}

    def add(section: dict) -> dict:
        versions.update(section.pop("versions", {}))
        for key, value in section.items():
            if key in _MERGED:
                manifest[key].update(value)
            else:
                manifest[key] = value
        return section

    add(export_pairs(store, out_dir, settings))
    eos = add(export_eos(store, out_dir, surface_settings))["eos_fits"]
    add(export_surfaces(store, out_dir, surface_settings, eos))
    add(export_convergence(store, out_dir, settings, eos))
    add(export_relaxations(store, out_dir, surface_settings, eos))
    add(_training_section(store, out_dir))
    add(export_label_convergence(store, out_dir))
    # single-threaded wall time of the calculations (an upper bound on their CPU time on a shared machine)
    manifest["calc_hours_total"] = sum(manifest["calc_seconds"].values()) / 3600
    manifest["versions"] = [versions[k] for k in sorted(versions)]
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, sort_keys=True, default=float) + "\n")
    return manifest


def load(name: str):
    """Load one of the project's own DFT datasets (committed under ``data/dft/``): a list of ``ase.Atoms``.

    The datasets (gpaw-pbe-r2scan-pairs, gpaw-pbe-surfaces, gpaw-pbe-eos) are registered in
    :mod:`uipbench.datasets` with the file names below.
    """
    return datasets.load(name)
