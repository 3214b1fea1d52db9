"""Lattice of a slab's bulk (spglib on its oriented bulk cell) and the bulk cells the slabs are compared with."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

LATTICES = ("FCC", "BCC", "HCP", "other")


def spglib_cell(atoms):
    return (np.asarray(atoms.cell[:]), atoms.get_scaled_positions(), atoms.numbers)


#: spglib tolerances (Å) tried on an oriented bulk cell. The cell comes from a *relaxed* slab interior, strained by
#: up to a few tenths of an Å (e.g. a hcp Tm OUC is Cmcm at 0.05 Å and P6_3/mmc from 0.1 Å; a bcc Sr OUC is C2/m up to
#: 0.2 Å and Im-3m from 0.3 Å), so the highest symmetry found up to 0.5 Å is taken.
SYMPRECS = (0.05, 0.1, 0.2, 0.3, 0.5)


def bulk_symmetry(bulk, symprecs: Sequence[float] = SYMPRECS) -> tuple[str, int, str, float]:
    """(FCC | BCC | HCP | other, space-group number, symbol, symprec used) of a bulk cell from spglib.

    The tolerance with the most symmetry operations wins (ties: the smallest). FCC = Fm-3m with one atom per
    primitive cell, BCC = Im-3m with one, HCP = P6_3/mmc with two; everything else (double hcp, alpha-Sm, Ga, Bi,
    diamond Sn, ...) is "other".
    """
    import spglib

    best = None
    for sp in symprecs:
        ds = spglib.get_symmetry_dataset(spglib_cell(bulk), symprec=sp)
        if ds is not None and (best is None or len(ds.rotations) > len(best[0].rotations)):
            best = (ds, sp)
    if best is None:
        return "other", 0, "?", float("nan")
    ds, sp = best
    prim = spglib.find_primitive(spglib_cell(bulk), symprec=sp)
    n_prim = len(prim[2]) if prim is not None else len(bulk)
    lat = "other"
    if ds.number == 225 and n_prim == 1:
        lat = "FCC"
    elif ds.number == 229 and n_prim == 1:
        lat = "BCC"
    elif ds.number == 194 and n_prim == 2:
        lat = "HCP"
    return lat, int(ds.number), str(ds.international), float(sp)


def classify_lattice(bulk) -> str:
    """FCC / BCC / HCP / other of a bulk cell (see :func:`bulk_symmetry`)."""
    return bulk_symmetry(bulk)[0]


def standard_primitive(bulk, symprec: float = 0.1):
    """spglib's standardised primitive cell (symmetrised) of a bulk cell as ASE Atoms; the input when that fails.

    A REMatch similarity with uniform weights does not change when a cell is replaced by a supercell with the same
    local environments, so the (small) primitive cell stands for the oriented bulk cell in the kernels.
    """
    import spglib
    from ase import Atoms

    out = spglib.standardize_cell(spglib_cell(bulk), to_primitive=True, no_idealize=False, symprec=symprec)
    if out is None:
        return bulk.copy()
    lattice, frac, numbers = out
    return Atoms(numbers=numbers, scaled_positions=frac, cell=lattice, pbc=True)


def bulk_cells(slabs: pd.DataFrame) -> pd.DataFrame:
    """Per slab: oriented bulk cell (:func:`uipbench.surfaces.bulk_references.oriented_bulk_cell`), its lattice,
    and its symmetrised standardised primitive cell. Columns: id, bulk (Atoms or None), bulk_error, lattice,
    spacegroup_number, spacegroup, symprec, bulk_primitive."""
    from .bulk_references import oriented_bulk_cell

    rows = []
    for sid, atoms in zip(slabs["id"], slabs["atoms"]):
        row = {
            "id": sid,
            "bulk": None,
            "bulk_error": "",
            "lattice": "unknown",
            "spacegroup_number": 0,
            "spacegroup": "",
            "symprec": np.nan,
            "bulk_primitive": None,
        }
        try:
            if atoms is None:
                raise ValueError("slab not readable")
            ouc, why = oriented_bulk_cell(atoms)
            if ouc is None:
                raise ValueError(why)
            row["bulk"] = ouc
            row["lattice"], row["spacegroup_number"], row["spacegroup"], sp = bulk_symmetry(ouc)
            row["symprec"] = sp
            row["bulk_primitive"] = standard_primitive(ouc, symprec=sp)
        except Exception as exc:  # recorded per slab, shown in the notebook
            row["bulk_error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    return pd.DataFrame(rows)


def bulk_reference_set(bulk: pd.DataFrame, elements: Sequence[str], include_mp: bool = True):
    """The bulk structures each slab is compared with.

    * each slab's own bulk: the standardised primitive cell of its oriented bulk cell (deduplicated: cells equal
      to 0.1 Å share one entry);
    * with ``include_mp``: every Materials Project PBE polymorph of the slab elements (``mp-pbe-element-refs``),
      the bulk structures MPtrj-trained models saw in training, as the "set of all bulk cells".

    Returns ``(structures: dict bulk id -> Atoms, own: dict slab id -> bulk id or None)``.
    """
    from pymatgen.io.ase import AseAtomsAdaptor

    from ..store import structure_hash

    structures, own, by_hash = {}, {}, {}
    for sid, prim in zip(bulk["id"], bulk["bulk_primitive"]):
        if prim is None:
            own[sid] = None
            continue
        h = structure_hash(prim, decimals=1)
        if h not in by_hash:
            by_hash[h] = f"ouc:{sid}"
            structures[by_hash[h]] = prim
        own[sid] = by_hash[h]
    if include_mp:
        from .. import datasets

        refs = datasets.load("mp-pbe-element-refs")
        for el in sorted(set(elements)):
            for i, p in enumerate(refs.get(el, [])):
                structures[f"mp:{el}:{i}"] = AseAtomsAdaptor.get_atoms(p["structure"])
    return structures, own
