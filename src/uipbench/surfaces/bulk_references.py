"""Bulk references of a slab: its oriented bulk unit cell and the Materials Project polymorph it matches.

* :func:`oriented_bulk_cell`: the slab's oriented bulk unit cell (OUC, Sun & Ceder 2013), derived from its interior.
* :func:`match_mp_bulk`: the OUC matched to a Materials Project PBE polymorph of the element (pymatgen
  StructureMatcher), giving the DFT bulk energy per atom; :func:`uipbench.surfaces.protocols.references` applies
  both to every slab (persisted in the result store) and adds the *reconstructed* DFT slab energy
  E_slab = 2 A gamma + N eps_bulk (the data set has no slab total energies).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

# ================================================================================================================
# slabs and their oriented bulk cells
#
# The Materials Project surface database (Tran et al. 2016) computes gamma = (E_slab - N eps_OUC) / 2A with the
# oriented unit cell (OUC) of Sun & Ceder (2013): a bulk cell whose a, b are the slab's in-plane lattice vectors and
# whose c is the repeat vector of the stacking along the surface normal. The slab is that OUC stacked n times (plus
# vacuum). The data set ships only the slabs, so the OUC is recovered here from the slab interior: the shortest
# translation t (out of plane) that maps the interior onto itself is the stacking repeat vector; the atoms of one
# period (heights in [h0, h0 + t.n)) are the OUC's atoms.
# ================================================================================================================


def _unwrap_along_c(atoms: Atoms) -> tuple[np.ndarray, float]:
    """Cartesian positions with the slab made contiguous along c (the vacuum gap moved to the cell boundary).

    Returns (positions, vacuum gap in Å along the surface normal).
    """
    frac = atoms.get_scaled_positions(wrap=True)
    s = np.sort(frac[:, 2])
    gaps = np.diff(np.concatenate([s, [s[0] + 1.0]]))
    i = int(np.argmax(gaps))
    start = s[(i + 1) % len(s)]  # first atom after the largest gap
    frac = frac.copy()
    frac[:, 2] = (frac[:, 2] - start) % 1.0
    frac[:, 2][frac[:, 2] > 1.0 - 1e-9] -= 1.0
    cell = np.asarray(atoms.cell[:])
    normal = np.cross(cell[0], cell[1])
    normal /= np.linalg.norm(normal)
    gap = float(gaps[i] * abs(cell[2] @ normal))
    return frac @ cell, gap


class _InPlane:
    """Minimum-image reduction of vectors modulo the slab's in-plane lattice (a, b)."""

    def __init__(self, cell: np.ndarray):
        self.a, self.b = cell[0], cell[1]
        n = np.cross(self.a, self.b)
        self.n = n / np.linalg.norm(n)
        self.basis_inv = np.linalg.inv(np.array([self.a, self.b, self.n]).T)
        self.shifts = np.array([[i, j] for i in (-1, 0, 1) for j in (-1, 0, 1)], dtype=float)

    def reduce(self, v: np.ndarray) -> np.ndarray:
        """Vectors ``v`` (..., 3) with their in-plane part reduced to the shortest lattice image."""
        v = np.asarray(v, dtype=float)
        c = v @ self.basis_inv.T
        c[..., :2] -= np.round(c[..., :2])
        base = c[..., 0:1] * self.a + c[..., 1:2] * self.b + c[..., 2:3] * self.n
        # the rounded image is not always the shortest for oblique cells: try the 8 neighbours
        cand = base[..., None, :] + (self.shifts[:, 0:1] * self.a + self.shifts[:, 1:2] * self.b)
        k = np.argmin(np.linalg.norm(cand, axis=-1), axis=-1)
        return np.take_along_axis(cand, k[..., None, None], axis=-2)[..., 0, :]


def _mismatch(pos: np.ndarray, numbers: np.ndarray, idx: np.ndarray, t: np.ndarray, plane: _InPlane):
    """For atoms ``idx``: distance from r_k + t to the nearest same-species atom (in-plane periodic) and its index."""
    target = pos[idx] + t
    d = plane.reduce(target[:, None, :] - pos[None, :, :])  # (k, j, 3)
    dist = np.linalg.norm(d, axis=-1)
    dist[numbers[idx][:, None] != numbers[None, :]] = np.inf
    j = np.argmin(dist, axis=1)
    return dist[np.arange(len(idx)), j], j, d[np.arange(len(idx)), j]


#: interior mismatch tolerances tried in turn (Å): relaxed slabs of soft elements (Bi, Ga, Sn, Cd) keep their
#: interior within 0.5 Å of the bulk, and a wrong (too short) period then fails the atom-count and bulk-match checks
OUC_TOLERANCES = (0.3, 0.5)


