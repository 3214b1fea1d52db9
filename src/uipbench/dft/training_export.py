"""Gates and export of the training-grade dataset 1 (:mod:`uipbench.dft.training`).

A group is exported only when every physics check it has passes; what is refused is listed with its reason:

* its PBE E-V scan exists, bracketed a minimum, and the pressure of its central points agrees with -dE/dV of the
  fit within :data:`~uipbench.dft.consistency.MAX_STRESS_OFFSET_GPA`;
* it has at least one check neighbour per role (strain; rattle for cells of more than one atom), and every check
  residual of both functionals is within :data:`~uipbench.dft.consistency.MAX_RESIDUAL_MEV_PER_ATOM`;
* the chosen settings variant has no failed calculation;
* each frame's pressure lies within :data:`~uipbench.dft.consistency.MAX_ABS_PRESSURE_GPA` (else that frame alone
  is refused);
* between consecutive dataset frames (±5 % strains and rattles, where the trapezoid rule itself is not exact), the
  median work residual of each functional is no worse than :data:`CONSISTENT_FACTOR` times that of a model
  consistent by construction (CHGNet 0.3.0's energies, forces and stresses on the same structures) plus
  :data:`CONSISTENT_SLACK_MEV_PER_ATOM`: the rule's own error depends on the PES's anharmonicity, which differs
  between the two, hence the factor.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..store import ResultStore
from .consistency import (
    MAX_ABS_PRESSURE_GPA,
    MAX_RESIDUAL_MEV_PER_ATOM,
    MAX_STRESS_OFFSET_GPA,
    frame_from_record,
    pressure_gpa,
    work_residual_ev_per_atom,
)
from .training import KIND_TG_EOS, KIND_TG_PAIRS, RETRY_VARIANTS, element_set

TRAINING_FILE = "dft/pairs_training_pbe_r2scan.extxyz"
MAX_FRAMES_PER_GROUP = 20  #: frames per group the export looks for (a run asks for fewer; the rest are absent)
TRAINING_CHECKS_FILE = "dft/training_checks.csv"
TRAINING_GROUPS_FILE = "dft/training_groups.csv"
FUNCTIONALS = ("pbe", "r2scan")
CONSISTENT_MODEL = "chgnet-0.3.0"
CONSISTENT_FACTOR = 2.0
CONSISTENT_SLACK_MEV_PER_ATOM = 1.0

if TYPE_CHECKING:
    import pandas as pd


def collect(
    store: ResultStore, settings_kw: dict | None = None, n_per_group: int = MAX_FRAMES_PER_GROUP, n_check: int = 1
) -> dict[tuple[str, str], dict]:
    """(group, variant) -> {"eos": payload | None, "records": {(frame id, functional): payload}, "failed": {...}}.

    Looked up by the keys of :func:`~uipbench.dft.training.eos_task` and :func:`~uipbench.dft.training.frame_tasks`
    at the declared settings (``settings_kw`` as for them), so records of other settings (earlier trials, the
    legacy code path) are never mixed into a group."""
    from .training import eos_task, frame_tasks, groups

    out: dict[tuple[str, str], dict] = {}
    for g in groups()[0]:
        for variant in RETRY_VARIANTS:
            t = eos_task(g, variant, settings_kw)
            rec = store.get(t.key, with_array=False)
            if rec is None:
                continue
            entry = out.setdefault(
                (g.id, variant), {"species": g.species, "records": {}, "seconds": {}, "failed": {}, "eos": None}
            )
            if not rec.ok:
                entry["failed"]["E-V scan|pbe"] = rec.error
                continue
            entry["eos"] = rec.payload
            for ft in frame_tasks(g, rec.payload, variant, n_per_group, n_check, settings_kw=settings_kw):
                r = store.get(ft.key, with_array=False)
                if r is None:
                    continue
                fid, f, _ = ft.item.split("|")
                if r.ok:
                    entry["records"][(fid, f)] = r.payload
                    entry["seconds"][(fid, f)] = r.seconds or 0.0
                else:
                    entry["failed"][f"{fid}|{f}"] = r.error
    return out


def group_checks(entry: dict) -> tuple[list[dict], dict]:
    """(check rows, summary) of one (group, variant): residual of every check neighbour, E-V pressure offsets."""
    rows = []
    recs = entry["records"]
    for (fid, f), r in sorted(recs.items()):
        if "~" not in fid:
            continue
        base = recs.get((fid.split("~")[0], f))
        if base is None:
            continue
        n = base["n_atoms"]
        rows.append(
            {
                "frame": fid.split("~")[0],
                "role": fid.split("~")[1],
                "functional": f,
                "d_energy_mev_per_atom": 1e3 * (r["energy_ev"] - base["energy_ev"]) / n,
                "residual_mev_per_atom": 1e3 * work_residual_ev_per_atom(frame_from_record(base), frame_from_record(r)),
            }
        )
    summary: dict[str, Any] = {
        "max_abs_residual_mev_per_atom": max((abs(x["residual_mev_per_atom"]) for x in rows), default=float("nan"))
    }
    eos = entry.get("eos")
    if eos is not None:
        p = eos
        checks = p["pressure_checks"]
        i0 = int(np.argmin([abs(c["scale"] - p["scale0"]) for c in checks])) if p.get("scale0") else len(checks) // 2
        central = checks[max(0, i0 - 1) : i0 + 2]
        summary.update(
            {
                "eos_scale0": p["scale0"],
                "eos_b_gpa": p["fit"]["b_gpa"],
                "eos_pressure_offset_gpa": max(abs(c["p_stress_gpa"] - c["p_fit_gpa"]) for c in central),
                "kpts": "x".join(str(k) for k in p["kpts"]),
            }
        )
    return rows, summary


def frame_residuals(entry: dict, model=None) -> dict:
    """Median |work residual| (meV/atom) between consecutive dataset frames: per functional, and of the consistent
    model's own labels on the same structures (``model``: an ASE calculator factory; default CHGNet 0.3.0)."""
    from ase import Atoms

    recs = entry["records"]
    fids = sorted({f for f, _ in recs if "~" not in f and all((f, x) in recs for x in FUNCTIONALS)})
    out: dict[str, float] = {"n_frame_pairs": max(0, len(fids) - 1)}
    if len(fids) < 2:
        return out
    for f in FUNCTIONALS:
        res = [work_residual_ev_per_atom(frame_from_record(recs[(a, f)]), frame_from_record(recs[(b, f)]))
               for a, b in itertools.pairwise(fids)]  # fmt: skip
        out[f"frame_residual_{f}_mev_per_atom"] = 1e3 * float(np.median(np.abs(res)))
    calc = model() if model is not None else _consistent_calc()
    labels = []
    for fid in fids:
        r = recs[(fid, "pbe")]
        at = Atoms(numbers=r["numbers"], positions=r["positions_a"], cell=r["cell_a"], pbc=r["pbc"])
        at.calc = calc
        labels.append({"energy": at.get_potential_energy(), "forces": at.get_forces(),
                       "stress": at.get_stress(voigt=True), "positions": at.positions, "cell": at.cell[:]})  # fmt: skip
    res = [work_residual_ev_per_atom(a, b) for a, b in itertools.pairwise(labels)]
    out["frame_residual_model_mev_per_atom"] = 1e3 * float(np.median(np.abs(res)))
    return out


