"""Surface-energy protocols, run as engine tasks into the result store.

* ``static``: single points on the DFT geometries, gamma = (E_slab - N eps_bulk) / (2A), both energies from the
  model.
* ``relaxed``: the slab's OUC relaxed with the model (positions and cell, ``FrechetCellFilter``); the slab mapped
  onto the model's lattice by the same affine strain (applied to its cell and atoms), then its positions relaxed
  with the cell fixed (FIRE, ``fmax`` eV/Å, ``max_steps``). Non-convergence and exploding energies are failures
  with their reason.

**Bulk reference eps_bulk** (:func:`results_table`, column ``bulk_reference``). The default is the slab's
*matched Materials Project polymorph* (``mp_ref_index`` of :func:`references`): ``static``: the model's energy per
atom of the MP polymorph structure (single point); ``relaxed``: that polymorph relaxed **once per (model,
polymorph)**, tightly (cell and positions, FIRE + ``FrechetCellFilter`` to :data:`BULK_SETTINGS` ``fmax`` 1e-3
eV/Å), and reused for every facet of the element (:func:`bulk_tasks`, kind ``surface-bulk-ideal``). The slab
energies are those already stored (no slab is re-evaluated): gamma_relaxed = (E_slab_relaxed - N
eps_polymorph_relaxed) / (2A). The relaxed slab was relaxed on the lattice of *its own OUC's* relaxation (fmax
0.05 eV/Å), while its energy reference is the tightly relaxed polymorph: the two lattices differ by the volume
mismatch ``lattice_volume_mismatch`` (relaxed OUC / relaxed polymorph volume per atom - 1) that the results table
reports per slab, so the size of that inconsistency is measured, not assumed. The models run in the torch dtype
they were built for (CHGNet, SevenNet: float32; the ASE side is float64); a polymorph that does not reach the
tight ``fmax`` is a failure with its reason, and its slabs fall back to the OUC.

The *fallback* reference is today's slab-interior OUC (:func:`uipbench.surfaces.bulk_references.oriented_bulk_cell`,
evaluated in the slab task): used for slabs without an MP match and where the polymorph evaluation failed; the
column ``bulk_reference_reason`` says why. The OUC-based gamma is kept for every slab
(``gamma_model_ouc_j_per_m2``) so the chapter can show how much the choice moves gamma.

Every (model, weights checksum, slab, OUC, protocol, settings) evaluation is one :class:`~uipbench.engine.Task`
whose key hashes all of them, and likewise every (model, weights, polymorph structure, protocol, settings) bulk
evaluation; :func:`run_surfaces` sends them through :func:`uipbench.engine.run_tasks`, so a rerun only computes
what is missing, on any backend. The slab references (OUC derivation + Materials Project match, about 0.07 s per
slab) are persisted the same way (:func:`references`).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from ase import Atoms

from .. import engine
from ..figures import SIG_DIGITS, round_sig
from ..miller import parse_miller, parse_surface_id
from ..store import ResultStore, make_key, structure_hash
from .bulk_references import match_mp_bulk, oriented_bulk_cell
from .slabs import atoms_from_dict, atoms_to_dict, slab_area, surface_energy_j_per_m2

PROTOCOLS = ("static", "relaxed")
#: bump when the evaluation code changes in a way that changes numbers (invalidates stored results)
PROTOCOL_VERSION = 1
REFERENCE_VERSION = 1
#: bump when the ideal-bulk evaluation changes numbers
BULK_VERSION = 1
BULK_KIND = "surface-bulk-ideal"
#: values of the ``bulk_reference`` column of :func:`results_table`
IDEAL, OUC = "mp-polymorph", "ouc"

DEFAULT_SETTINGS: dict[str, dict] = {
    "static": {},
    "relaxed": {"fmax_ev_per_a": 0.05, "max_steps_bulk": 300, "max_steps_slab": 500, "optimizer": "FIRE"},
}
#: settings of the ideal-bulk (matched MP polymorph) evaluation, per protocol: relaxed tightly, once per polymorph
BULK_SETTINGS: dict[str, dict] = {
    "static": {},
    "relaxed": {"fmax_ev_per_a": 1e-3, "max_steps": 2000, "optimizer": "FIRE", "filter": "FrechetCellFilter"},
}


# ----------------------------------------------------------------------------------------------------------------
# slab references (OUC + MP match), persisted


_MP_REFS: dict | None = None


def _mp_refs() -> dict:
    global _MP_REFS
    if _MP_REFS is None:
        from .. import datasets

        _MP_REFS = datasets.load("mp-pbe-element-refs")
    return _MP_REFS


def _reference_task(args: dict) -> dict:
    slab = atoms_from_dict(args["slab"])
    ouc, why = oriented_bulk_cell(slab)
    out: dict[str, Any] = {"ouc_found": ouc is not None, "ouc_reason": why}
    if ouc is None:
        return out
    out.update(ouc=atoms_to_dict(ouc), ouc_tol=ouc.info.get("ouc_tol"))
    m = match_mp_bulk(ouc, _mp_refs().get(args["element"], []))
    out.update({k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in m.items()})
    return out


#: reference columns of a slab without an OUC or an MP match (filled in by :func:`_reference_row`)
_NO_REFERENCE = {
    "ouc": None, "ouc_found": False, "n_ouc": 0, "ouc_tol": np.nan, "matched": False, "mp_ref_index": -1,
    "eps_dft_ev_per_atom": np.nan, "match_rms": np.nan, "volume_ratio": np.nan, "reason": "",
}  # fmt: skip


def _reference_key(r) -> str | None:
    if r["atoms"] is None:
        return None
    return make_key(
        kind="surface-reference", slab=structure_hash(r["atoms"]), element=r["element"], version=REFERENCE_VERSION
    )


def _reference_row(r, key: str | None, rec) -> dict:
    """The references table's row of slab ``r`` from its stored reference record ``rec``."""
    row = {"id": r["id"], "element": r["element"], "miller": r["miller"], "n_atoms": r["n_atoms"],
           "area_a2": r["area_a2"], "gamma_dft_j_per_m2": r["gamma_j_per_m2"],
           "gamma_dft_ev_per_a2": r["gamma_ev_per_a2"], **_NO_REFERENCE}  # fmt: skip
    if key is None:
        return {**row, "reason": f"unreadable CIF: {r['parse_error']}"}
    if rec is None or not rec.ok:
        return {**row, "reason": f"reference evaluation failed: {rec.error if rec else 'not computed'}"}
    p = rec.payload
    if not p["ouc_found"]:
        return {**row, "reason": f"no OUC: {p['ouc_reason']}"}
    ouc = atoms_from_dict(p["ouc"])
    row.update(ouc=ouc, ouc_found=True, n_ouc=len(ouc), ouc_tol=p.get("ouc_tol") or np.nan,
               matched=bool(p["matched"]), mp_ref_index=p["mp_ref_index"])  # fmt: skip
    if not p["matched"]:
        return {**row, "reason": f"no MP match: {p['reason']}"}
    row.update({k: p[k] for k in ("eps_dft_ev_per_atom", "match_rms", "volume_ratio")})
    return row


