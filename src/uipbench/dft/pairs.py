"""Dataset 1: small cells of elements and binary compounds in common prototypes, randomly strained and rattled
(:func:`pair_structures`), their paired PBE / r2SCAN tasks (:func:`pair_tasks`), and the dataset-1 convergence
check (:func:`pair_convergence_tasks`, :func:`pair_convergence_table`).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine import Task
from ..store import ResultStore
from .calc import KIND_PAIRS, make_spec
from .settings import PAIR_SETTINGS, DFTSettings

# ----------------------------------------------------------------------------------------------------------------
# dataset 1: prototypes, strains, rattles

ELEMENTAL_PROTOTYPES = ("fcc", "bcc", "hcp", "diamond", "sc")
#: binary prototypes -> default compounds (A first as in the formula). Chosen: chemically sensible, small cells,
#: no f electrons, elements mostly among DEFAULT_ELEMENTS.
BINARY_COMPOUNDS: dict[str, tuple[tuple[str, str], ...]] = {
    "rocksalt": (
        ("Li", "F"),
        ("Na", "Cl"),
        ("K", "Cl"),
        ("Mg", "O"),
        ("Ca", "O"),
        ("Ti", "C"),
        ("Ti", "N"),
        ("V", "N"),
        ("Li", "Cl"),
        ("Na", "F"),
        ("Zr", "C"),
        ("Sc", "N"),
    ),
    "cesiumchloride": (
        ("Ni", "Al"),
        ("Cu", "Zn"),
        ("Fe", "Al"),
        ("Co", "Al"),
        ("Cs", "Cl"),
        ("Pd", "Al"),
        ("Ag", "Mg"),
    ),
    "zincblende": (
        ("Ga", "As"),
        ("Al", "P"),
        ("Si", "C"),
        ("B", "N"),
        ("Zn", "S"),
        ("Ga", "N"),
        ("Al", "As"),
        ("Ga", "P"),
    ),
    "wurtzite": (("Zn", "O"), ("Ga", "N"), ("Al", "N")),
    "fluorite": (("Ca", "F"), ("Mg", "Si"), ("Li", "O"), ("Sr", "F")),  # Mg2Si, Li2O: anti-fluorite
    "L1_2": (("Ni", "Al"), ("Cu", "Au"), ("Al", "Sc"), ("Pt", "Al"), ("Ni", "Fe")),  # A3B
}
#: stoichiometry (n_A, n_B) per binary prototype, and for fluorite which species sits on the fcc site
_FLUORITE_CATION_FIRST = {("Ca", "F"): True, ("Sr", "F"): True, ("Mg", "Si"): False, ("Li", "O"): False}
PROTOTYPES = ("ref", *ELEMENTAL_PROTOTYPES, *BINARY_COMPOUNDS)

#: default element set of dataset 1 (>= 20 elements with simple reference structures, plus the anions and
#: partners of the default compounds)
DEFAULT_ELEMENTS = (
    "Li",
    "Be",
    "Na",
    "Mg",
    "Al",
    "Si",
    "K",
    "Ca",
    "Sc",
    "Ti",
    "V",
    "Cr",
    "Fe",
    "Co",
    "Ni",
    "Cu",
    "Zn",
    "Ge",
    "Sr",
    "Zr",
    "Nb",
    "Mo",
    "Rh",
    "Pd",
    "Ag",
    "W",
    "Ir",
    "Pt",
    "Au",
    "C",
    "B",
    "N",
    "O",
    "F",
    "P",
    "S",
    "Cl",
    "Ga",
    "As",
    "Cs",
)
DEFAULT_PAIR_PROTOTYPES = ("ref", *BINARY_COMPOUNDS)


def _reference_nn_distance(symbol: str) -> tuple[str | None, float]:
    """(reference structure if simple, nearest-neighbour distance) from ASE's experimental reference states;
    elements with complex or molecular ground states fall back to twice pymatgen's (Slater) atomic radius."""
    from ase.build import bulk
    from ase.data import atomic_numbers, reference_states
    from ase.neighborlist import neighbor_list

    ref = reference_states[atomic_numbers[symbol]] or {}
    sym = ref.get("symmetry")
    if sym in ELEMENTAL_PROTOTYPES and ref.get("basis") is None:
        at = bulk(symbol)
        d = neighbor_list("d", at, 4.5 * max(1.0, ref["a"] / 4.0))
        return sym, float(d.min())
    from pymatgen.core import Element

    return None, 2.0 * float(Element(symbol).atomic_radius)