_CALC = None


def _consistent_calc():
    global _CALC
    if _CALC is None:
        from ..models import load_model

        _CALC = load_model(CONSISTENT_MODEL).calc
    return _CALC


def consistent_gate(summary: dict) -> str:
    """'' unless a functional's frame residual is worse than the consistent model's allowance (the reason)."""
    model = summary.get("frame_residual_model_mev_per_atom")
    if model is None:
        return ""
    allowed = CONSISTENT_FACTOR * model + CONSISTENT_SLACK_MEV_PER_ATOM
    for f in FUNCTIONALS:
        v = summary.get(f"frame_residual_{f}_mev_per_atom", 0.0)
        if v > allowed:
            return (f"{f} frame residual {v:.2f} meV/atom > {CONSISTENT_FACTOR:g} x {CONSISTENT_MODEL} "
                    f"{model:.2f} + {CONSISTENT_SLACK_MEV_PER_ATOM:g}")  # fmt: skip
    return ""


def gate(entry: dict, rows: list[dict], summary: dict) -> str:
    """'' when the (group, variant) passes, else the first reason it is refused."""
    if entry["failed"]:
        k, v = sorted(entry["failed"].items())[0]
        return f"{len(entry['failed'])} failed calculation(s), e.g. {k}: {v}"
    if entry.get("eos") is None:
        return "no E-V scan"
    if not summary.get("eos_pressure_offset_gpa", np.inf) <= MAX_STRESS_OFFSET_GPA:
        offset = summary.get("eos_pressure_offset_gpa", np.nan)
        return f"E-V pressure vs -dE/dV {offset:.2f} GPa > {MAX_STRESS_OFFSET_GPA}"
    roles = {(x["role"], x["functional"]) for x in rows}
    n_atoms = next(iter(entry["records"].values()))["n_atoms"] if entry["records"] else 0
    need = {("strain", f) for f in FUNCTIONALS} | ({("rattle", f) for f in FUNCTIONALS} if n_atoms > 1 else set())
    if not need <= roles:
        return f"check neighbours not computed yet ({sorted(need - roles)})"
    worst = summary["max_abs_residual_mev_per_atom"]
    if not worst <= MAX_RESIDUAL_MEV_PER_ATOM:
        return f"check residual {worst:.2f} meV/atom > {MAX_RESIDUAL_MEV_PER_ATOM}"
    return ""