def references(
    slabs: pd.DataFrame,
    store: ResultStore,
    backend: str = "serial",
    n_workers: int = 1,
    scheduler=None,
    progress: bool = True,
) -> pd.DataFrame:
    """Per-slab bulk references (OUC, MP match, DFT eps_bulk, reconstructed DFT slab energy), from the store.

    Columns: id, element, miller, n_atoms, area_a2, gamma_dft_j_per_m2, gamma_dft_ev_per_a2, ouc (Atoms or None),
    ouc_found, n_ouc, ouc_tol, matched, mp_ref_index (index into the element's ``mp-pbe-element-refs`` list),
    eps_dft_ev_per_atom, match_rms, volume_ratio (OUC / MP polymorph volume per atom), ouc_volume_a3_per_atom,
    e_slab_dft_ev (reconstructed: 2 A gamma + N eps_bulk), e_slab_dft_ev_per_atom, and ``reason`` ('' when the
    slab has an OUC and a DFT bulk match, else why not).
    """
    keys = [_reference_key(r) for _, r in slabs.iterrows()]
    tasks = [
        engine.Task(key=key, kind="surface-reference", model="", item=r["id"],
                    args={"slab": atoms_to_dict(r["atoms"]), "element": r["element"]})
        for (_, r), key in zip(slabs.iterrows(), keys, strict=True) if key is not None
    ]  # fmt: skip
    engine.run_tasks(_reference_task, tasks, store, backend=backend, n_workers=n_workers, scheduler=scheduler,
                     desc="OUC + MP match", progress=progress)  # fmt: skip
    rows = [_reference_row(r, key, store.get(key, with_array=False) if key else None)
            for (_, r), key in zip(slabs.iterrows(), keys, strict=True)]  # fmt: skip
    out = pd.DataFrame(rows)
    out["ouc_volume_a3_per_atom"] = [o.get_volume() / len(o) if o is not None else np.nan for o in out["ouc"]]
    # reconstructed DFT slab energy (the data set has gamma, not slab total energies): E = 2 A gamma + N eps_bulk
    out["e_slab_dft_ev"] = 2 * out["area_a2"] * out["gamma_dft_ev_per_a2"] + out["n_atoms"] * out["eps_dft_ev_per_atom"]
    out["e_slab_dft_ev_per_atom"] = out["e_slab_dft_ev"] / out["n_atoms"]
    return out


