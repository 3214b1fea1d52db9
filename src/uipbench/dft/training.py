"""Dataset 1 at training grade: one consistent potential-energy surface per structure group (issue 16).

A *group* is one prototype of one composition (``MgO-rocksalt``). Its frames are built and labelled so that
energies, forces and stresses of all its frames describe one PES:

1. **equilibrium start** (kind ``dft-tg-eos``, one task per group): an isotropic PBE E-V scan of the ideal cell,
   extended until the minimum is bracketed, Birch-Murnaghan fit; the group's cell is the ideal cell scaled to
   the fitted volume (c/a and internal coordinates stay at their ideal or experimental values). The same scan
   checks the stress: the pressure of every point against -dE/dV of the fit.
2. **one k-mesh per group**, chosen from the equilibrium cell at :data:`TRAINING_KDENSITY`, fixed for all its
   frames and both functionals; **one cutoff per element set** (:func:`training_settings`), declared.
3. **frames** (kind ``dft-tg-pairs``): ±5 % random strains and 0.02-0.1 Å rattles of the equilibrium cell (the
   same recipe as the legacy dataset), PBE and r2SCAN on identical structures.
4. **check neighbours** of the first ``n_check`` frames of each group: the frame under a 1 % strain (no
   rattle) and under a 0.015 Å rattle (no strain). Their trapezoid residuals
   (:func:`~uipbench.dft.consistency.work_residual_ev_per_atom`) test stresses and forces separately against the
   energies; the rule's own error at this step is below ~0.1 meV/atom.
5. **retry variants** (:data:`RETRY_VARIANTS`): a group with any failed calculation is recomputed *as a whole*
   (every frame, both functionals) with the next variant, so a group never mixes SCF or smearing settings.

Store keys include every setting, so nothing of the legacy dataset is overwritten.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine import Task, single_thread
from ..store import ResultStore, make_key, structure_hash
from .calc import compute, make_spec
from .consistency import EV_PER_A3_TO_GPA, pressure_gpa
from .label_convergence import step_frame
from .pairs import DEFAULT_ELEMENTS, DEFAULT_PAIR_PROTOTYPES, _stable_int, perturb, prototype_bases
from .settings import CHEAP_SETTINGS, PAIR_SETTINGS, DFTSettings, kpt_mesh

KIND_TG_EOS = "dft-tg-eos"
KIND_TG_PAIRS = "dft-tg-pairs"

#: elements whose PAW setups need the high cutoff (label-convergence study: chapter 20, data/dft/convergence_labels.csv)
HARD_ELEMENTS = frozenset({"B", "C", "N", "O", "F"})
TRAINING_ECUT_EV = {"hard": 800.0, "default": 800.0}
#: k-point density (per Å⁻¹) of a group's one mesh, by the electronic character of its unstrained equilibrium cell
#: (PBE Kohn-Sham gap of the E-V scan point nearest the minimum): metals need dense meshes, insulators do not
TRAINING_KDENSITY = {"metal": 4.0, "insulator": 2.5}
INSULATOR_GAP_EV = 0.3
#: SCF / occupation variants tried in order for a group with a failed calculation
RETRY_VARIANTS: dict[str, dict] = {
    "default": {},
    "mixer": {"mixer": "robust"},
    "fermi-dirac": {"mixer": "robust", "smearing": "fermi-dirac"},
}
#: ``settings_kw`` of tests and smoke runs: CHEAP_SETTINGS with its own cutoff and k-density (seconds, not converged)
CHEAP_TRAINING_KW = {
    "base": CHEAP_SETTINGS,
    "ecut": {"hard": CHEAP_SETTINGS.ecut_ev, "default": CHEAP_SETTINGS.ecut_ev},
    "kdensity": {"metal": CHEAP_SETTINGS.kpt_density_per_inv_a, "insulator": CHEAP_SETTINGS.kpt_density_per_inv_a},
}
EOS_SCALES = (0.94, 0.96, 0.98, 1.0, 1.02, 1.04, 1.06)  #: lattice-constant factors of the first scan
EOS_MAX_POINTS = 13
CHECK_STRAIN = 0.01
CHECK_RATTLE_A = 0.015


def element_set(species: Iterable[str]) -> str:
    return "hard" if set(species) & HARD_ELEMENTS else "default"


def training_settings(
    species: Iterable[str],
    variant: str = "default",
    base: DFTSettings = PAIR_SETTINGS,
    ecut: dict[str, float] = TRAINING_ECUT_EV,
    kdensity: dict[str, float] = TRAINING_KDENSITY,
    character: str = "metal",
    basis: str = "constant",
) -> DFTSettings:
    """The declared settings of a group: the cutoff of its element set, the k-density of its electronic
    ``character`` ("metal" for the E-V scan itself, which is cheap and must not presume a gap), the retry variant,
    the plane-wave ``basis`` ("constant": GPAW's legacy PW code with its estimated Pulay stress, the one whose
    stress closes the check on a strain; see :class:`~uipbench.dft.settings.DFTSettings`)."""
    return base.replace(
        ecut_ev=float(ecut[element_set(species)]),
        kpt_density_per_inv_a=float(kdensity[character]),
        basis=basis,
        **RETRY_VARIANTS[variant],
    )


def electronic_character(eos_payload: dict) -> str:
    gap = eos_payload.get("band_gap_ev")
    return "insulator" if gap is not None and gap >= INSULATOR_GAP_EV else "metal"


@dataclass(frozen=True)
class Group:
    id: str  #: e.g. "MgO-rocksalt", "Cu-ref"
    prototype: str
    species: tuple[str, ...]
    ideal: Any  #: ase.Atoms before the E-V scan


def groups(
    elements: Iterable[str] = DEFAULT_ELEMENTS, prototypes: Iterable[str] = DEFAULT_PAIR_PROTOTYPES, max_atoms: int = 8
) -> tuple[list[Group], dict[str, str]]:
    bases, skipped = prototype_bases(elements, prototypes, max_atoms)
    out = [Group(f"{b.get_chemical_formula(mode='metal', empirical=False)}-{p}", p, sp, b) for p, sp, b in bases]
    return sorted(out, key=lambda g: (len(g.ideal), g.id)), skipped


# ----------------------------------------------------------------------------------------------------------------
# stage 1: equilibrium from an isotropic E-V scan


@dataclass(frozen=True)
class EOSSpec:
    group: str
    ideal: Any
    settings: DFTSettings
    kpts: tuple[int, int, int]

    def key(self) -> str:
        return make_key(
            kind=KIND_TG_EOS,
            code="gpaw",
            functional="pbe",
            settings=self.settings.as_dict(),
            kpts=list(self.kpts),
            scales=list(EOS_SCALES),
            max_points=EOS_MAX_POINTS,
            structure=structure_hash(self.ideal),
        )


def eos_task(group: Group, variant: str = "default", settings_kw: dict | None = None) -> Task:
    st = training_settings(group.species, variant, **(settings_kw or {}))
    spec = EOSSpec(group.id, group.ideal.copy(), st, tuple(kpt_mesh(group.ideal, st.kpt_density_per_inv_a)))
    return Task(key=spec.key(), kind=KIND_TG_EOS, model="gpaw-pbe", item=f"{group.id}|{variant}", args=spec)


def scan_eos(spec: EOSSpec, energy_and_stress=None) -> dict:
    """E-V scan at fixed k-mesh, extended by one step beyond an edge until the minimum is bracketed; BM fit.

    ``energy_and_stress(atoms) -> (E eV, Voigt stress eV/Å³[, band gap eV])`` defaults to a GPAW PBE single
    point of ``spec``.
    Raises when no minimum is found within :data:`EOS_MAX_POINTS` points.
    """
    from .surfaces import fit_eos

    if energy_and_stress is None:

        def energy_and_stress(at):
            r = compute(make_spec(at, "pbe", spec.settings, kpts=spec.kpts, label=f"tg-eos-{spec.group}"))
            return r["energy_ev"], r["stress_ev_per_a3"], r.get("band_gap_ev")

    n = len(spec.ideal)
    points: dict[float, tuple] = {}

    def point(scale: float):
        scale = round(scale, 4)
        if scale not in points:
            at = spec.ideal.copy()
            at.set_cell(at.cell[:] * scale, scale_atoms=True)
            e, s, *gap = energy_and_stress(at)
            points[scale] = (at.get_volume() / n, e / n, list(np.asarray(s, float)), gap[0] if gap else None)
        return points[scale]

    for s in EOS_SCALES:
        point(s)
    step = EOS_SCALES[1] - EOS_SCALES[0]
    while True:
        sc = sorted(points)
        e = [points[s][1] for s in sc]
        i = int(np.argmin(e))
        if 0 < i < len(sc) - 1:
            break
        if len(points) >= EOS_MAX_POINTS:
            raise ValueError(f"E-V minimum not bracketed by scales {sc[0]:.3f}-{sc[-1]:.3f} ({len(points)} points)")
        point(sc[0] - step if i == 0 else sc[-1] + step)
    sc = sorted(points)
    # fit the 7 points around the minimum (BM over a symmetric window)
    i = int(np.argmin([points[s][1] for s in sc]))
    window = sc[max(0, i - 3) : i + 4]
    vols = [points[s][0] for s in window]
    ens = [points[s][1] for s in window]
    fit = fit_eos(vols, ens)
    p_of_v = _bm_pressure(vols, ens)
    scale0 = (fit["v0_a3"] / points[1.0][0]) ** (1 / 3) if 1.0 in points else None
    # pressure of each point vs -dE/dV of the fit (GPa): the stress check of the group's settings
    checks = []
    for s in window:
        v, _, stress, _ = points[s]
        checks.append({"scale": s, "v_a3_per_atom": v, "p_stress_gpa": pressure_gpa(stress), "p_fit_gpa": p_of_v(v)})
    nearest = min(sc, key=lambda s: abs(s - (scale0 or 1.0)))
    return {
        "group": spec.group,
        "points": [
            {
                "scale": s,
                "v_a3_per_atom": points[s][0],
                "e_ev_per_atom": points[s][1],
                "stress_ev_per_a3": points[s][2],
                "band_gap_ev": points[s][3],
            }
            for s in sc
        ],
        "band_gap_ev": points[nearest][3],
        "fit": fit,
        "scale0": scale0,
        "pressure_checks": checks,
        "kpts": list(spec.kpts),
        "settings": spec.settings.as_dict(),
        "n_atoms": n,
    }


def _bm_pressure(volumes, energies):
    """P(V) = -dE/dV (GPa) of ASE's Birch-Murnaghan fit (its own B'), by a central difference of the fitted E(V)."""
    from ase.eos import EquationOfState, birchmurnaghan

    eos = EquationOfState(np.asarray(volumes, float), np.asarray(energies, float), eos="birchmurnaghan")
    eos.fit()
    params = eos.eos_parameters

    def p(v: float, h: float = 1e-4) -> float:
        de = birchmurnaghan(v + h, *params) - birchmurnaghan(v - h, *params)
        return float(-de / (2 * h) * EV_PER_A3_TO_GPA)

    return p


def eos_group_task(spec: EOSSpec) -> dict:
    single_thread()
    return scan_eos(spec)


def equilibrium_cell(group: Group, eos_payload: dict):
    at = group.ideal.copy()
    s = eos_payload["scale0"]
    at.set_cell(at.cell[:] * s, scale_atoms=True)
    return at


# ----------------------------------------------------------------------------------------------------------------
# stage 2: frames and their check neighbours


def group_frames(group: Group, eq_atoms, n_per_group: int = 5, n_check: int = 1, seed: int = 0) -> list[tuple]:
    """[(frame id, sample index, role, atoms)]: role "frame" for the dataset, "strain"/"rattle" for checks."""
    out = []
    for i in range(n_per_group):
        sid = f"{group.id}-tg-s{seed}-{i:03d}"
        rng = np.random.default_rng([seed, _stable_int(sid)])
        fr = perturb(eq_atoms, rng)
        out.append((sid, i, "frame", fr))
        if i < n_check:
            out.append(
                (f"{sid}~strain", i, "strain", step_frame(fr, seed=_stable_int(sid), strain=CHECK_STRAIN, rattle_a=0.0))
            )
            if len(fr) > 1:
                out.append(
                    (
                        f"{sid}~rattle",
                        i,
                        "rattle",
                        step_frame(fr, seed=_stable_int(sid), strain=0.0, rattle_a=CHECK_RATTLE_A),
                    )
                )
    return out


def frame_tasks(
    group: Group,
    eos_payload: dict,
    variant: str = "default",
    n_per_group: int = 5,
    n_check: int = 1,
    seed: int = 0,
    functionals: Sequence[str] = ("pbe", "r2scan"),
    settings_kw: dict | None = None,
) -> list[Task]:
    st = training_settings(group.species, variant, character=electronic_character(eos_payload), **(settings_kw or {}))
    eq = equilibrium_cell(group, eos_payload)
    mesh = kpt_mesh(eq, st.kpt_density_per_inv_a)  # one mesh per group, from its unstrained equilibrium cell
    tasks = []
    for fid, _, _, at in group_frames(group, eq, n_per_group, n_check, seed):
        for f in functionals:
            spec = make_spec(at, f, st, kpts=mesh, label=fid)
            tasks.append(spec.task(KIND_TG_PAIRS, f"{fid}|{f}|{variant}"))
    return tasks


def _breadth_first(tasks: list[Task]) -> list[Task]:
    """Sample 0 (with its checks) of every group before sample 1 of any; cheap groups first within a sample."""

    def order(t: Task):
        fid = t.item.split("|")[0]
        sample = int(fid.split("~")[0].rsplit("-", 1)[1])
        return (sample, len(t.args.atoms), fid, t.item)

    return sorted(tasks, key=order)


def closure_order(gs: Sequence[Group]) -> list[Group]:
    """Groups in an order whose every prefix is usable for training: each compound (cheapest first) comes right
    after the single-element groups of its elements, so a run stopped anywhere holds compounds together with their
    elemental references; elements that appear in no compound come last."""
    single = {g.species[0]: g for g in gs if len(set(g.species)) == 1}
    out, seen = [], set()
    for c in (g for g in gs if len(set(g.species)) > 1):  # gs is sorted by (atoms, id)
        for g in [single[e] for e in sorted(set(c.species)) if e in single] + [c]:
            if g.id not in seen:
                out.append(g)
                seen.add(g.id)
    return out + [g for g in gs if g.id not in seen]


def run_training_pairs(
    store: ResultStore,
    elements=DEFAULT_ELEMENTS,
    prototypes=DEFAULT_PAIR_PROTOTYPES,
    n_per_group: int = 5,
    n_check: int = 1,
    seed: int = 0,
    max_atoms: int = 8,
    retry: bool = True,
    settings_kw: dict | None = None,
    wave: int | None = None,
    **kw,
) -> dict:
    """Groups in waves of ``wave`` (None: all at once) in :func:`closure_order`: per wave, E-V scans, then frames
    and checks breadth first, then whole-group retries with the next variant. A wave ends with its groups
    complete, so a run stopped after k waves leaves k whole waves exportable, not many E-V scans without frames.

    ``settings_kw`` goes to :func:`training_settings` (tests pass a cheap ``base``); ``kw`` to ``run_tasks``."""
    gs, skipped = groups(elements, prototypes, max_atoms)
    gs = closure_order(gs)
    size = wave or len(gs) or 1
    summaries = {}
    for w0 in range(0, len(gs), size):
        part = gs[w0 : w0 + size]
        label = f"wave {w0 // size + 1}/{-(-len(gs) // size)} " if wave else ""
        for name, s in _run_wave(store, part, n_per_group, n_check, seed, retry, settings_kw, kw).items():
            summaries[label + name] = s
    return {"summaries": summaries, "skipped": skipped}


def _run_wave(store, gs, n_per_group, n_check, seed, retry, settings_kw, kw) -> dict:
    from ..engine import run_tasks
    from .calc import compute_task

    summaries = {}
    active = {g.id: "default" for g in gs}
    by_id = {g.id: g for g in gs}
    variants = list(RETRY_VARIANTS)
    while active:
        ev = {gid: eos_task(by_id[gid], v, settings_kw) for gid, v in active.items()}
        summaries[f"eos {sorted(set(active.values()))}"] = run_tasks(
            eos_group_task, ev.values(), store, desc="GPAW group E-V (PBE)", **kw
        )
        tasks, eos_failed = [], set()
        for gid, t in ev.items():
            rec = store.get(t.key, with_array=False)
            if rec is None or not rec.ok:
                eos_failed.add(gid)
                continue
            tasks += frame_tasks(
                by_id[gid], rec.payload, active[gid], n_per_group, n_check, seed, settings_kw=settings_kw
            )
        s = run_tasks(compute_task, _breadth_first(tasks), store, desc="GPAW training pairs", **kw)
        summaries[f"frames {sorted(set(active.values()))}"] = s
        failed_groups = eos_failed | {
            t.item.split("-tg-")[0] for t in tasks if (r := store.get(t.key, with_array=False)) is not None and not r.ok
        }
        nxt = {}
        for gid in sorted(failed_groups):
            i = variants.index(active[gid])
            if retry and i + 1 < len(variants):
                nxt[gid] = variants[i + 1]
        active = nxt
    return summaries