def oriented_bulk_cell(
    slab: Atoms, tol: float | None = None, skin: float | None = None, min_vacuum: float = 3.0
) -> tuple[Atoms | None, str]:
    """Oriented bulk unit cell of a slab (see :func:`oriented_bulk_cell_at`), trying :data:`OUC_TOLERANCES`.

    Returns ``(ouc, "")`` or ``(None, reason)``; ``ouc.info["ouc_tol"]`` is the tolerance that succeeded.
    """
    reasons = []
    for t in (tol,) if tol is not None else OUC_TOLERANCES:
        ouc, why = oriented_bulk_cell_at(slab, tol=t, skin=skin, min_vacuum=min_vacuum)
        if ouc is not None:
            ouc.info["ouc_tol"] = t
            return ouc, ""
        reasons.append(why)
        if why.startswith(("slab has", "degenerate", "no vacuum")):
            break
    return None, reasons[-1]


def oriented_bulk_cell_at(
    slab: Atoms, tol: float = 0.3, skin: float | None = None, min_vacuum: float = 3.0
) -> tuple[Atoms | None, str]:
    """Oriented bulk unit cell of a slab from its interior (Sun & Ceder 2013 convention): ``(ouc, "")``.

    The OUC has the slab's in-plane vectors a, b and, as c, the shortest out-of-plane translation t that maps the
    slab interior onto itself (every interior atom has a same-species partner at r + t within ``tol`` Å, modulo the
    in-plane lattice). Its atoms are those of one period of the stacking taken at the middle of the slab, where
    relaxation is smallest; t is refined as the mean displacement of the matched interior pairs.

    ``skin``: thickness (Å) excluded at each surface when testing periodicity (default: a quarter of the slab,
    at most 2 Å), so that surface relaxations do not hide the period. On failure returns ``(None, reason)``.
    """
    n_atoms = len(slab)
    if n_atoms < 2:
        return None, f"slab has {n_atoms} atom(s): no stacking to analyse"
    cell = np.asarray(slab.cell[:], dtype=float)
    if abs(np.linalg.det(cell)) < 1e-6:
        return None, "degenerate cell"
    pos, gap = _unwrap_along_c(slab)
    if gap < min_vacuum:
        return None, f"no vacuum along c (largest gap {gap:.2f} Å < {min_vacuum} Å): not a slab"
    plane = _InPlane(cell)
    numbers = slab.numbers
    h = pos @ plane.n
    h_min, h_max = float(h.min()), float(h.max())
    thickness = h_max - h_min
    if skin is None:
        skin = min(2.0, 0.25 * thickness)
    center = 0.5 * (h_min + h_max)

    # candidate translations: from the atom nearest the middle to every other atom of its species, upwards
    i0 = int(np.argmin(np.abs(h - center)))
    diffs = plane.reduce(pos - pos[i0])
    dh = diffs @ plane.n
    diffs[dh < 0] *= -1.0  # a translation and its inverse are the same period
    dh = np.abs(dh)
    keep = (numbers == numbers[i0]) & (dh > 0.3)
    cands = plane.reduce(diffs[keep])
    cand_h = cands @ plane.n
    order = np.lexsort((np.linalg.norm(cands, axis=1), np.round(cand_h, 3)))
    tried = set()
    best_fail = None
    for c in order:
        t = cands[c]
        d = float(t @ plane.n)
        sig = tuple(np.round(t, 2))
        if sig in tried:
            continue
        tried.add(sig)
        if d > thickness - 0.3:
            break
        # atoms whose translate must lie inside the slab, away from both surfaces
        test = np.where((h >= h_min + skin - 1e-6) & (h + d <= h_max - skin + 1e-6))[0]
        if len(test) == 0:  # slab thinner than 2 skins + 1 period: test every atom whose translate is inside
            test = np.where(h + d <= h_max + tol)[0]
        if len(test) < 2:  # one tested atom cannot tell a period from a coincidence
            continue
        mis, _partner, resid = _mismatch(pos, numbers, test, t, plane)
        worst = float(mis.max())
        if worst > tol:
            if best_fail is None or worst < best_fail[1]:
                best_fail = (d, worst)
            continue
        t = t - resid.mean(axis=0)  # refine: mean displacement of the matched pairs
        d = float(t @ plane.n)
        return _one_period(pos, numbers, h, t, d, center, cell, plane, skin, radius=max(tol, 0.5))
    if best_fail is None:
        return None, "no out-of-plane translation candidate (slab thinner than one period?)"
    return None, (
        f"no repeat vector of the stacking within {tol} Å (best candidate: height {best_fail[0]:.2f} Å, "
        f"worst interior mismatch {best_fail[1]:.2f} Å)"
    )