# ----------------------------------------------------------------------------------------------------------------
# model evaluations


def evaluate(args: dict) -> dict:
    """One surface evaluation (engine task function): dispatches on ``args["protocol"]``."""
    from ..models import load_model

    model = load_model(args["model"], args.get("model_path"))
    slab, ouc = atoms_from_dict(args["slab"]), atoms_from_dict(args["ouc"])
    if args["protocol"] == "static":
        return _static(model, slab, ouc)
    if args["protocol"] == "relaxed":
        return _relaxed(model, slab, ouc, {**DEFAULT_SETTINGS["relaxed"], **args.get("settings", {})})
    raise ValueError(f"unknown protocol {args['protocol']!r}; choose one of {PROTOCOLS}")


def _check_energy(e: float, what: str) -> None:
    if not np.isfinite(e):
        raise FloatingPointError(f"non-finite {what} energy ({e})")


def _static(model, slab: Atoms, ouc: Atoms) -> dict:
    t0 = time.perf_counter()
    e_ouc = model.energy(ouc)
    e_slab = model.energy(slab)
    model_seconds = time.perf_counter() - t0
    _check_energy(e_ouc, "bulk")
    _check_energy(e_slab, "slab")
    eps = e_ouc / len(ouc)
    area = slab_area(slab)
    return {
        "eps_bulk_ev_per_atom": eps,
        "e_slab_ev": e_slab,
        "n_atoms": len(slab),
        "area_a2": area,
        "gamma_j_per_m2": surface_energy_j_per_m2(e_slab, len(slab), eps, area),
        "model_seconds": model_seconds,
    }


def _relaxed(model, slab: Atoms, ouc: Atoms, settings: dict) -> dict:
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    fmax = settings["fmax_ev_per_a"]
    t0 = time.perf_counter()
    bulk = ouc.copy()
    bulk.calc = model.calc
    opt = FIRE(FrechetCellFilter(bulk), logfile=None)
    bulk_ok = opt.run(fmax=fmax, steps=settings["max_steps_bulk"])
    bulk_steps = opt.get_number_of_steps()
    if not bulk_ok:
        raise RuntimeError(f"bulk relaxation not converged to {fmax} eV/Å in {bulk_steps} steps")
    e_bulk = bulk.get_potential_energy()
    _check_energy(e_bulk, "bulk")
    eps = e_bulk / len(bulk)
    # the affine map of the OUC's relaxation, applied to the slab (cell and atoms: fractional coordinates kept)
    strain = np.linalg.solve(np.asarray(ouc.cell[:]), np.asarray(bulk.cell[:]))
    s = slab.copy()
    s.set_cell(np.asarray(slab.cell[:]) @ strain, scale_atoms=True)
    s.calc = model.calc
    e_start = s.get_potential_energy()
    opt = FIRE(s, logfile=None)
    slab_ok = opt.run(fmax=fmax, steps=settings["max_steps_slab"])
    slab_steps = opt.get_number_of_steps()
    if not slab_ok:
        raise RuntimeError(f"slab relaxation not converged to {fmax} eV/Å in {slab_steps} steps")
    e_slab = s.get_potential_energy()
    model_seconds = time.perf_counter() - t0
    _check_energy(e_slab, "slab")
    area = slab_area(s)
    gamma = surface_energy_j_per_m2(e_slab, len(s), eps, area)
    if e_slab / len(s) < eps - 0.5 or gamma < -0.5:
        raise FloatingPointError(
            f"exploding slab energy: {e_slab / len(s):.3f} eV/atom vs bulk {eps:.3f} eV/atom (gamma {gamma:.2f} J/m^2)"
        )
    lin = np.abs(np.linalg.eigvals(strain) - 1).max()
    return {
        "eps_bulk_ev_per_atom": eps,
        "e_slab_ev": e_slab,
        "e_slab_unrelaxed_ev": e_start,
        "n_atoms": len(s),
        "area_a2": area,
        "gamma_j_per_m2": gamma,
        "bulk_steps": bulk_steps,
        "slab_steps": slab_steps,
        "max_strain": float(lin),
        "volume_change": float(np.linalg.det(strain) - 1),
        "model_seconds": model_seconds,
    }