def _radius(symbol: str) -> float:
    from pymatgen.core import Element

    return float(Element(symbol).atomic_radius)


def build_prototype(prototype: str, species: Sequence[str]):
    """Ideal (unstrained) cell of ``prototype`` for ``species`` ([A] for elemental, [A, B] for binaries).

    Elemental cells keep the nearest-neighbour distance of the element's experimental reference structure; binary
    cells use d(A-B) = r_A + r_B with pymatgen's (Slater) atomic radii. These are starting geometries: the random
    strain makes every structure off-equilibrium anyway.
    """
    from ase.build import bulk
    from ase.spacegroup import crystal

    if prototype in ELEMENTAL_PROTOTYPES or prototype == "ref":
        (el,) = species
        ref_sym, d = _reference_nn_distance(el)
        proto = ref_sym if prototype == "ref" else prototype
        if proto is None:
            raise ValueError(f"{el} has no simple reference structure (ASE reference state); use fcc/bcc/...")
        if proto == "fcc":
            return bulk(el, "fcc", a=d * math.sqrt(2))
        if proto == "bcc":
            return bulk(el, "bcc", a=2 * d / math.sqrt(3))
        if proto == "sc":
            return bulk(el, "sc", a=d)
        if proto == "diamond":
            return bulk(el, "diamond", a=4 * d / math.sqrt(3))
        if proto == "hcp":
            from ase.data import atomic_numbers, reference_states

            ref = reference_states[atomic_numbers[el]] or {}
            covera = ref.get("c/a", math.sqrt(8 / 3)) if ref.get("symmetry") == "hcp" else math.sqrt(8 / 3)
            return bulk(el, "hcp", a=d, covera=covera)  # a = in-plane nearest-neighbour distance
        raise ValueError(prototype)
    a_el, b_el = species
    d = _radius(a_el) + _radius(b_el)
    if prototype == "rocksalt":
        return bulk(f"{a_el}{b_el}", "rocksalt", a=2 * d)
    if prototype == "cesiumchloride":
        return bulk(f"{a_el}{b_el}", "cesiumchloride", a=2 * d / math.sqrt(3))
    if prototype == "zincblende":
        return bulk(f"{a_el}{b_el}", "zincblende", a=4 * d / math.sqrt(3))
    if prototype == "wurtzite":
        a = d * math.sqrt(8 / 3)  # ideal: bond length u·c with u = 3/8, c/a = sqrt(8/3)
        return bulk(f"{a_el}{b_el}", "wurtzite", a=a, c=a * math.sqrt(8 / 3), u=3 / 8)
    if prototype == "fluorite":
        cation_first = _FLUORITE_CATION_FIRST.get((a_el, b_el), True)
        fcc_site, tet_site = (a_el, b_el) if cation_first else (b_el, a_el)  # AB2 or anti-fluorite A2B
        a = 4 * d / math.sqrt(3)
        return bulk(f"{fcc_site}{tet_site}2", "fluorite", a=a)
    if prototype == "L1_2":  # A3B (Cu3Au type): B at the cube corner, A at the face centres
        a = d * math.sqrt(2)
        return crystal(
            [b_el, a_el],
            basis=[(0, 0, 0), (0, 0.5, 0.5)],
            spacegroup=221,
            cellpar=[a, a, a, 90, 90, 90],
            primitive_cell=False,
        )
    raise ValueError(f"unknown prototype {prototype!r}; choose from {PROTOTYPES}")


def _stable_int(text: str) -> int:
    return zlib.crc32(text.encode())


def perturb(atoms, rng: np.random.Generator, max_strain: float = 0.05, rattle_range=(0.02, 0.1)):
    """Random symmetric strain (components uniform in ±``max_strain``) and Gaussian rattle of amplitude σ drawn
    uniformly in ``rattle_range`` (Å; skipped for one-atom cells, where it is a mere translation)."""
    atoms = atoms.copy()
    eps = rng.uniform(-max_strain, max_strain, size=(3, 3))
    eps = 0.5 * (eps + eps.T)
    atoms.set_cell(atoms.cell[:] @ (np.eye(3) + eps), scale_atoms=True)
    sigma = float(rng.uniform(*rattle_range))
    disp = rng.normal(0.0, sigma, size=atoms.positions.shape)
    if len(atoms) > 1:
        atoms.positions = atoms.positions + disp
    atoms.wrap()
    atoms.info.update(
        {
            "strain_voigt": [eps[0, 0], eps[1, 1], eps[2, 2], eps[1, 2], eps[0, 2], eps[0, 1]],
            "rattle_sigma_a": sigma if len(atoms) > 1 else 0.0,
        }
    )
    return atoms