def training_frames(
    store: ResultStore, settings_kw: dict | None = None, entries: dict | None = None, consistent_model=None
) -> tuple[list, pd.DataFrame, pd.DataFrame, dict]:
    """(exported ase.Atoms, check table, group table, refused frames) from the store (or from the ``entries`` of
    :func:`collect`, when already read); ``consistent_model``: a calculator factory for :func:`frame_residuals`
    (tests pass EMT)."""
    import pandas as pd
    from ase import Atoms

    from .exporting import _provenance_info, _settings_info, set_pair_labels
    from .settings import DFTSettings

    entries = collect(store, settings_kw) if entries is None else entries
    frames, check_rows, group_rows, refused_frames = [], [], [], {}
    order = list(RETRY_VARIANTS)
    for gid in sorted({g for g, _ in entries}):
        variants = sorted((v for g, v in entries if g == gid), key=order.index)
        chosen = None
        for v in variants:
            rows, summary = group_checks(entries[(gid, v)])
            for x in rows:
                check_rows.append({"group": gid, "variant": v, **x})
            reason = gate(entries[(gid, v)], rows, summary)
            if not reason:  # the last gate needs a model evaluation: only for groups that passed the others
                summary.update(frame_residuals(entries[(gid, v)], consistent_model))
                reason = consistent_gate(summary)
            group_rows.append(
                {
                    "group": gid,
                    "variant": v,
                    "element_set": element_set(entries[(gid, v)]["species"]),
                    "status": reason or "exported",
                    **summary,
                }
            )
            if not reason and chosen is None:
                chosen = v
        if chosen is None:
            continue
        recs = entries[(gid, chosen)]["records"]
        for fid in sorted({fid for fid, _ in recs if "~" not in fid}):
            pair = {f: recs.get((fid, f)) for f in FUNCTIONALS}
            if any(p is None for p in pair.values()):
                continue  # the other functional still running
            p_max = max(abs(pressure_gpa(pair[f]["stress_ev_per_a3"])) for f in FUNCTIONALS)
            if p_max > MAX_ABS_PRESSURE_GPA:
                refused_frames[fid] = f"|P| = {p_max:.1f} GPa > {MAX_ABS_PRESSURE_GPA}"
                continue
            r0 = pair["pbe"]
            st = DFTSettings(
                **{k: tuple(tuple(x) for x in v) if isinstance(v, list) else v for k, v in r0["settings"].items()}
            )
            atoms = Atoms(numbers=r0["numbers"], positions=r0["positions_a"], cell=r0["cell_a"], pbc=r0["pbc"])
            atoms.info.update(
                {
                    "id": fid,
                    "group": gid,
                    "prototype": gid.split("-", 1)[1],
                    "formula": r0["formula"],
                    "variant": chosen,
                    "element_set": element_set(atoms.get_chemical_symbols()),
                    **_settings_info(st),
                    **_provenance_info(r0),
                }
            )
            frames.append(set_pair_labels(atoms, pair))
    groups = pd.DataFrame(group_rows)
    return frames, pd.DataFrame(check_rows), groups, refused_frames


