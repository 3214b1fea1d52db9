"""Analysis of the committed data (used by notebooks/20_dft_references): tables of the paired energies, per-element
r2SCAN - PBE shifts, E-V fits and γ next to the Materials Project."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from .surfaces import fit_eos

#: PBE lattice constants the E-V fits are validated against (Å; issue 6: within 1 %)
KNOWN_PBE_A0 = {"Cu": 3.63, "Al": 4.04, "Si": 5.47}


def pairs_table(frames: Sequence) -> pd.DataFrame:
    """One row per paired structure: composition, PBE and r2SCAN energies per atom, their difference, force and
    stress magnitudes (from the committed extended XYZ frames)."""
    import pandas as pd

    rows = []
    for at in frames:
        i = at.info
        fp, fr = at.arrays["forces_pbe_ev_per_a"], at.arrays["forces_r2scan_ev_per_a"]
        n = len(at)
        rows.append(
            {
                "id": i["id"],
                "formula": at.get_chemical_formula(mode="hill", empirical=True),
                "prototype": i["prototype"],
                "n_atoms": n,
                "elements": " ".join(sorted(set(at.get_chemical_symbols()))),
                "composition": at.get_chemical_formula(mode="hill"),
                "energy_pbe_ev_per_atom": i["energy_pbe_ev"] / n,
                "energy_r2scan_ev_per_atom": i["energy_r2scan_ev"] / n,
                "shift_ev_per_atom": (i["energy_r2scan_ev"] - i["energy_pbe_ev"]) / n,
                "fmax_pbe_ev_per_a": float(np.linalg.norm(fp, axis=1).max()),
                "fmax_r2scan_ev_per_a": float(np.linalg.norm(fr, axis=1).max()),
                "pressure_pbe_gpa": -float(np.mean(i["stress_pbe_ev_per_a3"][:3])) * 160.21766208,
                "pressure_r2scan_gpa": -float(np.mean(i["stress_r2scan_ev_per_a3"][:3])) * 160.21766208,
            }
        )
    return pd.DataFrame(rows)


def element_shifts(table: pd.DataFrame) -> pd.DataFrame:
    """Per-element r2SCAN - PBE shift (eV/atom): the mean over elemental structures, and an AtomRef-style least-
    squares fit over all paired structures (shift per atom on element fractions, as CHGNet fits its AtomRef)."""
    import pandas as pd

    from ..transfer.atomref import fit_atomref

    elemental = table[table["elements"].str.count(" ") == 0]
    mean = elemental.groupby("elements")["shift_ev_per_atom"].agg(["mean", "std", "count"])
    fit = fit_atomref(list(table["composition"]), table["shift_ev_per_atom"].to_numpy(), intensive=True)
    out = pd.DataFrame(
        {
            "shift_elemental_mean_ev_per_atom": mean["mean"],
            "shift_elemental_std_ev_per_atom": mean["std"],
            "n_elemental": mean["count"],
        }
    )
    out = out.join(fit.references.rename("shift_fit_ev_per_atom"), how="outer")
    out.index.name = "element"
    return out


def chgnet_atomref_shift() -> pd.Series:
    """CHGNet's MP-r2SCAN minus MPtrj AtomRef (eV/atom) per element: what its r2SCAN model shifted per element."""
    from ..transfer.atomref import chgnet_atomref

    return (chgnet_atomref("MP-r2SCAN") - chgnet_atomref("MPtrj")).rename("chgnet_atomref_shift_ev_per_atom")


