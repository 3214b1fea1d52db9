"""Paired energies of one material under two functionals, with every unpaired row accounted for.

* :func:`load_rxnnet_pairs` / :func:`pair_columns`: the Materials Project compounds that have both a GGA/GGA+U
  and an r2SCAN energy (RxnNet), every unpaired row counted with its reason, not silently dropped;
* :func:`pair_matpes`: MatPES PBE/r2SCAN elemental references computed on *identical* structures (same
  ``matpes_id``, lattice, species and positions); every rejected element comes back with its reason.

Units: energies in eV/atom (``*_ev_per_atom``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .compositions import _element_amounts, element_order, to_composition


@dataclass
class Pairing:
    """Rows that carry both quantities, and an account of those that do not."""

    paired: pd.DataFrame
    dropped: pd.DataFrame  #: one row per unpaired entry with a ``reason`` column

    @property
    def counts(self) -> dict[str, int]:
        out = {"paired": len(self.paired), "dropped": len(self.dropped)}
        if len(self.dropped):
            out.update({f"dropped:{k}": int(v) for k, v in self.dropped["reason"].value_counts().items()})
        return out


def pair_columns(df: pd.DataFrame, a: str, b: str) -> Pairing:
    """Rows of ``df`` where both ``a`` and ``b`` are finite numbers; the others with the reason they are not."""
    va = pd.to_numeric(df[a], errors="coerce")
    vb = pd.to_numeric(df[b], errors="coerce")
    ok_a, ok_b = np.isfinite(va), np.isfinite(vb)
    reason = np.where(~ok_a & ~ok_b, f"no {a} and no {b}", np.where(~ok_a, f"no {a}", f"no {b}"))
    mask = ok_a & ok_b
    dropped = df.loc[~mask].copy()
    dropped["reason"] = reason[~mask.to_numpy()]
    return Pairing(paired=df.loc[mask].copy(), dropped=dropped)


#: RxnNet columns -> names with units used in the chapters
RXNNET_COLUMNS = {
    "e_gga_gga_u": "e_gga_ev_per_atom",
    "e_r2scan": "e_r2scan_ev_per_atom",
    "hf_gga_gga_u": "hf_gga_ev_per_atom",
    "hf_r2scan": "hf_r2scan_ev_per_atom",
    "hf_gga_gga_u_r2scan": "hf_mixed_ev_per_atom",
    "hf_ref": "hf_exp_ev_per_atom",
    "e_chgnet": "e_chgnet_ev_per_atom",
}


def tidy_rxnnet(raw: pd.DataFrame) -> pd.DataFrame:
    """The RxnNet table with unit-named columns, pymatgen compositions rebuilt and the element list per row."""
    out = raw.rename(columns=RXNNET_COLUMNS)[list(RXNNET_COLUMNS.values())].copy()
    comps = [to_composition(c) for c in raw["Composition"]]
    out.insert(0, "formula", [c.reduced_formula for c in comps])
    out["composition"] = comps
    out["n_atoms_cell"] = [int(round(c.num_atoms)) for c in comps]
    out["elements"] = [" ".join(element_order(_element_amounts(c))) for c in comps]
    out["chemistry_type"] = [" ".join(t) if isinstance(t, (list, tuple)) else str(t) for t in raw["chemistry_type"]]
    out.index.name = "mp_id"
    return out


def load_rxnnet_pairs(raw: pd.DataFrame | None = None) -> Pairing:
    """Materials Project compounds with both GGA/GGA+U and r2SCAN total energies (the 974 of 1,555 RxnNet rows).

    ``raw`` defaults to ``datasets.load("rxnnet-gga-r2scan")`` (checksum verified before unpickling).
    """
    if raw is None:
        from .. import datasets

        raw = datasets.load("rxnnet-gga-r2scan")
    return pair_columns(tidy_rxnnet(raw), "e_gga_ev_per_atom", "e_r2scan_ev_per_atom")


def _same_structure(s1, s2, atol: float) -> str:
    """'' when two pymatgen structures are identical (lattice, species, fractional positions), else why not."""
    if not np.allclose(s1.lattice.matrix, s2.lattice.matrix, atol=atol, rtol=0):
        return "different lattice"
    if len(s1) != len(s2):
        return "different number of sites"
    if [sp.symbol for sp in s1.species] != [sp.symbol for sp in s2.species]:
        return "different species order"
    d = np.asarray(s1.frac_coords) - np.asarray(s2.frac_coords)
    d -= np.round(d)  # periodic images are the same site
    if not np.allclose(d @ s1.lattice.matrix, 0, atol=atol):
        return "different atomic positions"
    return ""


def pair_matpes(pbe: Mapping[str, dict], r2scan: Mapping[str, dict], atol: float = 1e-6) -> Pairing:
    """Elements whose MatPES PBE and r2SCAN references are the same structure (same ``matpes_id`` and geometry).

    ``pbe`` / ``r2scan``: element -> MatPES document with a pymatgen ``structure`` and ``energy_per_atom``
    (``datasets.load("matpes-pbe-element-refs")`` and ``...-r2scan-...``). Paired rows carry
    ``e_pbe_ev_per_atom``, ``e_r2scan_ev_per_atom`` and their difference ``shift_ev_per_atom`` (r2SCAN - PBE);
    each rejected element carries the reason (missing in one file, other matpes_id, other lattice, ...).
    """
    rows, dropped = [], []
    for el in element_order(set(pbe) | set(r2scan)):
        p, r = pbe.get(el), r2scan.get(el)
        base = {"element": el}
        if p is None or r is None:
            dropped.append({**base, "reason": f"missing in the {'PBE' if p is None else 'r2SCAN'} file"})
            continue
        base.update(matpes_id_pbe=p["matpes_id"], matpes_id_r2scan=r["matpes_id"])
        if p["matpes_id"] != r["matpes_id"]:
            dropped.append({**base, "reason": "different matpes_id"})
            continue
        why = _same_structure(p["structure"], r["structure"], atol)
        if why:
            dropped.append({**base, "reason": why})
            continue
        e_p, e_r = float(p["energy_per_atom"]), float(r["energy_per_atom"])
        rows.append(
            {
                **base,
                "matpes_id": p["matpes_id"],
                "n_sites": len(p["structure"]),
                "e_pbe_ev_per_atom": e_p,
                "e_r2scan_ev_per_atom": e_r,
                "shift_ev_per_atom": e_r - e_p,
            }
        )
    paired = pd.DataFrame(
        rows,
        columns=["element", "matpes_id", "n_sites", "e_pbe_ev_per_atom", "e_r2scan_ev_per_atom", "shift_ev_per_atom"],
    )
    dropped = pd.DataFrame(dropped, columns=["element", "matpes_id_pbe", "matpes_id_r2scan", "reason"])
    return Pairing(paired=paired.set_index("element", drop=False), dropped=dropped)