# ----------------------------------------------------------------------------------------------------------------
# ideal bulk references: the matched MP polymorph, evaluated once per (model, polymorph)


def polymorph_atoms(element: str, mp_ref_index: int) -> Atoms:
    """The MP PBE polymorph ``mp_ref_index`` of ``element`` (``mp-pbe-element-refs``) as ASE Atoms."""
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = AseAtomsAdaptor.get_atoms(_mp_refs()[element][int(mp_ref_index)]["structure"])
    atoms.pbc = True
    return atoms


def evaluate_bulk(args: dict) -> dict:
    """One ideal-bulk evaluation (engine task function): the polymorph ``args["structure"]`` with ``args["model"]``."""
    from ..models import load_model

    model = load_model(args["model"], args.get("model_path"))
    atoms = atoms_from_dict(args["structure"])
    if args["protocol"] == "static":
        return _bulk_static(model, atoms)
    if args["protocol"] == "relaxed":
        return _bulk_relaxed(model, atoms, {**BULK_SETTINGS["relaxed"], **args.get("settings", {})})
    raise ValueError(f"unknown protocol {args['protocol']!r}; choose one of {PROTOCOLS}")


def _bulk_static(model, atoms: Atoms) -> dict:
    """The model's energy per atom of the polymorph as it is (single point, the same energy path as the slabs)."""
    t0 = time.perf_counter()
    e = model.energy(atoms)
    _check_energy(e, "bulk")
    return {
        "eps_bulk_ev_per_atom": e / len(atoms),
        "n_atoms": len(atoms),
        "volume_a3_per_atom": atoms.get_volume() / len(atoms),
        "model_seconds": time.perf_counter() - t0,
    }


