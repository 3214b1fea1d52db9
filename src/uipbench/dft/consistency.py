"""Physics checks of energy / force / stress labels: do they describe one potential-energy surface?

* :func:`work_residual_ev_per_atom`: between two close frames A and B the energy difference must equal the work
  of forces and stresses along the straight path (cell h -> h + Δh, fractional positions s -> s + Δs). The
  trapezoid rule, exact for a quadratic energy, gives

      E_B - E_A ≈ ½ Σ_X [ V_X σ_X : sym(h_X⁻¹ Δh) − Σ_i F_X,i · (Δs_i h_X) ],  X ∈ {A, B}

  (rows of h are lattice vectors, ASE sign convention σ = V⁻¹ ∂E/∂ε). Its own error falls as the cube of the
  step, so for a 1 % strain and 0.01-0.02 Å displacements it is below ~0.1 meV/atom: a residual above
  :data:`MAX_RESIDUAL_MEV_PER_ATOM` can only come from inconsistent labels (unconverged basis, k-mesh switches).
* :func:`stress_vs_dedv_gpa`: the mean pressure of a group of frames against the slope dE/dV of their energies.
* :func:`pressure_gpa` and :data:`MAX_ABS_PRESSURE_GPA`: frames must lie in a declared pressure range.

Everything here is pure numpy on ``dict(cell, positions, energy, forces, stress)`` frames (eV, Å, eV/Å³).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..units import EV_PER_A3_TO_GPA

#: training-grade gates (issue 16): close-frame residual, group pressure vs dE/dV, pressure range
MAX_RESIDUAL_MEV_PER_ATOM = 1.0
MAX_STRESS_OFFSET_GPA = 1.0
MAX_ABS_PRESSURE_GPA = 60.0  #: ±5 % strains of stiff solids (B ≈ 400 GPa) reach ~40-50 GPa


def voigt_to_matrix(v: Sequence[float]) -> np.ndarray:
    """ASE Voigt order xx yy zz yz xz xy -> symmetric 3x3."""
    xx, yy, zz, yz, xz, xy = np.asarray(v, float)
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def _as_frame(x) -> dict:
    if isinstance(x, dict):
        return x
    return {
        "cell": x.cell[:],
        "positions": x.positions,
        "energy": x.get_potential_energy(),
        "forces": x.get_forces(),
        "stress": x.get_stress(voigt=True),
    }


def frame_from_record(rec) -> dict:
    """A check frame from a stored GPAW record (``cell_a``, ``positions_a``, ``energy_ev``, ``forces_ev_per_a``,
    ``stress_ev_per_a3``)."""
    return {
        "cell": np.asarray(rec["cell_a"]),
        "positions": np.asarray(rec["positions_a"]),
        "energy": float(rec["energy_ev"]),
        "forces": np.asarray(rec["forces_ev_per_a"]),
        "stress": np.asarray(rec["stress_ev_per_a3"]),
    }


def work_ev(a, b) -> float:
    """Trapezoid-rule work of forces and stresses from frame ``a`` to frame ``b`` (eV): the predicted E_b - E_a."""
    a, b = _as_frame(a), _as_frame(b)
    ha, hb = np.asarray(a["cell"], float), np.asarray(b["cell"], float)
    dh = hb - ha
    sa = np.linalg.solve(ha.T, np.asarray(a["positions"], float).T).T
    sb = np.linalg.solve(hb.T, np.asarray(b["positions"], float).T).T
    ds = sb - sa
    ds -= np.round(ds)  # minimum image: wrapping an atom across the cell is no displacement
    w = 0.0
    for x, h in ((a, ha), (b, hb)):
        eps = np.linalg.solve(h, dh)  # h⁻¹ Δh
        eps = 0.5 * (eps + eps.T)
        vol = abs(np.linalg.det(h))
        w += vol * float(np.sum(voigt_to_matrix(x["stress"]) * eps))
        w -= float(np.sum(np.asarray(x["forces"], float) * (ds @ h)))
    return 0.5 * w


def work_residual_ev_per_atom(a, b) -> float:
    """(E_b - E_a) - work(a -> b), per atom (eV/atom): zero for labels of one smooth PES, up to O(step³)."""
    a, b = _as_frame(a), _as_frame(b)
    n = len(np.asarray(a["positions"]))
    return (float(b["energy"]) - float(a["energy"]) - work_ev(a, b)) / n


def pressure_gpa(stress_voigt: Sequence[float]) -> float:
    """P = -tr(σ)/3 in GPa from an ASE stress (eV/Å³)."""
    return -float(np.sum(np.asarray(stress_voigt, float)[:3])) / 3.0 * EV_PER_A3_TO_GPA


def stress_vs_dedv_gpa(
    volumes_a3: Sequence[float], energies_ev: Sequence[float], stresses_voigt: Sequence[Sequence[float]]
) -> float:
    """Mean pressure of a group of frames of one cell minus -dE/dV from a linear fit of E(V) (GPa).

    Only meaningful for frames that differ mostly by volume (a small isotropic scan); for random strains and
    rattles the fit absorbs their energy as noise. Returns NaN for fewer than three frames or no volume spread.
    """
    v = np.asarray(volumes_a3, float)
    e = np.asarray(energies_ev, float)
    if len(v) < 3 or np.ptp(v) < 1e-6 * v.mean():
        return float("nan")
    slope = np.polyfit(v, e, 1)[0]  # eV/Å³
    p_mean = float(np.mean([pressure_gpa(s) for s in stresses_voigt]))
    return p_mean - (-slope * EV_PER_A3_TO_GPA)


def finite_difference_force_error(
    energy_of, atoms, index: int, direction: Sequence[float], step_a: float = 0.01, force: Sequence[float] | None = None
) -> float:
    """|F·d - (-(E(+h) - E(-h)) / 2h)| (eV/Å) for atom ``index`` moved along unit vector ``direction``."""
    d = np.asarray(direction, float)
    d = d / np.linalg.norm(d)
    plus, minus = atoms.copy(), atoms.copy()
    plus.positions[index] += step_a * d
    minus.positions[index] -= step_a * d
    fd = -(energy_of(plus) - energy_of(minus)) / (2 * step_a)
    f = np.asarray(force if force is not None else atoms.get_forces()[index], float)
    return abs(float(f @ d) - fd)
