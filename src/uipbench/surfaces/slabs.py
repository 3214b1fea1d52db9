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
    for path in table["cif_path"]:
        try:
            atoms = read_slab(path)
            atoms_col.append(atoms)
            errors.append("")
        except Exception as exc:  # unparsable CIF: keep the row, say why
            atoms_col.append(None)
            errors.append(f"{type(exc).__name__}: {exc}")
    table["atoms"] = atoms_col
    table["parse_error"] = errors
    table["n_atoms"] = [len(a) if a is not None else 0 for a in atoms_col]
    table["area_a2"] = [slab_area(a) if a is not None else np.nan for a in atoms_col]
    table["hkl3"] = [miller_bravais_to_miller(h) if len(h) == 4 else tuple(h) for h in table["hkl"]]
    return table


def read_slab(path) -> Atoms:
    """Read one slab CIF (pymatgen-written, P1, vacuum along c) as ASE Atoms, periodic in all three directions."""
    atoms = ase.io.read(str(path), format="cif")
    atoms.pbc = True
    if len(atoms) == 0:
        raise ValueError(f"no atoms in {path}")
    return atoms


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