def _bulk_relaxed(model, atoms: Atoms, settings: dict) -> dict:
    """The polymorph relaxed tightly with the model (cell and positions, FIRE + FrechetCellFilter)."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    if (settings.get("optimizer"), settings.get("filter")) != ("FIRE", "FrechetCellFilter"):
        raise ValueError(f"only FIRE + FrechetCellFilter are implemented, got {settings}")
    fmax = settings["fmax_ev_per_a"]
    t0 = time.perf_counter()
    a = atoms.copy()
    a.calc = model.calc
    e_start = a.get_potential_energy()
    filt = FrechetCellFilter(a)
    opt = FIRE(filt, logfile=None)
    ok = opt.run(fmax=fmax, steps=settings["max_steps"])
    steps = opt.get_number_of_steps()
    reached = float(np.linalg.norm(filt.get_forces(), axis=1).max())
    if not ok:
        raise RuntimeError(
            f"polymorph relaxation not converged to {fmax} eV/Å in {steps} steps (reached {reached:.2g} eV/Å)"
        )
    e = a.get_potential_energy()
    _check_energy(e, "bulk")
    return {
        "eps_bulk_ev_per_atom": e / len(a),
        "eps_unrelaxed_ev_per_atom": e_start / len(a),
        "n_atoms": len(a),
        "volume_a3_per_atom": a.get_volume() / len(a),
        "volume_unrelaxed_a3_per_atom": atoms.get_volume() / len(atoms),
        "cell": np.asarray(a.cell[:]).tolist(),
        "steps": steps,
        "fmax_reached_ev_per_a": reached,
        "model_seconds": time.perf_counter() - t0,
    }


def bulk_tasks(
    refs: pd.DataFrame,
    model: str,
    protocol: str,
    settings: dict | None = None,
    model_path: str | None = None,
) -> tuple[list[engine.Task], pd.Series]:
    """One ideal-bulk task per distinct matched polymorph of ``refs`` (not per slab): every facet of an element
    that matches the same MP polymorph shares its record. Returns (tasks, bulk key per slab id: None where the
    slab has no MP match)."""
    from ..models import weights_checksum

    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
    settings = {**BULK_SETTINGS[protocol], **(settings or {})}
    checksum = weights_checksum(model, model_path)
    tasks: dict[str, engine.Task] = {}
    by_polymorph: dict[tuple[str, int], str] = {}
    keys = {}
    for _, r in refs.iterrows():
        if not bool(r.get("matched", False)) or int(r.get("mp_ref_index", -1)) < 0:
            keys[r["id"]] = None
            continue
        pid = (r["element"], int(r["mp_ref_index"]))
        if pid not in by_polymorph:
            atoms = polymorph_atoms(*pid)
            key = make_key(kind=BULK_KIND, model=model, weights=checksum, structure=structure_hash(atoms),
                           protocol=protocol, settings=settings, version=BULK_VERSION)  # fmt: skip
            by_polymorph[pid] = key
            tasks[key] = engine.Task(
                key=key,
                kind=BULK_KIND,
                model=model,
                item=f"{pid[0]} mp-ref {pid[1]} ({protocol})",
                args={
                    "model": model,
                    "model_path": model_path,
                    "protocol": protocol,
                    "settings": settings,
                    "structure": atoms_to_dict(atoms),
                },
            )
        keys[r["id"]] = by_polymorph[pid]
    return list(tasks.values()), pd.Series(keys, name="bulk_key", dtype=object)


def surface_tasks(
    refs: pd.DataFrame,
    slabs: pd.DataFrame,
    model: str,
    protocol: str,
    settings: dict | None = None,
    model_path: str | None = None,
) -> tuple[list[engine.Task], pd.Series]:
    """Tasks for every slab with an OUC; returns (tasks, key per slab id: None where the slab cannot be evaluated)."""
    from ..models import weights_checksum

    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
    settings = {**DEFAULT_SETTINGS[protocol], **(settings or {})}
    checksum = weights_checksum(model, model_path)
    atoms_by_id = dict(zip(slabs["id"], slabs["atoms"], strict=True))
    tasks, keys = [], {}
    for _, r in refs.iterrows():
        slab = atoms_by_id[r["id"]]
        if r["ouc"] is None or slab is None:
            keys[r["id"]] = None
            continue
        key = make_key(
            kind=f"surface-{protocol}",
            model=model,
            weights=checksum,
            slab=structure_hash(slab),
            ouc=structure_hash(r["ouc"]),
            settings=settings,
            version=PROTOCOL_VERSION,
        )
        keys[r["id"]] = key
        tasks.append(
            engine.Task(
                key=key,
                kind=f"surface-{protocol}",
                model=model,
                item=r["id"],
                args={
                    "model": model,
                    "model_path": model_path,
                    "protocol": protocol,
                    "settings": settings,
                    "slab": atoms_to_dict(slab),
                    "ouc": atoms_to_dict(r["ouc"]),
                },
            )
        )
    return tasks, pd.Series(keys, name="key")


def run_surfaces(
    refs: pd.DataFrame,
    slabs: pd.DataFrame,
    model: str,
    protocol: str,
    store: ResultStore,
    backend: str = "serial",
    n_workers: int = 1,
    scheduler=None,
    settings: dict | None = None,
    model_path: str | None = None,
    progress: bool = True,
    bulk_settings: dict | None = None,
) -> tuple[engine.RunSummary, pd.DataFrame]:
    """Evaluate ``model`` with ``protocol`` on every slab of ``refs`` that has an OUC, and on every matched MP
    polymorph once (stored; resumable). Returns (summary of both passes, keys: a frame indexed by slab id with
    ``key`` (slab task) and ``bulk_key`` (ideal-bulk task; None without an MP match), for :func:`results_table`)."""
    kw = dict(backend=backend, n_workers=n_workers, scheduler=scheduler, progress=progress)
    b_tasks, bulk_keys = bulk_tasks(refs, model, protocol, bulk_settings, model_path)
    b_summary = engine.run_tasks(evaluate_bulk, b_tasks, store, desc=f"{model} {protocol} bulk", **kw)
    tasks, keys = surface_tasks(refs, slabs, model, protocol, settings, model_path)
    summary = engine.run_tasks(evaluate, tasks, store, desc=f"{model} {protocol}", **kw)
    summary.total += b_summary.total
    summary.skipped += b_summary.skipped
    summary.ok += b_summary.ok
    summary.failed += b_summary.failed
    summary.wall_seconds += b_summary.wall_seconds
    summary.task_seconds += b_summary.task_seconds
    summary.failures.update(b_summary.failures)
    frame = pd.DataFrame({"key": keys.astype(object), "bulk_key": bulk_keys.reindex(keys.index).astype(object)})
    return summary, frame


def _str_or_none(v) -> str | None:
    return v if isinstance(v, str) else None  # pandas may turn None into NaN


def _split_keys(keys) -> tuple[pd.Series, pd.Series | None]:
    """(slab keys, ideal-bulk keys) by slab id from :func:`run_surfaces`' frame, or a plain series of slab keys
    (:func:`surface_tasks`: no ideal-bulk keys, every row then uses the OUC)."""
    if isinstance(keys, pd.DataFrame) and "bulk_key" in keys:
        return keys["key"], keys["bulk_key"]
    return (keys["key"] if isinstance(keys, pd.DataFrame) else keys), None


def _records(store: ResultStore, keys) -> dict:
    recs = {}
    for k in keys:
        k = _str_or_none(k)
        if k is not None and k not in recs:
            rec = store.get(k, with_array=False)
            if rec is not None:
                recs[k] = rec
    return recs


def results_table(
    refs: pd.DataFrame, store: ResultStore, keys_by_run: dict[tuple[str, str], pd.DataFrame | pd.Series]
) -> pd.DataFrame:
    """Per-slab results, one row per (slab, model, protocol): DFT and model gamma, bulk and slab energies, status.

    ``keys_by_run``: (model, protocol) -> the keys :func:`run_surfaces` returned (or a series of slab keys only).
    ``status``: ``ok``, ``failed`` (evaluation error, ``reason`` says which) or ``not evaluated`` (no OUC, ...).

    The model gamma ``gamma_model_j_per_m2`` and ``eps_model_ev_per_atom`` use the default bulk reference, the
    matched MP polymorph (``bulk_reference`` = ``"mp-polymorph"``); where there is none (no MP match, polymorph
    evaluation failed) the slab's OUC (``"ouc"``), and ``bulk_reference_reason`` says why. Both references are
    kept: ``gamma_model_ideal_j_per_m2`` / ``eps_model_ideal_ev_per_atom`` (NaN without a polymorph) and
    ``gamma_model_ouc_j_per_m2`` / ``eps_model_ouc_ev_per_atom``; ``delta_gamma_ref_j_per_m2`` = ideal - OUC.
    Relaxed rows also carry ``ouc_relaxed_volume_a3_per_atom`` (the OUC's model-relaxed volume, the lattice the
    slab was relaxed on), ``bulk_relaxed_volume_a3_per_atom`` (the tightly relaxed polymorph) and
    ``lattice_volume_mismatch`` (their ratio - 1). ``error_j_per_m2`` = model - DFT (default reference). Slab
    energies per atom from DFT are *reconstructed* (E = 2 A gamma + N eps_bulk, eps_bulk of the matched MP
    polymorph).
    """
    rows = []
    for (model, protocol), run_keys in keys_by_run.items():
        keys, bulk_keys = _split_keys(run_keys)
        recs = _records(store, keys.dropna())
        bulk_recs = _records(store, bulk_keys.dropna()) if bulk_keys is not None else {}
        for _, r in refs.iterrows():
            key = _str_or_none(keys.get(r["id"]))
            bkey = _str_or_none(bulk_keys.get(r["id"])) if bulk_keys is not None else None
            row = dict(
                id=r["id"],
                element=r["element"],
                miller=r["miller"],
                model=model,
                protocol=protocol,
                n_atoms=r["n_atoms"],
                gamma_dft_j_per_m2=r["gamma_dft_j_per_m2"],
                eps_dft_ev_per_atom=r["eps_dft_ev_per_atom"],
                e_slab_dft_ev_per_atom=r["e_slab_dft_ev_per_atom"],
                gamma_model_j_per_m2=np.nan,
                eps_model_ev_per_atom=np.nan,
                e_slab_model_ev_per_atom=np.nan,
                model_seconds=np.nan,
                status="not evaluated",
                reason=r["reason"] if key is None else "",
                bulk_reference="",
                bulk_reference_reason="",
                gamma_model_ideal_j_per_m2=np.nan,
                gamma_model_ouc_j_per_m2=np.nan,
                eps_model_ideal_ev_per_atom=np.nan,
                eps_model_ouc_ev_per_atom=np.nan,
                ouc_relaxed_volume_a3_per_atom=np.nan,
                bulk_relaxed_volume_a3_per_atom=np.nan,
            )
            rec = recs.get(key) if key is not None else None
            if key is not None and rec is None:
                row["reason"] = "not computed yet"
            elif rec is not None and not rec.ok:
                row.update(status="failed", reason=rec.error)
            elif rec is not None:
                p = rec.payload
                row.update(
                    status="ok",
                    gamma_model_ouc_j_per_m2=p["gamma_j_per_m2"],
                    eps_model_ouc_ev_per_atom=p["eps_bulk_ev_per_atom"],
                    e_slab_model_ev_per_atom=p["e_slab_ev"] / p["n_atoms"],
                    model_seconds=p["model_seconds"],
                )
                if "volume_change" in p:  # relaxed: the lattice the slab was relaxed on (its OUC's relaxation)
                    v_ouc = r.get("ouc_volume_a3_per_atom", np.nan)
                    row["ouc_relaxed_volume_a3_per_atom"] = v_ouc * (1 + p["volume_change"])
                brec = bulk_recs.get(bkey) if bkey is not None else None
                if bulk_keys is None:
                    why = "ideal bulk not requested (slab keys only)"
                elif bkey is None:
                    why = r["reason"] or "no MP polymorph match"
                elif brec is None:
                    why = "ideal bulk not computed yet"
                elif not brec.ok:
                    why = f"ideal bulk evaluation failed: {brec.error}"
                else:
                    why = ""
                    b = brec.payload
                    row.update(
                        eps_model_ideal_ev_per_atom=b["eps_bulk_ev_per_atom"],
                        gamma_model_ideal_j_per_m2=surface_energy_j_per_m2(
                            p["e_slab_ev"], p["n_atoms"], b["eps_bulk_ev_per_atom"], p["area_a2"]
                        ),
                    )
                    if "volume_change" in p:
                        row["bulk_relaxed_volume_a3_per_atom"] = b["volume_a3_per_atom"]
                ref = OUC if why else IDEAL
                row.update(
                    bulk_reference=ref,
                    bulk_reference_reason=why,
                    gamma_model_j_per_m2=row[f"gamma_model_{'ideal' if ref == IDEAL else 'ouc'}_j_per_m2"],
                    eps_model_ev_per_atom=row[f"eps_model_{'ideal' if ref == IDEAL else 'ouc'}_ev_per_atom"],
                )
                if not r["matched"]:
                    row["reason"] = r["reason"]  # model gamma exists, DFT bulk energy does not
            rows.append(row)
    out = pd.DataFrame(rows)
    out["error_j_per_m2"] = out["gamma_model_j_per_m2"] - out["gamma_dft_j_per_m2"]
    out["abs_error_j_per_m2"] = out["error_j_per_m2"].abs()
    out["bulk_error_ev_per_atom"] = out["eps_model_ev_per_atom"] - out["eps_dft_ev_per_atom"]
    out["slab_error_ev_per_atom"] = out["e_slab_model_ev_per_atom"] - out["e_slab_dft_ev_per_atom"]
    out["delta_gamma_ref_j_per_m2"] = out["gamma_model_ideal_j_per_m2"] - out["gamma_model_ouc_j_per_m2"]
    out["lattice_volume_mismatch"] = out["ouc_relaxed_volume_a3_per_atom"] / out["bulk_relaxed_volume_a3_per_atom"] - 1
    return out


# ----------------------------------------------------------------------------------------------------------------
# subsets


def stratified_subset(
    df: pd.DataFrame, per_element: int, seed: int = 0, mask=None, limit: int | None = None
) -> list[str]:
    """Ids of up to ``per_element`` slabs of every element (lowest Miller-index sum first, ties seeded-random).

    ``df`` has ``id``, ``element``, ``miller`` (the slabs table or the references table); ``mask`` (boolean, same
    length) restricts the candidates, e.g. ``refs["matched"]`` so that errors can be computed. Low-index facets
    first: a small subset then shows every element's most common facets. ``limit`` keeps that many ids, evenly
    spread over the element-sorted list. Ids are returned in data-set order.
    """
    if mask is not None:
        df = df[np.asarray(mask, dtype=bool)]
    rng = np.random.default_rng(seed)
    df = df.assign(_order=[sum(abs(int(c)) for c in parse_miller(m)) for m in df["miller"]], _tie=rng.random(len(df)))
    picked = (
        df.sort_values(["element", "_order", "_tie"], kind="stable").groupby("element", sort=True).head(per_element)
    )
    ids = picked.sort_values(["element", "_order", "_tie"], kind="stable")["id"].tolist()
    if limit is not None and len(ids) > limit:
        ids = [ids[int(i)] for i in np.linspace(0, len(ids) - 1, limit).round()]
    return sorted(ids, key=lambda i: parse_surface_id(i).index)


def gamma_errors(
    slabs: pd.DataFrame,
    store: ResultStore,
    model: str,
    protocol: str = "static",
    backend: str = "serial",
    n_workers: int = 1,
    progress: bool = True,
    sig_digits: int | None = SIG_DIGITS,
) -> tuple[pd.DataFrame, dict]:
    """|gamma_model - gamma_DFT| per slab of ``slabs`` (the :func:`uipbench.surfaces.slabs.load_slabs` table).

    The same references and evaluations as the surface-energy chapter (:func:`references`, :func:`run_surfaces`:
    same store kinds and keys), so records that chapter stored are read, and only missing ones are computed. The
    model gamma uses the chapter's default bulk reference (:func:`results_table`: the matched MP polymorph, the
    OUC as fallback).
    Both gammas are taken at the precision of that chapter's committed table (``sig_digits`` significant digits,
    :data:`uipbench.figures.SIG_DIGITS`; None: as stored), so the errors equal those of
    ``surfaces_gamma_results.csv``. Returns (frame id, gamma_dft_j_per_m2, gamma_model_j_per_m2,
    abs_error_j_per_m2 of the slabs evaluated ok; failures id -> reason of the others).
    """
    refs = references(slabs, store, backend=backend, n_workers=n_workers, progress=progress)
    _, keys = run_surfaces(refs, slabs, model, protocol, store, backend=backend, n_workers=n_workers, progress=progress)
    res = results_table(refs, store, {(model, protocol): keys})
    ok = res["status"] == "ok"
    failures = dict(zip(res.loc[~ok, "id"], res.loc[~ok, "reason"], strict=True))
    out = res.loc[ok, ["id", "gamma_dft_j_per_m2", "gamma_model_j_per_m2"]].reset_index(drop=True)
    if sig_digits is not None:
        for col in ("gamma_dft_j_per_m2", "gamma_model_j_per_m2"):
            out[col] = out[col].map(lambda v: round_sig(v, sig_digits))
    out["abs_error_j_per_m2"] = (out["gamma_model_j_per_m2"] - out["gamma_dft_j_per_m2"]).abs()
    return out, failures
