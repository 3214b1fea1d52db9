"""Numerical settings of the GPAW calculations (shared by PBE and r2SCAN), k-point meshes, initial magnetic
moments, and the software versions recorded with every result.

Every :class:`DFTSettings` field enters the result-store key (:meth:`uipbench.dft.calc.CalcSpec.key`): do not
rename, reorder or add fields without meaning to start a new, separate set of results.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: functional label -> GPAW ``xc`` string. GPAW has no r2SCAN keyword; libxc's exchange + correlation pair works
#: (with the PBE PAW setups, as usual for meta-GGAs in GPAW).
FUNCTIONALS: dict[str, str] = {"pbe": "PBE", "r2scan": "MGGA_X_R2SCAN+MGGA_C_R2SCAN"}

#: initial magnetic moments (μB/atom) of elements computed spin-polarised (ferromagnetic start; the SCF finds the
#: moment). Magnitudes follow the usual high-moment starting guesses (cf. pymatgen's MP input sets).
DEFAULT_MAGMOMS: dict[str, float] = {"Cr": 3.0, "Mn": 4.0, "Fe": 3.0, "Co": 2.0, "Ni": 1.0}


# ----------------------------------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class DFTSettings:
    """One set of numerical settings shared by every functional (so that E_r2SCAN - E_PBE is a clean difference).

    The values are a throughput compromise for a small shared machine, checked in
    ``notebooks/20_dft_references`` (:data:`CONVERGENCE_VARIANTS`, :data:`PAIR_CONVERGENCE_VARIANTS`): on Cu(111),
    400 -> 500 eV moves γ by 0.002 J/m², while k-point density 3.5 -> 4.5 Å moves it by 0.047 J/m², hence
    :data:`SURFACE_SETTINGS` (4.5 Å) for dataset 2. Every field enters the result-store key: changing one (or
    adding a field) starts a new, separate set of results.
    """

    ecut_ev: float = 400.0  #: plane-wave cutoff
    kpt_density_per_inv_a: float = 3.5  #: Γ-centred mesh, n_i = ceil(2π |b_i| ρ) (GPAW/ASE "density" convention)
    smearing: str = "marzari-vanderbilt"  #: cold smearing: free energy ≈ zero-width energy, forces consistent
    smearing_width_ev: float = 0.1
    conv_energy_ev_per_electron: float = 1e-5
    conv_density: float = 1e-5
    conv_eigenstates: float = 1e-8
    maxiter: int = 300
    pulay_stress: bool = True  #: PW(dedecut='estimate'): finite-basis (Pulay) correction of the stress
    setups: str = "paw"  #: GPAW's default PAW setups (shipped by gpaw-data); PBE-generated also for r2SCAN
    magmoms: tuple[tuple[str, float], ...] = tuple(sorted(DEFAULT_MAGMOMS.items()))
    # dataset 2 geometry
    slab_layers: tuple[tuple[str, int], ...] = (("100", 6), ("110", 8), ("111", 6))
    vacuum_a: float = 12.0  #: total vacuum thickness between periodic slab images
    # fields added after results were stored: they enter the key only when they differ from their default, so the
    # keys of every earlier result stay what they were
    mixer: str = ""  #: "" = GPAW's default density mixer; else a name of :data:`MIXERS` (an SCF-only change)
    #: plane-wave basis: "" = GPAW's default (new) code at constant cutoff, whose ``dedecut="estimate"`` leaves the
    #: stress without its Pulay (finite-basis) part; "constant" = GPAW's legacy PW code at constant cutoff with its
    #: estimated Pulay stress. Trapezoid residual of a 1 % strain of one-atom Cu, PBE, k 2.0 (meV/atom), default /
    #: "constant": 400 eV -7.7 / -0.87; 500 eV -1.44 / -0.37 (a plane-wave set fixed to the unstrained cell, tried
    #: and not kept: -2.6 / -0.26). The training set uses "constant".
    basis: str = ""

    def as_dict(self) -> dict:
        d = json.loads(json.dumps(dataclasses.asdict(self)))
        for name, default in _LATER_FIELDS.items():
            if d.get(name) == default:
                d.pop(name)
        return d

    def magmom_of(self, symbol: str) -> float:
        return dict(self.magmoms).get(symbol, 0.0)

    def layers_of(self, hkl: Sequence[int]) -> int:
        return dict(self.slab_layers)["".join(str(abs(i)) for i in hkl)]

    def replace(self, **changes) -> DFTSettings:
        return dataclasses.replace(self, **changes)


#: fields omitted from :meth:`DFTSettings.as_dict` (and so from store keys) at their default value
_LATER_FIELDS = {"mixer": "", "basis": ""}
#: density mixers by name (GPAW ``mixer=`` arguments). They change how the SCF gets to the ground state, not the
#: ground state: a converged energy does not depend on them (to the SCF tolerance).
MIXERS: dict[str, dict] = {"robust": {"backend": "pulay", "beta": 0.02, "nmaxold": 8, "weight": 100.0}}

DEFAULT_SETTINGS = DFTSettings()
#: dataset 2 (surfaces, PBE) and its E-V curves: the same settings with denser k-points, because γ of 1x1 slabs
#: converges slowly with k (Cu(111): -0.047 J/m² from 3.5 to 4.5 Å, 0.002 J/m² from 400 to 500 eV; see
#: CONVERGENCE_VARIANTS and data/dft/convergence_cu_gamma.csv)
SURFACE_SETTINGS = DEFAULT_SETTINGS.replace(kpt_density_per_inv_a=4.5)
#: dataset 1 (paired PBE / r2SCAN single points): the same settings with a coarser k-mesh. Strained, rattled cells
#: keep almost no point symmetry, so a one-atom cell at 3.5 Å needs ~700 irreducible k-points (r2SCAN: ~2 min);
#: 2.0 Å cuts that 4x. Both functionals share the mesh, so the k-point error largely cancels in E_r2SCAN - E_PBE:
#: :data:`PAIR_CONVERGENCE_VARIANTS` compares it with the first 14 cells, computed at 3.5 Å.
PAIR_SETTINGS = DEFAULT_SETTINGS.replace(kpt_density_per_inv_a=2.0)
#: settings for tests and CI smoke runs (seconds per calculation; not converged)
CHEAP_SETTINGS = DFTSettings(
    ecut_ev=250.0, kpt_density_per_inv_a=1.5, conv_energy_ev_per_electron=1e-6, conv_density=1e-6, smearing_width_ev=0.2
)


def kpt_mesh(atoms, density: float) -> list[int]:
    """Γ-centred Monkhorst-Pack sizes: ceil(2π |b_i| ρ) along periodic directions, 1 along the others."""
    recip = np.linalg.norm(atoms.cell.reciprocal(), axis=1)  # without the 2π
    return [max(1, int(math.ceil(2 * math.pi * r * density - 1e-6))) if p else 1 for r, p in zip(recip, atoms.pbc)]


def initial_magmoms(atoms, settings: DFTSettings) -> list[float]:
    return [settings.magmom_of(s) for s in atoms.get_chemical_symbols()]


# ----------------------------------------------------------------------------------------------------------------
# versions / provenance


@functools.cache
def software_versions() -> dict[str, str]:
    """GPAW, gpaw-data (PAW setups), libxc and ASE versions of this process ({} entries when GPAW is absent)."""
    from importlib import metadata

    out = {}
    for dist in ("gpaw", "gpaw-data", "ase", "numpy", "scipy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    try:
        import _gpaw

        out["libxc"] = str(_gpaw.libxc_version)
    except (ImportError, AttributeError):
        pass
    return out


@functools.cache
def _file_sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def gpaw_available() -> tuple[bool, str]:
    """(True, '') when GPAW and its PAW setups import, else (False, reason)."""
    try:
        import gpaw  # noqa: F401
        from gpaw import setup_paths  # noqa: F401
    except Exception as exc:  # ImportError, or a broken build (missing libxc.so)
        return False, f"GPAW is not importable ({type(exc).__name__}: {exc}); run scripts/install_gpaw.sh"
    return True, ""