def _one_period(pos, numbers, h, t, d, center, cell, plane, skin, radius) -> tuple[Atoms | None, str]:
    """One representative per orbit of the translation t: the OUC's atoms, wrapped into the cell (a, b, t).

    Atoms of the interior are wrapped into the OUC cell and grouped (same species, within ``radius`` Å under the
    OUC's periodicity); each group is one OUC site, represented by its member nearest the slab centre (least
    relaxed). Grouping by orbit instead of cutting a height window keeps atoms of nearly equal height that relax
    across a window edge from being counted twice or lost.
    """
    from ase.geometry import find_mic

    ouc_cell = np.array([cell[0], cell[1], t])
    interior = np.where((h >= h.min() + skin) & (h <= h.max() - skin))[0]
    if len(interior) == 0 or np.ptp(h[interior]) < d - 1e-6:
        interior = np.arange(len(h))  # thin slab: use every atom
    order = interior[np.argsort(np.abs(h[interior] - center), kind="stable")]
    reps: list[int] = []
    for k in order:
        if reps:
            same = numbers[reps] == numbers[k]
            if same.any():
                _, dist = find_mic(pos[reps] - pos[k], ouc_cell, pbc=True)
                if np.min(np.where(same, dist, np.inf)) < radius:
                    continue
        reps.append(int(k))
    ouc = Atoms(numbers=numbers[reps], positions=pos[reps], cell=ouc_cell, pbc=True)
    ouc.wrap(eps=1e-9)
    if len(ouc) > 1:
        dmin = float(np.min(ouc.get_all_distances(mic=True)[np.triu_indices(len(ouc), 1)]))
        if dmin < 0.7:
            return None, f"atoms of the derived cell overlap (closest pair {dmin:.2f} Å)"
    return ouc, ""


# ================================================================================================================
# DFT bulk references: the OUC matched to a Materials Project PBE polymorph of its element
# ================================================================================================================

#: StructureMatcher settings (pymatgen defaults; ``scale=True`` compares shapes, the volume is checked apart)
MATCHER_KW = dict(ltol=0.2, stol=0.3, angle_tol=5.0, primitive_cell=True, scale=True, attempt_supercell=False)


def match_mp_bulk(ouc: Atoms, polymorphs: list[dict]) -> dict:
    """Match an OUC to the element's MP PBE polymorphs (list of {structure, energy_per_atom}).

    Scale-tolerant StructureMatcher; among the polymorphs that match, the one closest in volume per atom (then
    lowest RMS) is taken. Returns {matched, mp_ref_index, eps_dft_ev_per_atom, match_rms, volume_ratio,
    n_candidates, reason}.
    """
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.io.ase import AseAtomsAdaptor

    out = dict(
        matched=False,
        mp_ref_index=-1,
        eps_dft_ev_per_atom=np.nan,
        match_rms=np.nan,
        volume_ratio=np.nan,
        n_candidates=len(polymorphs),
        reason="",
    )
    if not polymorphs:
        out["reason"] = "element not in the MP PBE references"
        return out
    s_ouc = AseAtomsAdaptor.get_structure(ouc)
    v_ouc = s_ouc.volume / len(s_ouc)
    hits = []
    # first the usual primitive-cell reduction; when the relaxed OUC does not reduce cleanly (its interior is not
    # exactly periodic), compare the OUC as it is, as a supercell of each polymorph
    for kw in (MATCHER_KW, {**MATCHER_KW, "primitive_cell": False, "attempt_supercell": True}):
        matcher = StructureMatcher(**kw)
        for i, ref in enumerate(polymorphs):
            s_ref = ref["structure"]
            try:
                rms = matcher.get_rms_dist(s_ouc, s_ref)
            except Exception:  # pymatgen raises on some degenerate lattices: treat as no match
                rms = None
            if rms is not None:
                ratio = v_ouc / (s_ref.volume / len(s_ref))
                hits.append((abs(np.log(ratio)), rms[0], i, ratio))
        if hits:
            break
    if not hits:
        out["reason"] = f"OUC matches none of the {len(polymorphs)} MP PBE polymorphs of the element"
        return out
    _, rms, i, ratio = min(hits)
    out.update(
        matched=True,
        mp_ref_index=i,
        eps_dft_ev_per_atom=float(polymorphs[i]["energy_per_atom"]),
        match_rms=float(rms),
        volume_ratio=float(ratio),
    )
    return out