def export_training(store: ResultStore, out_dir: Path) -> dict:
    """Write the training-grade pairs, their check table and group table; return the manifest section."""
    from .exporting import _write_extxyz

    entries = collect(store)
    frames, checks, groups, refused_frames = training_frames(store, entries=entries)
    _write_extxyz(frames, out_dir / TRAINING_FILE)
    if not checks.empty:
        checks.round(6).to_csv(out_dir / TRAINING_CHECKS_FILE, index=False)
    if not groups.empty:
        groups.round(6).to_csv(out_dir / TRAINING_GROUPS_FILE, index=False)
    refused = (
        {f"{r.group}|{r.variant}": r.status for r in groups.itertuples() if r.status != "exported"}
        if not groups.empty
        else {}
    )
    seconds = 0.0
    for kind in (KIND_TG_EOS, KIND_TG_PAIRS):
        df = store.frame(kind=kind)
        seconds += float(df["seconds"].sum()) if not df.empty else 0.0
    n_exported = int((groups["status"] == "exported").sum()) if len(groups) else 0
    return {
        "cost_projection": cost_projection(entries),
        "pairs": len(frames),
        "groups_exported": n_exported,
        "groups_refused": refused,
        "frames_refused": refused_frames,
        "calc_seconds": seconds,
        "gates": {
            "consistent_model": f"{CONSISTENT_MODEL}: frame residual <= {CONSISTENT_FACTOR:g} x model + "
            f"{CONSISTENT_SLACK_MEV_PER_ATOM:g} meV/atom",
            "max_residual_mev_per_atom": MAX_RESIDUAL_MEV_PER_ATOM,
            "max_stress_offset_gpa": MAX_STRESS_OFFSET_GPA,
            "max_abs_pressure_gpa": MAX_ABS_PRESSURE_GPA,
        },
        "settings_json": json.dumps({k: v for k, v in _declared().items()}, sort_keys=True),
    }


def cost_projection(entries: dict, n_per_group: int = 5, n_check: int = 1) -> dict:
    """Measured single-point seconds of the training set at its declared settings (median per element set, atoms,
    functional; from the :func:`collect` ``entries``) and the projected single-threaded hours of the default
    plan's remaining frames (every default group, ``n_per_group`` frames with ``n_check`` checked; E-V scans
    excluded, they are symmetric and cheap). Cells not yet measured take the median of their element set and
    functional scaled linearly with the number of atoms."""
    import pandas as pd

    from .training import groups

    rows = [
        {"eset": element_set(e["species"]), "n_atoms": e["records"][k]["n_atoms"], "fn": k[1], "seconds": sec}
        for e in entries.values()
        for k, sec in e["seconds"].items()
    ]
    if not rows:
        return {}
    ok = pd.DataFrame(rows)
    med = ok.groupby(["eset", "n_atoms", "fn"])["seconds"].median()
    per_atom = (ok["seconds"] / ok["n_atoms"]).groupby([ok["eset"], ok["fn"]]).median()
    done = {(gid, k) for (gid, _), e in entries.items() for k in e["seconds"]}
    remaining_s, remaining_n = 0.0, 0
    for g in groups()[0]:
        es, n = element_set(g.species), len(g.ideal)
        fids = [f"{g.id}-tg-s0-{i:03d}" for i in range(n_per_group)]
        fids += [
            f"{g.id}-tg-s0-{i:03d}~{r}" for i in range(n_check) for r in ("strain", "rattle") if r == "strain" or n > 1
        ]
        for fid in fids:
            for fn in FUNCTIONALS:
                if (g.id, (fid, fn)) in done:
                    continue
                remaining_n += 1
                if (es, n, fn) in med.index:
                    remaining_s += float(med[(es, n, fn)])
                elif (es, fn) in per_atom.index:
                    remaining_s += float(per_atom[(es, fn)]) * n
    return {
        "median_seconds": {f"{e}|{n} atoms|{f}": round(float(v), 1) for (e, n, f), v in med.items()},
        "remaining_single_points": remaining_n,
        "remaining_hours": round(remaining_s / 3600, 2),
    }


def _declared() -> dict:
    from .training import HARD_ELEMENTS, TRAINING_ECUT_EV, TRAINING_KDENSITY

    return {
        "ecut_ev_by_element_set": TRAINING_ECUT_EV,
        "hard_elements": sorted(HARD_ELEMENTS),
        "kpt_density_per_inv_a_per_group": TRAINING_KDENSITY,
        "retry_variants": RETRY_VARIANTS,
    }
