"""Parsers of the registered data files, one per format (:mod:`uipbench.datasets` names one for each dataset).

Each takes the verified local paths of a dataset's files and returns the parsed object.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd

from .miller import parse_surface_id
from .units import EV_PER_A2_TO_J_PER_M2


class DataFormatError(ValueError):
    """A registered file does not hold what its parser expects (:func:`uipbench.datasets.load` raises it as a
    :class:`~uipbench.datasets.DataError`)."""


def parse_surfaces(files: list[Path]) -> pd.DataFrame:
    """Materials Project elemental surfaces (SE-CGCNN copy): one row per slab, sorted by running index.

    Columns: ``id``, ``index`` (running integer), ``element``, ``miller`` (the id's Miller string), ``hkl``
    (tuple of ints, three or four indices), ``gamma_ev_per_a2``, ``gamma_j_per_m2``, ``work_function_ev``,
    ``cif_path``.
    """
    by_name = {p.name: p for p in files}
    table = pd.read_csv(by_name["id_prop.csv"], header=None, names=["id", "gamma_ev_per_a2", "work_function_ev"])
    parsed = [parse_surface_id(i) for i in table["id"]]
    table["index"] = [p.index for p in parsed]
    table["element"] = [p.element for p in parsed]
    table["miller"] = [p.miller for p in parsed]
    table["hkl"] = [p.hkl for p in parsed]
    table["gamma_j_per_m2"] = table["gamma_ev_per_a2"] * EV_PER_A2_TO_J_PER_M2
    missing = [i for i in table["id"] if f"{i}.cif" not in by_name]
    if missing:
        raise DataFormatError(f"surface records without a CIF: {missing[:5]} ({len(missing)} in all)")
    table["cif_path"] = [str(by_name[f"{i}.cif"]) for i in table["id"]]
    cols = ["id", "index", "element", "miller", "hkl", "gamma_ev_per_a2", "gamma_j_per_m2", "work_function_ev",
            "cif_path"]  # fmt: skip
    return table[cols].sort_values("index", kind="stable").reset_index(drop=True)


def parse_mp_element_refs(files: list[Path]) -> dict[str, list[dict]]:
    """matcalc MP-PBE elemental references: element -> list of {structure: pymatgen Structure, energy_per_atom}."""
    from pymatgen.core import Structure

    with gzip.open(files[0], "rt") as f:
        raw = json.load(f)
    return {
        el: [
            {"structure": Structure.from_dict(s), "energy_per_atom": float(e)}
            for s, e in zip(entry["structure"], entry["energy_per_atom"], strict=True)
        ]
        for el, entry in sorted(raw.items())
    }


def parse_matpes_refs(files: list[Path]) -> dict[str, dict]:
    """matcalc MatPES elemental references: element -> MatPES document (``structure`` as pymatgen Structure)."""
    from pymatgen.core import Structure

    with gzip.open(files[0], "rt") as f:
        raw = json.load(f)
    out = {}
    for el, doc in sorted(raw.items()):
        doc = dict(doc)
        doc["structure"] = Structure.from_dict(doc["structure"])
        out[el] = doc
    return out


def parse_extxyz(files: list[Path]) -> list:
    """Extended XYZ (the project's own DFT data): a list of ``ase.Atoms`` with energies, forces, stresses in
    ``info`` / ``arrays`` (an empty file gives an empty list)."""
    from ase.io import read

    return read(files[0], index=":", format="extxyz") if files[0].stat().st_size else []


def parse_rxnnet(files: list[Path]) -> pd.DataFrame:
    """RxnNet table of Materials Project compounds (GGA/GGA+U and r2SCAN energies per atom).

    The pickle is only opened after :func:`fetch` verified its sha256 (unpickling runs code from the file).
    """
    df = pd.read_pickle(files[0])
    df.index.name = "mp_id"
    return df
