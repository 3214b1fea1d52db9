"""Slabs of elemental crystals: the 801 Materials Project slabs as ASE Atoms, their area, and the surface energy.

* :func:`load_slabs`: the data set's slabs with their DFT surface energies (record ids and Miller indices are parsed
  by :mod:`uipbench.miller`).
* :func:`surface_energy_j_per_m2`: gamma = (E_slab - N eps_bulk) / (2 A), the one surface-energy formula of the
  project (model protocols, :mod:`uipbench.dft`).
* :func:`atoms_to_dict` / :func:`atoms_from_dict`: structures as plain lists, for task arguments and stored payloads.

The slabs' bulk references (oriented bulk cells, Materials Project matches) are in
:mod:`uipbench.surfaces.bulk_references`.
"""

from __future__ import annotations

import ase.io
import numpy as np
import pandas as pd
from ase import Atoms

from ..miller import miller_bravais_to_miller
from ..units import EV_PER_A2_TO_J_PER_M2


def load_slabs(data_dir=None) -> pd.DataFrame:
    """The 801 Materials Project slabs: the ``mp-surfaces`` table plus ``atoms`` (ASE Atoms) and ``parse_error``.

    A CIF that cannot be read gets ``atoms = None`` and its reason in ``parse_error`` (reported, never dropped).
    Columns added: ``n_atoms``, ``area_a2`` (in-plane cell area |a x b|, Å^2), ``hkl3`` (three-index Miller).
    """
    from .. import datasets

    table = datasets.load("mp-surfaces", data_dir=data_dir).copy()
    atoms_col, errors = [], []
    for path, element in zip(table["cif_path"], table["element"], strict=True):
        atoms, error = read_checked_slab(path, element)
        atoms_col.append(atoms)
        errors.append(error)
    table["atoms"] = atoms_col
    table["parse_error"] = errors
    table["n_atoms"] = [len(a) if a is not None else 0 for a in atoms_col]
    table["area_a2"] = [slab_area(a) if a is not None else np.nan for a in atoms_col]
    table["hkl3"] = [miller_bravais_to_miller(h) if len(h) == 4 else tuple(h) for h in table["hkl"]]
    return table


def read_checked_slab(path, element: str | None = None) -> tuple[Atoms | None, str]:
    """(atoms, "") for a slab that reads and passes :func:`check_slab`, else (None, the reason): an unparsable or
    implausible CIF is bad input to record, never a crash of the whole run."""
    try:
        atoms = read_slab(path)
    except Exception as exc:  # the parser's own message can be empty or cryptic: say what failed first
        return None, f"unreadable CIF {path}: {type(exc).__name__}: {exc}"
    try:
        check_slab(atoms, path, element)
    except SlabSanityError as exc:
        return None, f"SlabSanityError: {exc}"
    return atoms, ""


def read_slab(path) -> Atoms:
    """Read one slab CIF (pymatgen-written, P1, vacuum along c) as ASE Atoms, periodic in all three directions."""
    atoms = ase.io.read(str(path), format="cif")
    atoms.pbc = True
    if len(atoms) == 0:
        raise ValueError(f"no atoms in {path}")
    return atoms


#: sanity limits of a parsed slab (:func:`check_slab`)
MIN_DISTANCE_FRACTION = 0.6  #: of twice the covalent radius (ase.data, Cordero); the 801 MP slabs: >= 0.68 (Ce)
MIN_VACUUM_A = 5.0  #: the 801 MP slabs: >= 10.2 Å


class SlabSanityError(ValueError):
    """A slab that parsed but cannot be the structure its file declares (truncated, overlapping, no vacuum)."""


def check_slab(atoms: Atoms, path=None, element: str | None = None) -> None:
    """Raise :class:`SlabSanityError` with the reason unless ``atoms`` is a plausible slab: the atoms the CIF's
    ``_chemical_formula_sum`` declares (a file cut at a line boundary still parses, with fewer atoms), only
    ``element``, no two atoms closer than :data:`MIN_DISTANCE_FRACTION` of a covalent bond, a vacuum gap of at
    least :data:`MIN_VACUUM_A` along the surface normal."""
    from ase.data import atomic_numbers, covalent_radii

    counts = dict(zip(*np.unique(atoms.get_chemical_symbols(), return_counts=True), strict=True))
    declared = _declared_formula(path) if path is not None else None
    if declared is not None and declared != {k: int(v) for k, v in counts.items()}:
        raise SlabSanityError(f"{path}: the CIF declares {declared} but {dict(counts)} atoms were read (truncated?)")
    if element is not None and set(counts) != {element}:
        raise SlabSanityError(f"{path}: expected only {element}, found {sorted(counts)}")
    if len(atoms) > 1:
        d = atoms.get_all_distances(mic=True)
        np.fill_diagonal(d, np.inf)
        bond = 2 * max(covalent_radii[atomic_numbers[e]] for e in counts)
        if d.min() < MIN_DISTANCE_FRACTION * bond:
            raise SlabSanityError(f"{path}: atoms {d.min():.2f} Å apart (a bond is about {bond:.2f} Å)")
    normal = np.cross(atoms.cell[0], atoms.cell[1])
    normal /= np.linalg.norm(normal)
    height = float(atoms.cell[2] @ normal)
    z = np.sort(np.mod(atoms.positions @ normal, height))
    vacuum = float(np.max(np.diff(np.concatenate([z, [z[0] + height]]))))
    if vacuum < MIN_VACUUM_A:
        raise SlabSanityError(f"{path}: largest gap along the surface normal {vacuum:.1f} Å: not a slab with vacuum")


def _declared_formula(path) -> dict[str, int] | None:
    import re

    with open(path) as f:
        for line in f:
            if line.startswith("_chemical_formula_sum"):
                text = line.split(None, 1)[1].strip().strip("'\"")
                return {el: int(n or 1) for el, n in re.findall(r"([A-Z][a-z]?)(\d*)", text)}
    return None


def slab_area(atoms: Atoms) -> float:
    """In-plane area |a x b| (Å^2) of a slab whose vacuum is along c."""
    a, b = atoms.cell[0], atoms.cell[1]
    return float(np.linalg.norm(np.cross(a, b)))


def surface_energy_j_per_m2(e_slab_ev: float, n_atoms: int, eps_bulk_ev_per_atom: float, area_a2: float) -> float:
    """Surface energy gamma in J/m² = (E_slab - N eps_bulk) / (2 A): two surfaces per slab (energies in eV, A in Å²)."""
    return (e_slab_ev - n_atoms * eps_bulk_ev_per_atom) / (2.0 * area_a2) * EV_PER_A2_TO_J_PER_M2


def atoms_to_dict(atoms: Atoms) -> dict:
    return {
        "numbers": atoms.numbers.tolist(),
        "positions": atoms.positions.tolist(),
        "cell": np.asarray(atoms.cell[:]).tolist(),
    }


def atoms_from_dict(d: dict) -> Atoms:
    return Atoms(numbers=d["numbers"], positions=d["positions"], cell=d["cell"], pbc=True)