def prototype_bases(
    elements: Iterable[str] = DEFAULT_ELEMENTS,
    prototypes: Iterable[str] = DEFAULT_PAIR_PROTOTYPES,
    max_atoms: int = 8,
    compounds: Iterable[tuple[str, str]] | None = None,
) -> tuple[list[tuple[str, tuple[str, ...], Any]], dict[str, str]]:
    """The ideal cells of dataset 1 before any strain: ([(prototype, species, atoms)], skipped id -> reason).

    Elemental prototypes are built for every element; "ref" means each element's own simple reference structure
    (elements without one are skipped with the reason). Binary prototypes use the compounds of
    :data:`BINARY_COMPOUNDS` whose two elements are both in ``elements`` (or the given ``compounds``).
    """
    elements = list(dict.fromkeys(elements))
    out = []
    skipped: dict[str, str] = {}
    for proto in dict.fromkeys(prototypes):
        if proto not in PROTOTYPES:
            raise ValueError(f"unknown prototype {proto!r}; choose from {PROTOTYPES}")
        if proto == "ref" or proto in ELEMENTAL_PROTOTYPES:
            combos = [(el,) for el in elements]
        else:
            pool = BINARY_COMPOUNDS[proto] if compounds is None else tuple(compounds)
            combos = [c for c in pool if all(e in elements for e in c)]
        for species in combos:
            try:
                base = build_prototype(proto, species)
            except ValueError as exc:
                skipped[f"{'-'.join(species)}-{proto}"] = str(exc)
                continue
            if len(base) > max_atoms:
                skipped[f"{base.get_chemical_formula(mode='hill')}-{proto}"] = f"{len(base)} atoms > max_atoms"
                continue
            out.append((proto, tuple(species), base))
    return out, skipped


@dataclass(frozen=True)
class PairStructure:
    id: str
    prototype: str
    species: tuple[str, ...]
    index: int
    atoms: Any


def pair_structures(
    elements: Iterable[str] = DEFAULT_ELEMENTS,
    prototypes: Iterable[str] = DEFAULT_PAIR_PROTOTYPES,
    n_per_prototype: int = 3,
    seed: int = 0,
    max_atoms: int = 8,
    compounds: Iterable[tuple[str, str]] | None = None,
) -> tuple[list[PairStructure], dict[str, str]]:
    """Dataset-1 structures, deterministic for a given ``seed``: (structures, skipped id -> reason).

    Elemental prototypes are built for every element; "ref" means each element's own simple reference structure
    (elements without one are skipped with the reason). Binary prototypes use the compounds of
    :data:`BINARY_COMPOUNDS` whose two elements are both in ``elements`` (or the given ``compounds``). Each
    structure draws from its own random stream ``(seed, crc32(id))``, so adding elements or prototypes never
    changes the structures already generated. Sorted breadth first (sample index, atoms, id): every prototype
    and composition gets its first sample before any gets a second, so an interrupted run still covers them all.
    """
    bases, skipped = prototype_bases(elements, prototypes, max_atoms, compounds)
    out: list[PairStructure] = []
    for proto, species, base in bases:
        name = base.get_chemical_formula(mode="metal", empirical=False)
        for i in range(n_per_prototype):
            sid = f"{name}-{proto}-s{seed}-{i:03d}"
            rng = np.random.default_rng([seed, _stable_int(sid)])
            atoms = perturb(base, rng)
            atoms.info.update({"id": sid, "prototype": proto, "sample": i, "seed": seed})
            out.append(PairStructure(sid, proto, tuple(species), i, atoms))
    out.sort(key=lambda s: (s.index, len(s.atoms), s.id))
    return out, skipped


def pair_tasks(
    structures: Iterable[PairStructure],
    functionals: Sequence[str] = ("pbe", "r2scan"),
    settings: DFTSettings = PAIR_SETTINGS,
) -> list[Task]:
    """One task per structure x functional, functionals of one structure adjacent (pairs complete early)."""
    tasks = []
    for s in structures:
        for f in functionals:
            tasks.append(make_spec(s.atoms, f, settings, label=s.id).task(KIND_PAIRS, f"{s.id}|{f}"))
    return tasks


