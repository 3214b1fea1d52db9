"""Surface-energy protocols, run as engine tasks into the result store.

* ``static``: single points on the DFT geometries, gamma = (E_slab - N eps_OUC) / (2A), both energies from the
  model (the OUC is the slab's oriented bulk cell, :func:`uipbench.surfaces.bulk_references.oriented_bulk_cell`).
* ``relaxed``: the OUC relaxed with the model (positions and cell, ``FrechetCellFilter``); the slab mapped onto the
  model's lattice by the same affine strain (applied to its cell and atoms), then its positions relaxed with the
  cell fixed (FIRE, ``fmax`` eV/Å, ``max_steps``). Bulk and slab share the model's lattice: a DFT slab cell against
  a model-relaxed bulk would add a strain error that is not the model's surface error. Non-convergence and
  exploding energies are failures with their reason.

Every (model, weights checksum, slab, OUC, protocol, settings) evaluation is one :class:`~uipbench.engine.Task`
whose key hashes all of them; :func:`run_surfaces` sends them through :func:`uipbench.engine.run_tasks`, so a
rerun only computes what is missing, on any backend. The slab references (OUC derivation + Materials Project match,
about 0.07 s per slab) are persisted the same way (:func:`references`).
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

DEFAULT_SETTINGS: dict[str, dict] = {
    "static": {},
    "relaxed": {"fmax_ev_per_a": 0.05, "max_steps_bulk": 300, "max_steps_slab": 500, "optimizer": "FIRE"},
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
) -> tuple[engine.RunSummary, pd.Series]:
    """Evaluate ``model`` with ``protocol`` on every slab of ``refs`` that has an OUC (stored; resumable)."""
    tasks, keys = surface_tasks(refs, slabs, model, protocol, settings, model_path)
    summary = engine.run_tasks(
        evaluate,
        tasks,
        store,
        backend=backend,
        n_workers=n_workers,
        scheduler=scheduler,
        desc=f"{model} {protocol}",
        progress=progress,
    )
    return summary, keys


def results_table(
    refs: pd.DataFrame, store: ResultStore, keys_by_run: dict[tuple[str, str], pd.Series]
) -> pd.DataFrame:
    """Per-slab results, one row per (slab, model, protocol): DFT and model gamma, bulk and slab energies, status.

    ``status``: ``ok``, ``failed`` (evaluation error, ``reason`` says which) or ``not evaluated`` (no OUC, ...).
    ``error_j_per_m2`` = model - DFT. Slab energies per atom from DFT are *reconstructed*
    (E = 2 A gamma + N eps_bulk, eps_bulk of the matched MP polymorph).
    """
    rows = []
    for (model, protocol), keys in keys_by_run.items():
        recs = {}
        for k in keys.dropna():
            if not isinstance(k, str):
                continue
            rec = store.get(k, with_array=False)
            if rec is not None:
                recs[k] = rec
        for _, r in refs.iterrows():
            key = keys.get(r["id"])
            key = key if isinstance(key, str) else None  # pandas may turn None into NaN
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
                    gamma_model_j_per_m2=p["gamma_j_per_m2"],
                    eps_model_ev_per_atom=p["eps_bulk_ev_per_atom"],
                    e_slab_model_ev_per_atom=p["e_slab_ev"] / p["n_atoms"],
                    model_seconds=p["model_seconds"],
                )
                if not r["matched"]:
                    row["reason"] = r["reason"]  # model gamma exists, DFT bulk energy does not
            rows.append(row)
    out = pd.DataFrame(rows)
    out["error_j_per_m2"] = out["gamma_model_j_per_m2"] - out["gamma_dft_j_per_m2"]
    out["abs_error_j_per_m2"] = out["error_j_per_m2"].abs()
    out["bulk_error_ev_per_atom"] = out["eps_model_ev_per_atom"] - out["eps_dft_ev_per_atom"]
    out["slab_error_ev_per_atom"] = out["e_slab_model_ev_per_atom"] - out["e_slab_dft_ev_per_atom"]
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
    same store kinds and keys), so records that chapter stored are read, and only missing ones are computed.
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
