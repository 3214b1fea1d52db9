"""One GPAW single point: its specification (:class:`CalcSpec`, whose :meth:`~CalcSpec.key` is the result-store
key), the calculator, and :func:`compute` / :func:`compute_task` (the engine entry point).

GPAW is imported only inside :func:`gpaw_calculator` (and :func:`compute_task` through it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..engine import Task
from ..store import make_key, structure_hash
from .settings import (
    DEFAULT_SETTINGS,
    FUNCTIONALS,
    MIXERS,
    DFTSettings,
    _file_sha256,
    initial_magmoms,
    kpt_mesh,
    software_versions,
)

#: result-store kinds of the four sorts of calculation
KIND_PAIRS, KIND_EOS, KIND_SLAB, KIND_BULK = "dft-pairs", "dft-eos", "dft-slab", "dft-oriented-bulk"


@dataclass(frozen=True)
class CalcSpec:
    """Everything one GPAW single point needs (picklable: it travels to pool / Dask workers)."""

    atoms: Any  #: ase.Atoms
    functional: str  #: key of FUNCTIONALS
    settings: DFTSettings
    kpts: tuple[int, int, int]
    stress: bool = True
    label: str = ""

    def key(self, kind: str) -> str:
        return make_key(
            kind=kind,
            code="gpaw",
            functional=self.functional,
            settings=self.settings.as_dict(),
            kpts=list(self.kpts),
            magmoms=initial_magmoms(self.atoms, self.settings),
            stress=self.stress,
            structure=structure_hash(self.atoms),
        )

    def task(self, kind: str, item: str) -> Task:
        return Task(key=self.key(kind), kind=kind, model=f"gpaw-{self.functional}", item=item, args=self)


def make_spec(
    atoms,
    functional: str,
    settings: DFTSettings = DEFAULT_SETTINGS,
    kpts: Sequence[int] | None = None,
    stress: bool = True,
    label: str = "",
) -> CalcSpec:
    if functional not in FUNCTIONALS:
        raise ValueError(f"unknown functional {functional!r}; choose from {sorted(FUNCTIONALS)}")
    atoms = atoms.copy()
    atoms.calc = None
    k = tuple(int(x) for x in (kpts if kpts is not None else kpt_mesh(atoms, settings.kpt_density_per_inv_a)))
    return CalcSpec(atoms=atoms, functional=functional, settings=settings, kpts=k, stress=stress, label=label)


def gpaw_calculator(spec: CalcSpec, txt: str | None = None):
    """The GPAW calculator of ``spec`` (PW mode, one process): GPAW's default code, or its legacy PW code for
    ``settings.basis == "constant"`` (see :class:`~uipbench.dft.settings.DFTSettings`)."""
    s = spec.settings
    magmoms = initial_magmoms(spec.atoms, s)
    if s.basis:
        from gpaw.old.calculator import GPAW
        from gpaw.old.wavefunctions.pw import PW

        mode = PW(s.ecut_ev, dedecut="estimate" if s.pulay_stress else None)
    else:
        from gpaw import GPAW, PW

        mode = PW(s.ecut_ev, dedecut="estimate" if s.pulay_stress else 0)
    extra = {"mixer": dict(MIXERS[s.mixer])} if s.mixer else {}
    return GPAW(
        **extra,
        mode=mode,
        xc=FUNCTIONALS[spec.functional],
        kpts={"size": list(spec.kpts), "gamma": True},
        occupations={"name": s.smearing, "width": s.smearing_width_ev},
        spinpol=any(m != 0 for m in magmoms),
        convergence={
            "energy": s.conv_energy_ev_per_electron,
            "density": s.conv_density,
            "eigenstates": s.conv_eigenstates,
        },
        maxiter=s.maxiter,
        setups=s.setups,
        txt=txt,
    )


def _setup_provenance(calc) -> dict[str, dict]:
    out = {}
    for setup in calc.setups.setups.values():
        fn = getattr(setup, "filename", None)
        sym = setup.symbol
        if fn and Path(fn).exists():
            out[sym] = {"file": Path(fn).name, "sha256": _file_sha256(str(fn))}
        else:
            out[sym] = {"file": str(fn), "sha256": None}
    return dict(sorted(out.items()))


def start_atoms(spec: CalcSpec):
    """A copy of ``spec``'s structure with its initial magnetic moments set; returns (atoms, moments)."""
    atoms = spec.atoms.copy()
    magmoms = initial_magmoms(atoms, spec.settings)
    if any(m != 0 for m in magmoms):
        atoms.set_initial_magnetic_moments(magmoms)
    return atoms, magmoms