# ----------------------------------------------------------------------------------------------------------------
# dataset-1 convergence (k-point density of the paired single points)

#: dataset-1 convergence: structures (first sample of these ids' prototypes; the 14 one-atom cells first computed at
#: 3.5 Å, plus a semiconductor and two ionic compounds) and settings variants relative to PAIR_SETTINGS
PAIR_CONVERGENCE_STRUCTURES = (
    *((el, "ref") for el in ("Ag", "Al", "Au", "Ca", "Cr", "Cs", "Cu", "Fe", "Ir", "K", "Li", "Mo", "Na", "Nb", "Si")),
    ("Mg", "O", "rocksalt"),
    ("Na", "F", "rocksalt"),
)
PAIR_CONVERGENCE_VARIANTS: dict[str, dict] = {
    "default": {},
    "k 3.5/Å⁻¹": {"kpt_density_per_inv_a": 3.5},
}


def _pair_convergence_structures(seed: int = 0) -> list[PairStructure]:
    out = []
    for spec in PAIR_CONVERGENCE_STRUCTURES:
        *species, proto = spec
        structs, _ = pair_structures(
            species, [proto], n_per_prototype=1, seed=seed, compounds=[tuple(species)] if len(species) == 2 else None
        )
        out += [st for st in structs if st.prototype == proto]
    return out


def pair_convergence_tasks(base: DFTSettings = PAIR_SETTINGS, functionals=("pbe", "r2scan")) -> list[Task]:
    """PBE and r2SCAN single points of a few dataset-1 structures for each settings variant.

    Every variant is an ordinary dataset-1 single point (kind ``dft-pairs``; the settings are part of the key), so
    the default variant shares the production records and earlier production settings are reused as variants."""
    tasks = []
    for v, change in PAIR_CONVERGENCE_VARIANTS.items():
        st = base.replace(**change)
        for ps in _pair_convergence_structures():
            for f in functionals:
                item = f"{ps.id}|{f}" if not change else f"{ps.id}|{f}|{v}"
                tasks.append(make_spec(ps.atoms, f, st, label=ps.id).task(KIND_PAIRS, item))
    return tasks


def pair_convergence_table(store: ResultStore, base: DFTSettings = PAIR_SETTINGS):
    """Per structure, functional and variant: energy per atom, max force and stress component, and their
    differences to the default settings; plus the change of the r2SCAN - PBE shift (eV/atom)."""
    import pandas as pd

    rows = []
    for t in pair_convergence_tasks(base):
        rec = store.get(t.key, with_array=False)
        if rec is None or not rec.ok:
            continue
        sid, f, v = [*t.item.split("|"), "default"][:3]
        p = rec.payload
        rows.append(
            {
                "id": sid,
                "functional": f,
                "variant": v,
                "energy_ev_per_atom": p["energy_ev_per_atom"],
                "forces": np.array(p["forces_ev_per_a"]),
                "stress": np.array(p["stress_ev_per_a3"]),
                "seconds": rec.seconds,
            }
        )
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    ref = {(r.id, r.functional): r for r in df[df["variant"] == "default"].itertuples()}
    out = []
    for r in df.itertuples():
        d = ref.get((r.id, r.functional))
        if d is None:
            continue
        out.append(
            {
                "id": r.id,
                "functional": r.functional,
                "variant": r.variant,
                "energy_ev_per_atom": r.energy_ev_per_atom,
                "d_energy_mev_per_atom": 1e3 * (r.energy_ev_per_atom - d.energy_ev_per_atom),
                "d_force_max_ev_per_a": float(np.abs(r.forces - d.forces).max()),
                "d_stress_max_gpa": float(np.abs(r.stress - d.stress).max() * 160.21766208),
                "seconds": r.seconds,
            }
        )
    out = pd.DataFrame(out)
    if out.empty:  # variants computed, but none of their default (dataset-1) records yet
        return out
    piv = out.pivot_table(index=["id", "variant"], columns="functional", values="d_energy_mev_per_atom")
    if {"pbe", "r2scan"} <= set(piv.columns):
        shift = (piv["r2scan"] - piv["pbe"]).rename("d_shift_mev_per_atom").reset_index()
        out = out.merge(shift, on=["id", "variant"], how="left")
    return out.sort_values(["id", "functional", "variant"]).reset_index(drop=True)