def eos_table(frames: Sequence) -> pd.DataFrame:
    """Birch-Murnaghan fit per element from the committed E-V frames, with the known PBE lattice constant."""
    import pandas as pd

    by_el: dict[str, list] = {}
    for at in frames:
        by_el.setdefault(at.info["element"], []).append(at)
    rows = []
    for el, fr in sorted(by_el.items()):
        from ase.data import atomic_numbers, reference_states

        sym = reference_states[atomic_numbers[el]]["symmetry"]
        vols = [at.get_volume() / len(at) for at in fr]
        es = [at.info["energy_pbe_ev"] / len(at) for at in fr]
        row = {"element": el, "structure": sym, "n_points": len(fr)}
        try:
            fit = fit_eos(vols, es)
            row.update(
                {
                    "a0_a": (fit["v0_a3"] * {"fcc": 4, "bcc": 2, "diamond": 8, "sc": 1}[sym]) ** (1 / 3),
                    "b_gpa": fit["b_gpa"],
                    "error": "",
                }
            )
        except Exception as exc:
            row.update({"a0_a": np.nan, "b_gpa": np.nan, "error": str(exc)})
        row["a0_known_pbe_a"] = KNOWN_PBE_A0.get(el, np.nan)
        row["rel_dev_percent"] = 100 * (row["a0_a"] / row["a0_known_pbe_a"] - 1)
        rows.append(row)
    return pd.DataFrame(rows)


def _mp_slab_area_a2(cif_path) -> float:
    """In-plane cell area (Å²) of a Materials Project slab CIF (slabs lie in the ab plane)."""
    from ase.io import read

    cell = read(cif_path).cell
    return float(np.linalg.norm(np.cross(cell[0], cell[1])))


def gamma_vs_mp(frames: Sequence, mp: pd.DataFrame) -> pd.DataFrame:
    """GPAW γ of the committed static slabs next to the Materials Project (relaxed, VASP) γ of the same facet.

    The Materials Project set can hold several slabs of one facet: fcc (110) of Au and Pt, for instance, as the
    bulk-terminated 1x1 cell and as the 1x2 missing-row reconstruction (twice the in-plane area, two atoms fewer).
    The GPAW slabs are bulk-terminated 1x1 cells, so the entry compared (``mp_id``) is the one whose in-plane area
    per GPAW area is closest to 1 (lattice constants of the codes differ by ~1 %); ``gamma_mp_min_j_per_m2`` is the
    lowest γ of the facet over all its entries, ``mp_reconstructed_ids`` the entries with a larger surface cell.
    """
    import pandas as pd

    rows = []
    for at in frames:
        if at.info.get("kind") != "slab" or "gamma_j_per_m2" not in at.info:
            continue
        el, miller = at.info["element"], str(at.info["miller"])
        m = mp[(mp["element"] == el) & (mp["miller"] == miller)]
        row = {
            "element": el,
            "miller": miller,
            "gamma_gpaw_j_per_m2": at.info["gamma_j_per_m2"],
            "gamma_mp_j_per_m2": np.nan,
            "mp_id": "",
            "gamma_mp_min_j_per_m2": np.nan,
            "mp_reconstructed_ids": "",
        }
        if len(m):
            if len(m) > 1 and "cif_path" in m and "area_a2" in at.info:
                ratio = np.array([_mp_slab_area_a2(c) for c in m["cif_path"]]) / float(at.info["area_a2"])
                best = int(np.argmin(np.abs(np.log(ratio))))
                row["mp_reconstructed_ids"] = " ".join(m["id"][ratio > 1.5 * ratio[best]])
            else:
                best = 0
            row.update(
                {
                    "gamma_mp_j_per_m2": float(m["gamma_j_per_m2"].iloc[best]),
                    "mp_id": m["id"].iloc[best],
                    "gamma_mp_min_j_per_m2": float(m["gamma_j_per_m2"].min()),
                }
            )
        rows.append(row)
    df = pd.DataFrame(
        rows,
        columns=[
            "element",
            "miller",
            "gamma_gpaw_j_per_m2",
            "gamma_mp_j_per_m2",
            "mp_id",
            "gamma_mp_min_j_per_m2",
            "mp_reconstructed_ids",
        ],
    )
    df["rel_diff_percent"] = 100 * (df["gamma_gpaw_j_per_m2"] / df["gamma_mp_j_per_m2"] - 1)
    return df.sort_values(["element", "miller"]).reset_index(drop=True)