def compute(spec: CalcSpec) -> dict:
    """Run one single point; return a JSON-able record (energy, forces, stress, structure, settings, versions).

    ``energy_ev`` is GPAW's total energy (relative to its isolated reference atoms, not on the VASP scale); with
    Marzari-Vanderbilt smearing it equals the free energy whose derivatives are the forces and stress.
    """
    atoms, magmoms = start_atoms(spec)
    txt = None
    logdir = os.environ.get("UIPBENCH_GPAW_LOGS")
    if logdir:
        Path(logdir).mkdir(parents=True, exist_ok=True)
        txt = str(Path(logdir) / f"{spec.label or atoms.get_chemical_formula()}-{spec.functional}.txt")
    calc = gpaw_calculator(spec, txt=txt)
    atoms.calc = calc
    t0 = time.perf_counter()
    energy = float(atoms.get_potential_energy())
    forces = atoms.get_forces()
    stress = atoms.get_stress(voigt=True) if spec.stress else None
    seconds = time.perf_counter() - t0
    try:
        magmom = float(calc.get_magnetic_moment()) if calc.get_number_of_spins() == 2 else 0.0
    except Exception:
        magmom = None
    try:
        iterations = int(calc.get_number_of_iterations())
    except Exception:
        iterations = None
    return {
        "functional": spec.functional,
        "xc": FUNCTIONALS[spec.functional],
        "label": spec.label,
        "energy_ev": energy,
        "energy_ev_per_atom": energy / len(atoms),
        "forces_ev_per_a": np.round(forces, 8).tolist(),
        "stress_ev_per_a3": None if stress is None else np.round(stress, 10).tolist(),
        "magmom_total_bohr": magmom,
        "scf_iterations": iterations,
        "fermi_level_ev": _fermi_level(calc),
        "band_gap_ev": band_gap_ev(calc),
        "kpts": list(spec.kpts),
        "n_atoms": len(atoms),
        "formula": atoms.get_chemical_formula(mode="hill"),
        "numbers": atoms.numbers.tolist(),
        "positions_a": atoms.positions.tolist(),
        "cell_a": atoms.cell[:].tolist(),
        "pbc": atoms.pbc.tolist(),
        "initial_magmoms": magmoms,
        "structure_hash": structure_hash(spec.atoms),
        "settings": spec.settings.as_dict(),
        "versions": software_versions(),
        "setups": _setup_provenance(calc),
        "calc_seconds": seconds,
    }


def band_gap_ev(calc) -> float | None:
    """Kohn-Sham gap: 0 when any band crosses the Fermi level across the irreducible k-points (a metal, whatever
    the sparseness of the mesh), else the lowest eigenvalue above it minus the highest below; None if the
    calculator cannot tell."""
    try:
        ef = _fermi_level(calc)
        nk = len(calc.get_ibz_k_points())
        eig = np.array(
            [[calc.get_eigenvalues(kpt=k, spin=s) for k in range(nk)] for s in range(calc.get_number_of_spins())]
        )  # (spin, k, band)
    except Exception:
        return None
    if ef is None:
        return None
    crosses = (eig.min(axis=1) < ef) & (eig.max(axis=1) > ef)
    if crosses.any():
        return 0.0
    below, above = eig[eig <= ef], eig[eig > ef]
    if not len(below) or not len(above):
        return None
    return float(above.min() - below.max())


def _fermi_level(calc) -> float | None:
    try:
        return float(calc.get_fermi_level())
    except Exception:  # fixed-moment runs have two Fermi levels (their mean is reported)
        try:
            return float(np.mean(calc.get_fermi_levels()))
        except Exception:
            return None


def compute_task(spec: CalcSpec) -> dict:
    """Engine entry point (top-level, so process pools and Dask can pickle it)."""
    from ..engine import single_thread

    single_thread()
    return compute(spec)
