"""Open DFT reference generator (GPAW; PBE and r2SCAN on identical settings) and the project's own datasets.

Why: the transfer paper's MP-r2SCAN training set cannot be downloaded here and the Materials Project surface set
carries no total energies. This module computes both kinds of reference with open software, so that the
repository is self-contained offline and anyone can extend the references with consistent settings:

* **dataset 1** (``pairs``): small cells (1-8 atoms) of elements and binary compounds in common prototypes
  (fcc/bcc/hcp/diamond, rocksalt, CsCl, zincblende, wurtzite, fluorite, L1_2), randomly strained (±5 %) and rattled
  (0.02-0.1 Å), each computed with PBE *and* r2SCAN: energies, forces, stresses;
* **dataset 2** (``surfaces``): PBE equation of state of fcc metals -> lattice constant -> static symmetric 1x1
  slabs (pymatgen ``SlabGenerator``) of (111)/(100)/(110) and their oriented bulk references with the same
  in-plane k-mesh -> γ = (E_slab - N ε_bulk) / (2A);
* ``eos``: PBE E-V curves (validation: Cu, Al, Si lattice constants).

Every calculation is one :class:`~uipbench.engine.Task` in the project's :class:`~uipbench.store.ResultStore`
(keyed by functional, settings, k-mesh, initial moments and the structure hash), so runs resume and a pool or Dask
runs one single-threaded GPAW process per core. :func:`export` writes the committed extended-XYZ files under
``data/dft/`` from whatever the store holds (deterministic order), and the module registers them in
:mod:`uipbench.datasets`.

GPAW is an optional dependency (``scripts/install_gpaw.sh``): this module imports it only inside the functions
that run DFT, so structure generation, export and loading work without it.

    python -m uipbench.dft run surfaces --elements Cu Ag Au Pt Pd Ni Al Rh
    python -m uipbench.dft run pairs --elements Cu Al Si --prototypes ref rocksalt --n-per-prototype 3
    python -m uipbench.dft run eos --elements Cu Al Si
    python -m uipbench.dft run convergence --elements Cu   # γ vs cutoff, k-points, smearing, vacuum, layers
    python -m uipbench.dft run pairs-convergence           # dataset-1 cells vs cutoff and k-points
    python -m uipbench.dft export          # rewrite data/dft/*.extxyz from the store
    python -m uipbench.dft status          # counts, failures and timings per kind / functional / size

Every ``run`` accepts ``--backend serial|process|dask --workers N`` (one single-threaded GPAW process per core)
and ``--store PATH`` (default ``data/dft/store.sqlite``, committed); the production order is in scripts/dft_production.sh.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import io
import json
import math
import os
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from . import datasets, paths
from .engine import Task, run_tasks
from .store import ResultStore, make_key, structure_hash

# MPI-enabled GPAW builds call MPI_Init on import; Open MPI refuses root without these (containers run as root).
os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")

#: functional label -> GPAW ``xc`` string. GPAW has no r2SCAN keyword; libxc's exchange + correlation pair works
#: (with the PBE PAW setups, as usual for meta-GGAs in GPAW).
FUNCTIONALS: dict[str, str] = {"pbe": "PBE", "r2scan": "MGGA_X_R2SCAN+MGGA_C_R2SCAN"}

#: initial magnetic moments (μB/atom) of elements computed spin-polarised (ferromagnetic start; the SCF finds the
#: moment). Magnitudes follow the usual high-moment starting guesses (cf. pymatgen's MP input sets).
DEFAULT_MAGMOMS: dict[str, float] = {"Cr": 3.0, "Mn": 4.0, "Fe": 3.0, "Co": 2.0, "Ni": 1.0}

EV_PER_A2_TO_J_PER_M2 = 16.021766208

PAIRS_FILE = "dft/pairs_pbe_r2scan.extxyz"
SURFACES_FILE = "dft/surfaces_pbe.extxyz"
EOS_FILE = "dft/eos_pbe.extxyz"
MANIFEST_FILE = "dft/manifest.json"
CONVERGENCE_FILE = "dft/convergence_cu_gamma.csv"
PAIR_CONVERGENCE_FILE = "dft/convergence_pairs.csv"

KIND_PAIRS, KIND_EOS, KIND_SLAB, KIND_BULK = "dft-pairs", "dft-eos", "dft-slab", "dft-oriented-bulk"


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

    def as_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def magmom_of(self, symbol: str) -> float:
        return dict(self.magmoms).get(symbol, 0.0)

    def layers_of(self, hkl: Sequence[int]) -> int:
        return dict(self.slab_layers)["".join(str(abs(i)) for i in hkl)]

    def replace(self, **changes) -> "DFTSettings":
        return dataclasses.replace(self, **changes)


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
CHEAP_SETTINGS = DFTSettings(ecut_ev=250.0, kpt_density_per_inv_a=1.5, conv_energy_ev_per_electron=1e-6,
                             conv_density=1e-6, smearing_width_ev=0.2)


def kpt_mesh(atoms, density: float) -> list[int]:
    """Γ-centred Monkhorst-Pack sizes: ceil(2π |b_i| ρ) along periodic directions, 1 along the others."""
    recip = np.linalg.norm(atoms.cell.reciprocal(), axis=1)  # without the 2π
    return [max(1, int(math.ceil(2 * math.pi * r * density - 1e-6))) if p else 1
            for r, p in zip(recip, atoms.pbc)]


def initial_magmoms(atoms, settings: DFTSettings) -> list[float]:
    return [settings.magmom_of(s) for s in atoms.get_chemical_symbols()]


# ----------------------------------------------------------------------------------------------------------------
# versions / provenance


@functools.lru_cache(maxsize=None)
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


@functools.lru_cache(maxsize=None)
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


# ----------------------------------------------------------------------------------------------------------------
# one calculation


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
        return make_key(kind=kind, code="gpaw", functional=self.functional, settings=self.settings.as_dict(),
                        kpts=list(self.kpts), magmoms=initial_magmoms(self.atoms, self.settings),
                        stress=self.stress, structure=structure_hash(self.atoms))

    def task(self, kind: str, item: str) -> Task:
        return Task(key=self.key(kind), kind=kind, model=f"gpaw-{self.functional}", item=item, args=self)


def make_spec(atoms, functional: str, settings: DFTSettings = DEFAULT_SETTINGS, kpts: Sequence[int] | None = None,
              stress: bool = True, label: str = "") -> CalcSpec:
    if functional not in FUNCTIONALS:
        raise ValueError(f"unknown functional {functional!r}; choose from {sorted(FUNCTIONALS)}")
    atoms = atoms.copy()
    atoms.calc = None
    k = tuple(int(x) for x in (kpts if kpts is not None else kpt_mesh(atoms, settings.kpt_density_per_inv_a)))
    return CalcSpec(atoms=atoms, functional=functional, settings=settings, kpts=k, stress=stress, label=label)


def gpaw_calculator(spec: CalcSpec, txt: str | None = None):
    """The GPAW calculator of ``spec`` (PW mode, one process)."""
    from gpaw import GPAW, PW

    s = spec.settings
    magmoms = initial_magmoms(spec.atoms, s)
    return GPAW(
        mode=PW(s.ecut_ev, dedecut="estimate" if s.pulay_stress else 0),
        xc=FUNCTIONALS[spec.functional],
        kpts={"size": list(spec.kpts), "gamma": True},
        occupations={"name": s.smearing, "width": s.smearing_width_ev},
        spinpol=any(m != 0 for m in magmoms),
        convergence={"energy": s.conv_energy_ev_per_electron, "density": s.conv_density,
                     "eigenstates": s.conv_eigenstates},
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


def compute(spec: CalcSpec) -> dict:
    """Run one single point; return a JSON-able record (energy, forces, stress, structure, settings, versions).

    ``energy_ev`` is GPAW's total energy (relative to its isolated reference atoms, not on the VASP scale); with
    Marzari-Vanderbilt smearing it equals the free energy whose derivatives are the forces and stress.
    """
    atoms = spec.atoms.copy()
    magmoms = initial_magmoms(atoms, spec.settings)
    if any(m != 0 for m in magmoms):
        atoms.set_initial_magnetic_moments(magmoms)
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
    from .engine import single_thread

    single_thread()
    return compute(spec)


# ----------------------------------------------------------------------------------------------------------------
# dataset 1: prototypes, strains, rattles

ELEMENTAL_PROTOTYPES = ("fcc", "bcc", "hcp", "diamond", "sc")
#: binary prototypes -> default compounds (A first as in the formula). Chosen: chemically sensible, small cells,
#: no f electrons, elements mostly among DEFAULT_ELEMENTS.
BINARY_COMPOUNDS: dict[str, tuple[tuple[str, str], ...]] = {
    "rocksalt": (("Li", "F"), ("Na", "Cl"), ("K", "Cl"), ("Mg", "O"), ("Ca", "O"), ("Ti", "C"), ("Ti", "N"),
                 ("V", "N"), ("Li", "Cl"), ("Na", "F"), ("Zr", "C"), ("Sc", "N")),
    "cesiumchloride": (("Ni", "Al"), ("Cu", "Zn"), ("Fe", "Al"), ("Co", "Al"), ("Cs", "Cl"), ("Pd", "Al"),
                       ("Ag", "Mg")),
    "zincblende": (("Ga", "As"), ("Al", "P"), ("Si", "C"), ("B", "N"), ("Zn", "S"), ("Ga", "N"), ("Al", "As"),
                   ("Ga", "P")),
    "wurtzite": (("Zn", "O"), ("Ga", "N"), ("Al", "N")),
    "fluorite": (("Ca", "F"), ("Mg", "Si"), ("Li", "O"), ("Sr", "F")),  # Mg2Si, Li2O: anti-fluorite
    "L1_2": (("Ni", "Al"), ("Cu", "Au"), ("Al", "Sc"), ("Pt", "Al"), ("Ni", "Fe")),  # A3B
}
#: stoichiometry (n_A, n_B) per binary prototype, and for fluorite which species sits on the fcc site
_FLUORITE_CATION_FIRST = {("Ca", "F"): True, ("Sr", "F"): True, ("Mg", "Si"): False, ("Li", "O"): False}
PROTOTYPES = ("ref",) + ELEMENTAL_PROTOTYPES + tuple(BINARY_COMPOUNDS)

#: default element set of dataset 1 (>= 20 elements with simple reference structures, plus the anions and
#: partners of the default compounds)
DEFAULT_ELEMENTS = ("Li", "Be", "Na", "Mg", "Al", "Si", "K", "Ca", "Sc", "Ti", "V", "Cr", "Fe", "Co", "Ni", "Cu",
                    "Zn", "Ge", "Sr", "Zr", "Nb", "Mo", "Rh", "Pd", "Ag", "W", "Ir", "Pt", "Au", "C", "B", "N",
                    "O", "F", "P", "S", "Cl", "Ga", "As", "Cs")
DEFAULT_PAIR_PROTOTYPES = ("ref",) + tuple(BINARY_COMPOUNDS)
SURFACE_ELEMENTS = ("Cu", "Ag", "Au", "Pt", "Pd", "Ni", "Al", "Rh")
SURFACE_FACETS = ((1, 1, 1), (1, 0, 0), (1, 1, 0))
EOS_ELEMENTS = ("Cu", "Al", "Si")
#: lattice-constant scale factors of the E-V curves (around the experimental a; PBE is ~1-2 % larger)
EOS_SCALES = (0.98, 0.995, 1.01, 1.025, 1.04)


def _reference_nn_distance(symbol: str) -> tuple[str | None, float]:
    """(reference structure if simple, nearest-neighbour distance) from ASE's experimental reference states;
    elements with complex or molecular ground states fall back to twice pymatgen's (Slater) atomic radius."""
    from ase.build import bulk
    from ase.data import atomic_numbers, reference_states
    from ase.neighborlist import neighbor_list

    ref = reference_states[atomic_numbers[symbol]] or {}
    sym = ref.get("symmetry")
    if sym in ELEMENTAL_PROTOTYPES and ref.get("basis") is None:
        at = bulk(symbol)
        d = neighbor_list("d", at, 4.5 * max(1.0, ref["a"] / 4.0))
        return sym, float(d.min())
    from pymatgen.core import Element

    return None, 2.0 * float(Element(symbol).atomic_radius)


def _radius(symbol: str) -> float:
    from pymatgen.core import Element

    return float(Element(symbol).atomic_radius)


def build_prototype(prototype: str, species: Sequence[str]):
    """Ideal (unstrained) cell of ``prototype`` for ``species`` ([A] for elemental, [A, B] for binaries).

    Elemental cells keep the nearest-neighbour distance of the element's experimental reference structure; binary
    cells use d(A-B) = r_A + r_B with pymatgen's (Slater) atomic radii. These are starting geometries: the random
    strain makes every structure off-equilibrium anyway.
    """
    from ase.build import bulk
    from ase.spacegroup import crystal

    if prototype in ELEMENTAL_PROTOTYPES or prototype == "ref":
        (el,) = species
        ref_sym, d = _reference_nn_distance(el)
        proto = ref_sym if prototype == "ref" else prototype
        if proto is None:
            raise ValueError(f"{el} has no simple reference structure (ASE reference state); use fcc/bcc/...")
        if proto == "fcc":
            return bulk(el, "fcc", a=d * math.sqrt(2))
        if proto == "bcc":
            return bulk(el, "bcc", a=2 * d / math.sqrt(3))
        if proto == "sc":
            return bulk(el, "sc", a=d)
        if proto == "diamond":
            return bulk(el, "diamond", a=4 * d / math.sqrt(3))
        if proto == "hcp":
            from ase.data import atomic_numbers, reference_states

            ref = reference_states[atomic_numbers[el]] or {}
            covera = ref.get("c/a", math.sqrt(8 / 3)) if ref.get("symmetry") == "hcp" else math.sqrt(8 / 3)
            return bulk(el, "hcp", a=d, covera=covera)  # a = in-plane nearest-neighbour distance
        raise ValueError(prototype)
    a_el, b_el = species
    d = _radius(a_el) + _radius(b_el)
    if prototype == "rocksalt":
        return bulk(f"{a_el}{b_el}", "rocksalt", a=2 * d)
    if prototype == "cesiumchloride":
        return bulk(f"{a_el}{b_el}", "cesiumchloride", a=2 * d / math.sqrt(3))
    if prototype == "zincblende":
        return bulk(f"{a_el}{b_el}", "zincblende", a=4 * d / math.sqrt(3))
    if prototype == "wurtzite":
        a = d * math.sqrt(8 / 3)  # ideal: bond length u·c with u = 3/8, c/a = sqrt(8/3)
        return bulk(f"{a_el}{b_el}", "wurtzite", a=a, c=a * math.sqrt(8 / 3), u=3 / 8)
    if prototype == "fluorite":
        cation_first = _FLUORITE_CATION_FIRST.get((a_el, b_el), True)
        fcc_site, tet_site = (a_el, b_el) if cation_first else (b_el, a_el)  # AB2 or anti-fluorite A2B
        a = 4 * d / math.sqrt(3)
        return bulk(f"{fcc_site}{tet_site}2", "fluorite", a=a)
    if prototype == "L1_2":  # A3B (Cu3Au type): B at the cube corner, A at the face centres
        a = d * math.sqrt(2)
        return crystal([b_el, a_el], basis=[(0, 0, 0), (0, 0.5, 0.5)], spacegroup=221, cellpar=[a, a, a, 90, 90, 90],
                       primitive_cell=False)
    raise ValueError(f"unknown prototype {prototype!r}; choose from {PROTOTYPES}")


def _stable_int(text: str) -> int:
    return zlib.crc32(text.encode())


def perturb(atoms, rng: np.random.Generator, max_strain: float = 0.05, rattle_range=(0.02, 0.1)):
    """Random symmetric strain (components uniform in ±``max_strain``) and Gaussian rattle of amplitude σ drawn
    uniformly in ``rattle_range`` (Å; skipped for one-atom cells, where it is a mere translation)."""
    atoms = atoms.copy()
    eps = rng.uniform(-max_strain, max_strain, size=(3, 3))
    eps = 0.5 * (eps + eps.T)
    atoms.set_cell(atoms.cell[:] @ (np.eye(3) + eps), scale_atoms=True)
    sigma = float(rng.uniform(*rattle_range))
    disp = rng.normal(0.0, sigma, size=atoms.positions.shape)
    if len(atoms) > 1:
        atoms.positions = atoms.positions + disp
    atoms.wrap()
    atoms.info.update({"strain_voigt": [eps[0, 0], eps[1, 1], eps[2, 2], eps[1, 2], eps[0, 2], eps[0, 1]],
                       "rattle_sigma_a": sigma if len(atoms) > 1 else 0.0})
    return atoms


@dataclass(frozen=True)
class PairStructure:
    id: str
    prototype: str
    species: tuple[str, ...]
    index: int
    atoms: Any


def pair_structures(elements: Iterable[str] = DEFAULT_ELEMENTS, prototypes: Iterable[str] = DEFAULT_PAIR_PROTOTYPES,
                    n_per_prototype: int = 3, seed: int = 0, max_atoms: int = 8,
                    compounds: Iterable[tuple[str, str]] | None = None) -> tuple[list[PairStructure], dict[str, str]]:
    """Dataset-1 structures, deterministic for a given ``seed``: (structures, skipped id -> reason).

    Elemental prototypes are built for every element; "ref" means each element's own simple reference structure
    (elements without one are skipped with the reason). Binary prototypes use the compounds of
    :data:`BINARY_COMPOUNDS` whose two elements are both in ``elements`` (or the given ``compounds``). Each
    structure draws from its own random stream ``(seed, crc32(id))``, so adding elements or prototypes never
    changes the structures already generated. Sorted breadth first (sample index, atoms, id): every prototype
    and composition gets its first sample before any gets a second, so an interrupted run still covers them all.
    """
    elements = list(dict.fromkeys(elements))
    out: list[PairStructure] = []
    skipped: dict[str, str] = {}
    for proto in dict.fromkeys(prototypes):
        if proto not in PROTOTYPES:
            raise ValueError(f"unknown prototype {proto!r}; choose from {PROTOTYPES}")
        if proto == "ref" or proto in ELEMENTAL_PROTOTYPES:
            combos = [(el,) for el in elements]
        else:
            pool = BINARY_COMPOUNDS[proto] if compounds is None else tuple(compounds)
            combos = [c for c in pool if all(e in elements for e in c)]
        for species in combos:
            try:
                base = build_prototype(proto, species)
            except ValueError as exc:
                skipped[f"{'-'.join(species)}-{proto}"] = str(exc)
                continue
            if len(base) > max_atoms:
                skipped[f"{base.get_chemical_formula(mode='hill')}-{proto}"] = f"{len(base)} atoms > max_atoms"
                continue
            name = base.get_chemical_formula(mode="metal", empirical=False)
            for i in range(n_per_prototype):
                sid = f"{name}-{proto}-s{seed}-{i:03d}"
                rng = np.random.default_rng([seed, _stable_int(sid)])
                atoms = perturb(base, rng)
                atoms.info.update({"id": sid, "prototype": proto, "sample": i, "seed": seed})
                out.append(PairStructure(sid, proto, tuple(species), i, atoms))
    out.sort(key=lambda s: (s.index, len(s.atoms), s.id))
    return out, skipped


def pair_tasks(structures: Iterable[PairStructure], functionals: Sequence[str] = ("pbe", "r2scan"),
               settings: DFTSettings = PAIR_SETTINGS) -> list[Task]:
    """One task per structure x functional, functionals of one structure adjacent (pairs complete early)."""
    tasks = []
    for s in structures:
        for f in functionals:
            tasks.append(make_spec(s.atoms, f, settings, label=s.id).task(KIND_PAIRS, f"{s.id}|{f}"))
    return tasks


# ----------------------------------------------------------------------------------------------------------------
# equation of state


def eos_structures(element: str, scales: Sequence[float] = EOS_SCALES) -> list[tuple[float, Any]]:
    """(scale, primitive cell with lattice constant scale * a_exp) for an element's simple reference structure."""
    from ase.build import bulk
    from ase.data import atomic_numbers, reference_states

    ref = reference_states[atomic_numbers[element]]
    if ref is None or ref.get("symmetry") not in ("fcc", "bcc", "diamond", "sc"):
        raise ValueError(f"E-V curves are implemented for cubic reference states; {element}: {ref}")
    return [(float(s), bulk(element, a=ref["a"] * s)) for s in scales]


def eos_tasks(elements: Iterable[str], settings: DFTSettings = SURFACE_SETTINGS,
              scales: Sequence[float] = EOS_SCALES) -> list[Task]:
    """PBE single points along the E-V curve; the k-mesh is fixed at the experimental volume for the whole curve
    (a mesh that changed with volume would put steps into E(V))."""
    tasks = []
    for el in elements:
        structs = eos_structures(el, scales)
        ref_atoms = dict(structs)[1.0] if 1.0 in dict(structs) else structs[len(structs) // 2][1]
        mesh = kpt_mesh(ref_atoms, settings.kpt_density_per_inv_a)
        for s, at in structs:
            spec = make_spec(at, "pbe", settings, kpts=mesh, stress=True, label=f"eos-{el}-{s:.3f}")
            tasks.append(spec.task(KIND_EOS, f"{el}|{s:.3f}"))
    return tasks


def fit_eos(volumes_a3: Sequence[float], energies_ev: Sequence[float]) -> dict:
    """Birch-Murnaghan fit (ASE): V0, E0, B (GPa). Raises when the minimum is outside the sampled volumes."""
    from ase.eos import EquationOfState
    from ase.units import GPa

    v = np.asarray(volumes_a3, float)
    e = np.asarray(energies_ev, float)
    eos = EquationOfState(v, e, eos="birchmurnaghan")
    v0, e0, b = eos.fit()
    if not (v.min() < v0 < v.max()):
        raise ValueError(f"E-V minimum {v0:.3f} Å³ outside the sampled range [{v.min():.3f}, {v.max():.3f}]")
    return {"v0_a3": float(v0), "e0_ev": float(e0), "b_gpa": float(b / GPa)}


def eos_results(store: ResultStore, settings: DFTSettings = SURFACE_SETTINGS,
                elements: Iterable[str] | None = None, min_points: int = len(EOS_SCALES)) -> dict[str, dict]:
    """element -> fit (a0_a, v0_a3_per_atom, e0_ev_per_atom, b_gpa, n_points) from stored E-V points of
    ``settings``; {'error': reason} for an element whose points are incomplete or whose fit failed."""
    df = store.frame(kind=KIND_EOS)
    out: dict[str, dict] = {}
    if df.empty:
        return out
    ok = df[df["status"] == "ok"].copy()
    ok = ok[[s == settings.as_dict() for s in ok["settings"]]] if "settings" in ok else ok.iloc[0:0]
    ok["element"] = ok["item"].str.split("|").str[0]
    for el, g in ok.groupby("element", sort=True):
        if elements is not None and el not in elements:
            continue
        if len(g) < min_points:  # a curve still being computed: no fit from a handful of points
            out[el] = {"error": f"incomplete E-V curve ({len(g)} of {min_points} points)", "n_points": len(g)}
            continue
        nat = g["n_atoms"].to_numpy()
        vols = [abs(np.linalg.det(np.array(c))) for c in g["cell_a"]] / nat
        e = g["energy_ev"].to_numpy() / nat
        try:
            fit = fit_eos(vols, e)
        except Exception as exc:
            out[el] = {"error": f"{type(exc).__name__}: {exc}", "n_points": len(g)}
            continue
        from ase.data import atomic_numbers, reference_states

        sym = reference_states[atomic_numbers[el]]["symmetry"]
        atoms_per_conv = {"fcc": 4, "bcc": 2, "diamond": 8, "sc": 1}[sym]
        a0 = (fit["v0_a3"] * atoms_per_conv) ** (1 / 3)
        out[el] = {"a0_a": a0, "v0_a3_per_atom": fit["v0_a3"], "e0_ev_per_atom": fit["e0_ev"], "b_gpa": fit["b_gpa"],
                   "n_points": len(g), "structure": sym}
    return out


# ----------------------------------------------------------------------------------------------------------------
# dataset 2: slabs and oriented bulk references


def gamma_j_per_m2(e_slab_ev: float, n_slab: int, e_bulk_per_atom_ev: float, area_a2: float) -> float:
    """Surface energy of a symmetric slab with two equivalent faces: (E_slab - N ε_bulk) / (2A), in J/m²."""
    return (e_slab_ev - n_slab * e_bulk_per_atom_ev) / (2.0 * area_a2) * EV_PER_A2_TO_J_PER_M2


def _miller_str(hkl: Sequence[int]) -> str:
    return "".join(str(i) for i in hkl)


def _orthogonal_c(structure, max_index: int = 3):
    """Supercell of ``structure`` whose c is perpendicular to its (a, b) plane, when a small one exists
    (c' = n c + i a + j b): the oriented bulk then samples exactly the slab's in-plane k-points."""
    m = structure.lattice.matrix
    normal = np.cross(m[0], m[1])
    normal /= np.linalg.norm(normal)
    best = None
    for n in range(1, max_index + 1):
        for i in range(-max_index, max_index + 1):
            for j in range(-max_index, max_index + 1):
                c = n * m[2] + i * m[0] + j * m[1]
                if np.dot(c, normal) <= 0:
                    continue
                tilt = np.linalg.norm(c - np.dot(c, normal) * normal)
                if tilt < 1e-6 and (best is None or n < best[0]):
                    best = (n, i, j)
    if best is None:
        return structure, False
    n, i, j = best
    return structure.copy().make_supercell([[1, 0, 0], [0, 1, 0], [i, j, n]], in_place=False), True


def _reduce_2d(ab: np.ndarray) -> np.ndarray:
    """Unimodular 2x2 integer matrix T (det +1) such that T @ ab is Gauss-reduced (|a| <= |b|, |a·b| <= |a|²/2)."""
    t = np.eye(2, dtype=int)
    v = np.array(ab, float)
    for _ in range(100):
        if np.dot(v[1], v[1]) < np.dot(v[0], v[0]):
            v = v[::-1].copy()
            t = t[::-1].copy()
            v[1], t[1] = -v[1], -t[1]  # keep det(T) = +1 (right-handed cell)
        mu = int(np.round(np.dot(v[0], v[1]) / np.dot(v[0], v[0])))
        if mu == 0:
            break
        v[1] = v[1] - mu * v[0]
        t[1] = t[1] - mu * t[0]
    return t


def build_slab(element: str, hkl: Sequence[int], a0: float, settings: DFTSettings = SURFACE_SETTINGS):
    """Static symmetric 1x1 slab of fcc ``element`` (pymatgen SlabGenerator, bulk-terminated at lattice constant
    ``a0``) and its oriented bulk cell (same in-plane lattice, c ⟂ surface). Returns (slab, bulk, info) as ASE
    Atoms; the slab's c is perpendicular to the surface with ``settings.vacuum_a`` of vacuum."""
    from pymatgen.core import Lattice, Structure
    from pymatgen.core.surface import SlabGenerator
    from pymatgen.io.ase import AseAtomsAdaptor

    conv = Structure(Lattice.cubic(a0), [element] * 4, [[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]])
    n_layers = settings.layers_of(hkl)
    slab = None
    for n_planes in range(1, n_layers + 1):  # pymatgen counts d_hkl planes, which may hold several atomic layers
        gen = SlabGenerator(conv, hkl, min_slab_size=n_planes, min_vacuum_size=2, in_unit_planes=True,
                            center_slab=True, primitive=True, reorient_lattice=True)
        slabs = [sl for sl in gen.get_slabs(symmetrize=False) if sl.is_symmetric()]
        if not slabs:
            raise ValueError(f"no symmetric bulk-terminated {element}({_miller_str(hkl)}) slab")
        if len(np.unique(np.round(slabs[0].cart_coords[:, 2], 3))) >= n_layers:
            slab = slabs[0]
            break
    if slab is None:
        raise ValueError(f"could not build {n_layers} layers of {element}({_miller_str(hkl)})")
    adaptor = AseAtomsAdaptor()
    slab_atoms = adaptor.get_atoms(slab.get_orthogonal_c_slab())
    bulk_struct, orthogonal = _orthogonal_c(slab.oriented_unit_cell)
    bulk_atoms = adaptor.get_atoms(bulk_struct)
    # same reduced in-plane cell for slab and bulk (Gauss reduction: shortest, most orthogonal a, b)
    transform = _reduce_2d(slab_atoms.cell[:2])
    for at in (slab_atoms, bulk_atoms):
        cell = at.cell[:].copy()
        cell[:2] = transform @ cell[:2]
        at.set_cell(cell, scale_atoms=False)
        at.wrap()
        for k in list(at.arrays):
            if k not in ("numbers", "positions"):
                del at.arrays[k]
        at.info = {}
    # rotate the bulk into the slab's frame (pymatgen re-orients the slab, not its oriented unit cell)
    def frame(cell):
        e1 = cell[0] / np.linalg.norm(cell[0])
        e3 = np.cross(cell[0], cell[1])
        e3 /= np.linalg.norm(e3)
        return np.array([e1, np.cross(e3, e1), e3])

    rot = frame(slab_atoms.cell[:]).T @ frame(bulk_atoms.cell[:])
    bulk_atoms.set_cell(bulk_atoms.cell[:] @ rot.T, scale_atoms=True)
    slab_atoms.center(vacuum=settings.vacuum_a / 2, axis=2)
    slab_atoms.pbc = (True, True, True)  # periodic images separated by vacuum (PW mode needs a periodic cell)
    z = slab_atoms.positions[:, 2]
    n_found = len(np.unique(np.round(z, 3)))
    area = float(np.linalg.norm(np.cross(slab_atoms.cell[0], slab_atoms.cell[1])))
    info = {"element": element, "miller": _miller_str(hkl), "n_layers": int(n_found), "area_a2": area,
            "a0_a": float(a0), "slab_thickness_a": float(z.max() - z.min()), "bulk_c_orthogonal": bool(orthogonal),
            "n_slab_atoms": len(slab_atoms), "n_bulk_atoms": len(bulk_atoms)}
    return slab_atoms, bulk_atoms, info


def surface_specs(element: str, hkl: Sequence[int], a0: float, settings: DFTSettings = SURFACE_SETTINGS,
                  functional: str = "pbe") -> tuple[CalcSpec, CalcSpec, dict]:
    """Slab and oriented-bulk single points sharing the in-plane k-mesh (the bulk adds its own mesh along c)."""
    slab, bulk, info = build_slab(element, hkl, a0, settings)
    k_bulk = kpt_mesh(bulk, settings.kpt_density_per_inv_a)
    k_slab = kpt_mesh(slab, settings.kpt_density_per_inv_a)
    k_inplane = [max(a, b) for a, b in zip(k_bulk[:2], k_slab[:2])]
    label = f"{element}{info['miller']}"
    s_spec = make_spec(slab, functional, settings, kpts=k_inplane + [1], stress=False, label=f"slab-{label}")
    b_spec = make_spec(bulk, functional, settings, kpts=k_inplane + [k_bulk[2]], stress=True,
                       label=f"bulk-{label}")
    return s_spec, b_spec, info


def surface_tasks(eos: dict[str, dict], elements: Iterable[str] = SURFACE_ELEMENTS,
                  facets: Iterable[Sequence[int]] = SURFACE_FACETS,
                  settings: DFTSettings = SURFACE_SETTINGS) -> tuple[list[Task], dict[str, str]]:
    """Slab + oriented-bulk tasks at each element's fitted PBE lattice constant (rounded to 1e-4 Å so keys are
    stable); elements without a successful E-V fit are returned as skipped with the reason."""
    tasks, skipped = [], {}
    for el in elements:
        fit = eos.get(el)
        if fit is None or "a0_a" not in fit:
            skipped[el] = (fit or {}).get("error", "no E-V fit yet")
            continue
        a0 = round(fit["a0_a"], 4)
        for hkl in facets:
            s_spec, b_spec, info = surface_specs(el, hkl, a0, settings)
            tasks.append(b_spec.task(KIND_BULK, f"{el}|{info['miller']}"))
            tasks.append(s_spec.task(KIND_SLAB, f"{el}|{info['miller']}"))
    return tasks, skipped


#: settings variants of the surface-energy convergence check (all relative to DEFAULT_SETTINGS)
CONVERGENCE_VARIANTS: dict[str, dict] = {
    "default": {},
    "ecut 500 eV": {"ecut_ev": 500.0},
    "k 4.5/Å⁻¹": {"kpt_density_per_inv_a": 4.5},
    "ecut 500 eV, k 4.5/Å⁻¹": {"ecut_ev": 500.0, "kpt_density_per_inv_a": 4.5},
    "k 5.5/Å⁻¹": {"kpt_density_per_inv_a": 5.5},
    "MV 0.2 eV": {"smearing_width_ev": 0.2},
    "MV 0.2 eV, k 4.5/Å⁻¹": {"smearing_width_ev": 0.2, "kpt_density_per_inv_a": 4.5},
    "MV 0.2 eV, k 5.5/Å⁻¹": {"smearing_width_ev": 0.2, "kpt_density_per_inv_a": 5.5},
    "ecut 350 eV, k 3.0/Å⁻¹": {"ecut_ev": 350.0, "kpt_density_per_inv_a": 3.0},
    "vacuum 16 Å": {"vacuum_a": 16.0},
    "+2 layers": {"slab_layers": (("100", 8), ("110", 10), ("111", 8))},
}


def convergence_tasks(element: str = "Cu", a0: float = 3.63, facets: Iterable[Sequence[int]] = SURFACE_FACETS,
                      variants: Iterable[str] = tuple(CONVERGENCE_VARIANTS),
                      base: DFTSettings = DEFAULT_SETTINGS) -> list[Task]:
    """Slab + oriented-bulk tasks of ``element`` at a fixed lattice constant for each settings variant (so that
    only the numerical setting changes between rows of :func:`convergence_table`)."""
    tasks = []
    for v in variants:
        st = base.replace(**CONVERGENCE_VARIANTS[v])
        for hkl in facets:
            s_spec, b_spec, info = surface_specs(element, hkl, a0, st)
            tasks.append(b_spec.task(KIND_BULK, f"{element}|{info['miller']}|conv"))
            tasks.append(s_spec.task(KIND_SLAB, f"{element}|{info['miller']}|conv"))
    return tasks


def convergence_table(store: ResultStore, element: str = "Cu", a0: float = 3.63,
                      facets: Iterable[Sequence[int]] = SURFACE_FACETS,
                      variants: Iterable[str] = tuple(CONVERGENCE_VARIANTS), base: DFTSettings = DEFAULT_SETTINGS):
    """γ (J/m²) per settings variant and facet from the store (missing calculations are absent rows), with the
    difference to the default settings and the summed wall time of slab + bulk."""
    import pandas as pd

    rows = []
    facets = list(facets)
    for v in variants:
        st = base.replace(**CONVERGENCE_VARIANTS[v])
        for hkl in facets:
            s_spec, b_spec, info = surface_specs(element, hkl, a0, st)
            s = store.get(s_spec.key(KIND_SLAB), with_array=False)
            b = store.get(b_spec.key(KIND_BULK), with_array=False)
            if not (s and b and s.ok and b.ok):
                continue
            sp, bp = s.payload, b.payload
            rows.append({"variant": v, "element": element, "miller": info["miller"], "n_layers": info["n_layers"],
                         "ecut_ev": st.ecut_ev, "kpt_density_per_inv_a": st.kpt_density_per_inv_a,
                         "vacuum_a": st.vacuum_a, "kpts_slab": "x".join(map(str, sp["kpts"])),
                         "gamma_j_per_m2": gamma_j_per_m2(sp["energy_ev"], sp["n_atoms"],
                                                          bp["energy_ev"] / bp["n_atoms"], info["area_a2"]),
                         "seconds": (s.seconds or 0) + (b.seconds or 0)})
    df = pd.DataFrame(rows)
    if not df.empty:
        prod = [v for v in CONVERGENCE_VARIANTS if base.replace(**CONVERGENCE_VARIANTS[v]) == SURFACE_SETTINGS]
        df["dataset2_settings"] = df["variant"].isin(prod)
        ref = df[df["variant"] == "default"].set_index("miller")["gamma_j_per_m2"]
        df["delta_vs_default_j_per_m2"] = df["gamma_j_per_m2"] - df["miller"].map(ref)
    return df


#: dataset-1 convergence: structures (first sample of these ids' prototypes; the 14 one-atom cells first computed at
#: 3.5 Å, plus a semiconductor and two ionic compounds) and settings variants relative to PAIR_SETTINGS
PAIR_CONVERGENCE_STRUCTURES = tuple((el, "ref") for el in ("Ag", "Al", "Au", "Ca", "Cr", "Cs", "Cu", "Fe", "Ir", "K",
                                                          "Li", "Mo", "Na", "Nb", "Si")) + (
    ("Mg", "O", "rocksalt"), ("Na", "F", "rocksalt"))
PAIR_CONVERGENCE_VARIANTS: dict[str, dict] = {
    "default": {},
    "k 3.5/Å⁻¹": {"kpt_density_per_inv_a": 3.5},
}


def _pair_convergence_structures(seed: int = 0) -> list[PairStructure]:
    out = []
    for spec in PAIR_CONVERGENCE_STRUCTURES:
        *species, proto = spec
        structs, _ = pair_structures(species, [proto], n_per_prototype=1, seed=seed,
                                     compounds=[tuple(species)] if len(species) == 2 else None)
        out += [st for st in structs if st.prototype == proto]
    return out


def pair_convergence_tasks(base: DFTSettings = PAIR_SETTINGS, functionals=("pbe", "r2scan")) -> list[Task]:
    """PBE and r2SCAN single points of a few dataset-1 structures for each settings variant.

    Every variant is an ordinary dataset-1 single point (kind ``dft-pairs``; the settings are part of the key), so
    the default variant shares the production records and earlier production settings are reused as variants."""
    tasks = []
    for v, change in PAIR_CONVERGENCE_VARIANTS.items():
        st = base.replace(**change)
        for ps in _pair_convergence_structures():
            for f in functionals:
                item = f"{ps.id}|{f}" if not change else f"{ps.id}|{f}|{v}"
                tasks.append(make_spec(ps.atoms, f, st, label=ps.id).task(KIND_PAIRS, item))
    return tasks


def pair_convergence_table(store: ResultStore, base: DFTSettings = PAIR_SETTINGS):
    """Per structure, functional and variant: energy per atom, max force and stress component, and their
    differences to the default settings; plus the change of the r2SCAN - PBE shift (eV/atom)."""
    import pandas as pd

    rows = []
    for t in pair_convergence_tasks(base):
        rec = store.get(t.key, with_array=False)
        if rec is None or not rec.ok:
            continue
        sid, f, v = (t.item.split("|") + ["default"])[:3]
        p = rec.payload
        rows.append({"id": sid, "functional": f, "variant": v, "energy_ev_per_atom": p["energy_ev_per_atom"],
                     "forces": np.array(p["forces_ev_per_a"]), "stress": np.array(p["stress_ev_per_a3"]),
                     "seconds": rec.seconds})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    ref = {(r.id, r.functional): r for r in df[df["variant"] == "default"].itertuples()}
    out = []
    for r in df.itertuples():
        d = ref.get((r.id, r.functional))
        if d is None:
            continue
        out.append({"id": r.id, "functional": r.functional, "variant": r.variant,
                    "energy_ev_per_atom": r.energy_ev_per_atom,
                    "d_energy_mev_per_atom": 1e3 * (r.energy_ev_per_atom - d.energy_ev_per_atom),
                    "d_force_max_ev_per_a": float(np.abs(r.forces - d.forces).max()),
                    "d_stress_max_gpa": float(np.abs(r.stress - d.stress).max() * 160.21766208),
                    "seconds": r.seconds})
    out = pd.DataFrame(out)
    piv = out.pivot_table(index=["id", "variant"], columns="functional", values="d_energy_mev_per_atom")
    if {"pbe", "r2scan"} <= set(piv.columns):
        shift = (piv["r2scan"] - piv["pbe"]).rename("d_shift_mev_per_atom").reset_index()
        out = out.merge(shift, on=["id", "variant"], how="left")
    return out.sort_values(["id", "functional", "variant"]).reset_index(drop=True)


# ----------------------------------------------------------------------------------------------------------------
# running


#: The DFT result store is part of the project's data, committed beside the exports: it holds hours of CPU time
#: (every finished calculation, failures with their reasons, convergence variants), so that any machine resumes
#: where the last one stopped instead of recomputing. ``export`` checkpoints it (WAL merged) before a commit.
STORE_FILE = "dft/store.sqlite"


def default_store() -> ResultStore:
    return ResultStore(paths.PROJECT_DATA / STORE_FILE)


def run_eos(elements: Iterable[str], store: ResultStore, settings: DFTSettings = SURFACE_SETTINGS, **kw):
    return run_tasks(compute_task, eos_tasks(elements, settings), store, desc="GPAW E-V (PBE)", **kw)


def run_surfaces(elements: Iterable[str], store: ResultStore, settings: DFTSettings = SURFACE_SETTINGS,
                 facets: Iterable[Sequence[int]] = SURFACE_FACETS, **kw):
    """E-V fits, then slabs and oriented bulks (two resumable stages)."""
    elements = list(elements)
    s1 = run_eos(elements, store, settings, **kw)
    eos = eos_results(store, settings, elements)
    tasks, skipped = surface_tasks(eos, elements, facets, settings)
    s2 = run_tasks(compute_task, tasks, store, desc="GPAW slabs (PBE)", **kw)
    return s1, s2, skipped


def run_pairs(store: ResultStore, elements=DEFAULT_ELEMENTS, prototypes=DEFAULT_PAIR_PROTOTYPES,
              n_per_prototype: int = 3, functionals=("pbe", "r2scan"), seed: int = 0, max_atoms: int = 8,
              settings: DFTSettings = PAIR_SETTINGS, **kw):
    structs, skipped = pair_structures(elements, prototypes, n_per_prototype, seed, max_atoms)
    summary = run_tasks(compute_task, pair_tasks(structs, functionals, settings), store,
                        desc="GPAW pairs (PBE, r2SCAN)", **kw)
    return summary, skipped


# ----------------------------------------------------------------------------------------------------------------
# export to extended XYZ and loading


def _atoms_from_record(rec) -> Any:
    from ase import Atoms

    return Atoms(numbers=rec["numbers"], positions=rec["positions_a"], cell=rec["cell_a"], pbc=rec["pbc"])


def _ok_frame(store: ResultStore, kind: str, settings: DFTSettings):
    df = store.frame(kind=kind)
    if df.empty:
        return df, df
    failed = df[df["status"] != "ok"]
    ok = df[df["status"] == "ok"]
    ok = ok[[s == settings.as_dict() for s in ok["settings"]]]
    return ok, failed


def _provenance_info(rec, prefix: str = "") -> dict:
    v = rec["versions"]
    return {f"{prefix}gpaw_version": v.get("gpaw", ""), f"{prefix}gpaw_data_version": v.get("gpaw-data", ""),
            f"{prefix}libxc_version": v.get("libxc", ""), f"{prefix}ase_version": v.get("ase", "")}


def _settings_info(settings: DFTSettings) -> dict:
    s = settings
    return {"code": "GPAW", "mode": "PW", "ecut_ev": s.ecut_ev, "kpt_density_per_inv_a": s.kpt_density_per_inv_a,
            "smearing": s.smearing, "smearing_width_ev": s.smearing_width_ev, "setups": s.setups,
            "settings_json": json.dumps(s.as_dict(), sort_keys=True, separators=(",", ":")).replace('"', "'")}


def _write_extxyz(frames: list, path: Path) -> None:
    """Deterministic extended XYZ (frames already sorted; written to a temporary file, then renamed)."""
    from ase.io import write

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    buf = io.StringIO()
    if frames:
        write(buf, frames, format="extxyz", write_results=False)
    tmp.write_text(buf.getvalue())
    tmp.replace(path)


def export(store: ResultStore | None = None, out_dir: Path | None = None,
           settings: DFTSettings = PAIR_SETTINGS, surface_settings: DFTSettings = SURFACE_SETTINGS) -> dict:
    """Write ``data/dft/{pairs_pbe_r2scan,surfaces_pbe,eos_pbe}.extxyz`` and ``manifest.json`` from the store.

    Pairs: one frame per structure with both functionals done (PBE and r2SCAN energies, forces, stresses; info
    ``energy_pbe_ev``, ``stress_r2scan_ev_per_a3`` (Voigt xx yy zz yz xz xy), arrays ``forces_pbe_ev_per_a``, ...).
    Surfaces: slab and oriented-bulk frames with γ in the slab frames. Provenance (settings, GPAW / gpaw-data /
    libxc versions) in every frame's info; failures listed with their reasons in the manifest.
    """
    store = store or default_store()
    store.checkpoint()  # merge the WAL into the database file, which is committed
    out_dir = Path(out_dir) if out_dir is not None else paths.PROJECT_DATA
    manifest: dict[str, Any] = {"settings": settings.as_dict(), "surface_settings": surface_settings.as_dict(),
                                "failures": {}, "counts": {},
                                "calc_seconds": {}}

    # dataset 1
    ok, failed = _ok_frame(store, KIND_PAIRS, settings)
    frames = []
    if not ok.empty:
        ok = ok.assign(sid=ok["item"].str.split("|").str[0])
        for sid, g in ok.groupby("sid", sort=True):
            by_f = None
            for _, h in g.groupby("structure_hash", sort=True):  # pair records of the very same structure
                cand = {r["functional"]: r for _, r in h.iterrows()}
                if {"pbe", "r2scan"} <= set(cand):
                    by_f = cand
                    break
            if by_f is None:
                continue
            atoms = _atoms_from_record(by_f["pbe"])
            proto = sid.split("-")[1]
            atoms.info.update({"id": sid, "prototype": proto, "formula": by_f["pbe"]["formula"],
                               **_settings_info(settings), **_provenance_info(by_f["pbe"])})
            for f in ("pbe", "r2scan"):
                r = by_f[f]
                atoms.info[f"energy_{f}_ev"] = r["energy_ev"]
                atoms.info[f"stress_{f}_ev_per_a3"] = np.array(r["stress_ev_per_a3"])
                atoms.info[f"magmom_{f}_bohr"] = r["magmom_total_bohr"] if r["magmom_total_bohr"] is not None else 0.0
                atoms.info[f"kpts_{f}"] = np.array(r["kpts"])
                atoms.arrays[f"forces_{f}_ev_per_a"] = np.array(r["forces_ev_per_a"])
            frames.append(atoms)
        manifest["calc_seconds"]["pairs"] = float(ok["seconds"].sum())
    _write_extxyz(frames, out_dir / PAIRS_FILE)
    manifest["counts"]["pairs_complete"] = len(frames)
    manifest["counts"]["pairs_single_points"] = int(len(ok))
    manifest["failures"]["pairs"] = {r["item"]: r["error"] for _, r in failed.iterrows()} if len(failed) else {}

    # E-V points
    ok, failed = _ok_frame(store, KIND_EOS, surface_settings)
    frames = []
    for _, r in (ok.sort_values("item").iterrows() if not ok.empty else []):
        atoms = _atoms_from_record(r)
        el, scale = r["item"].split("|")
        atoms.info.update({"id": f"eos-{el}-{scale}", "element": el, "scale": float(scale),
                           "energy_pbe_ev": r["energy_ev"], "stress_pbe_ev_per_a3": np.array(r["stress_ev_per_a3"]),
                           "kpts_pbe": np.array(r["kpts"]), **_settings_info(surface_settings),
                           **_provenance_info(r)})
        atoms.arrays["forces_pbe_ev_per_a"] = np.array(r["forces_ev_per_a"])
        frames.append(atoms)
    _write_extxyz(frames, out_dir / EOS_FILE)
    manifest["counts"]["eos_points"] = len(frames)
    manifest["failures"]["eos"] = {r["item"]: r["error"] for _, r in failed.iterrows()} if len(failed) else {}
    manifest["calc_seconds"]["eos"] = float(ok["seconds"].sum()) if not ok.empty else 0.0
    manifest["eos_fits"] = eos_results(store, surface_settings)

    # dataset 2
    records = surface_records(store, surface_settings)
    table = surface_table(store, surface_settings, records)
    frames, n_slab, n_bulk, cpu = [], 0, 0, 0.0
    failures = {}
    for r in records:
        info = r["info"]
        for kind, rec in (("oriented_bulk", r["bulk"]), ("slab", r["slab"])):
            name = f"{kind}-{info['element']}-{info['miller']}"
            if rec is None:
                continue
            if not rec.ok:
                failures[name] = rec.error
                continue
            p = rec.payload
            cpu += rec.seconds or 0.0
            n_slab += kind == "slab"
            n_bulk += kind == "oriented_bulk"
            atoms = _atoms_from_record(p)
            atoms.info.update({"id": name, "kind": kind, "element": info["element"], "miller": info["miller"],
                               "a0_a": info["a0_a"], "energy_pbe_ev": p["energy_ev"], "kpts_pbe": np.array(p["kpts"]),
                               **_settings_info(surface_settings), **_provenance_info(p)})
            if p["stress_ev_per_a3"] is not None:
                atoms.info["stress_pbe_ev_per_a3"] = np.array(p["stress_ev_per_a3"])
            row = table[(table["element"] == info["element"]) & (table["miller"] == info["miller"])]
            if kind == "slab":
                atoms.info.update({"n_layers": info["n_layers"], "area_a2": info["area_a2"],
                                   "vacuum_a": surface_settings.vacuum_a})
                if len(row):
                    atoms.info["gamma_j_per_m2"] = float(row["gamma_j_per_m2"].iloc[0])
                    atoms.info["e_bulk_pbe_ev_per_atom"] = float(row["e_bulk_ev_per_atom"].iloc[0])
            atoms.arrays["forces_pbe_ev_per_a"] = np.array(p["forces_ev_per_a"])
            frames.append(atoms)
    _write_extxyz(frames, out_dir / SURFACES_FILE)
    manifest["counts"]["slabs"] = n_slab
    manifest["counts"]["oriented_bulks"] = n_bulk
    manifest["counts"]["surface_energies"] = int(len(table))
    manifest["failures"]["surfaces"] = failures
    manifest["calc_seconds"]["surfaces"] = cpu
    conv = convergence_table(store, base=DEFAULT_SETTINGS)  # the surface variants are relative to DEFAULT_SETTINGS
    manifest["calc_seconds"]["convergence"] = float(conv["seconds"].sum()) if not conv.empty else 0.0
    if not conv.empty:
        conv.round(6).to_csv(out_dir / CONVERGENCE_FILE, index=False)
    pconv = pair_convergence_table(store, settings)
    # the default variant is dataset 1 itself (counted under "pairs")
    manifest["calc_seconds"]["pairs_convergence"] = (float(pconv.loc[pconv["variant"] != "default", "seconds"].sum())
                                                     if not pconv.empty else 0.0)
    if not pconv.empty and (pconv["variant"] != "default").any():  # only once a variant exists to compare
        pconv.round(6).to_csv(out_dir / PAIR_CONVERGENCE_FILE, index=False)
    # single-threaded wall time of the calculations (an upper bound on their CPU time on a shared machine)
    manifest["calc_hours_total"] = sum(manifest["calc_seconds"].values()) / 3600
    manifest["versions"] = _versions_in_store(store)
    manifest["surface_energies"] = (table.drop(columns=["slab_seconds", "bulk_seconds"]).round(6)
                                    .to_dict(orient="records") if not table.empty else [])
    path = out_dir / MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True, default=float) + "\n")
    return manifest


def _versions_in_store(store: ResultStore) -> list[dict]:
    seen = {}
    for kind in (KIND_PAIRS, KIND_EOS, KIND_SLAB, KIND_BULK):
        df = store.frame(kind=kind)
        if df.empty or "versions" not in df:
            continue
        for v in df["versions"].dropna():
            seen[json.dumps(v, sort_keys=True)] = v
    return [seen[k] for k in sorted(seen)]


def surface_records(store: ResultStore, settings: DFTSettings = SURFACE_SETTINGS,
                    facets: Iterable[Sequence[int]] = SURFACE_FACETS) -> list[dict]:
    """The dataset-2 calculations the store holds for ``settings``: one dict per (fcc element with an E-V fit,
    facet) with its geometry ``info`` and the slab / bulk :class:`~uipbench.store.Record` (None when absent).

    Looked up by the keys of :func:`surface_tasks` (so stale records of other geometries or settings, and the
    convergence runs, are never mixed in)."""
    eos = {el: f for el, f in eos_results(store, settings).items() if f.get("structure") == "fcc"}
    out = []
    for el in sorted(eos):
        a0 = round(eos[el]["a0_a"], 4)
        for hkl in facets:
            s_spec, b_spec, info = surface_specs(el, hkl, a0, settings)
            out.append({"info": info, "slab": store.get(s_spec.key(KIND_SLAB), with_array=False),
                        "bulk": store.get(b_spec.key(KIND_BULK), with_array=False)})
    return out


def surface_table(store: ResultStore, settings: DFTSettings = SURFACE_SETTINGS,
                  records: list[dict] | None = None):
    """γ per (element, facet) from stored slab and oriented-bulk energies of ``settings`` (DataFrame)."""
    import pandas as pd

    rows = []
    for r in (records if records is not None else surface_records(store, settings)):
        s, b, info = r["slab"], r["bulk"], r["info"]
        if not (s and b and s.ok and b.ok):
            continue
        sp, bp = s.payload, b.payload
        eb = bp["energy_ev"] / bp["n_atoms"]
        rows.append({"element": info["element"], "miller": info["miller"], "n_layers": info["n_layers"],
                     "n_slab_atoms": int(sp["n_atoms"]), "n_bulk_atoms": int(bp["n_atoms"]), "a0_a": info["a0_a"],
                     "area_a2": info["area_a2"], "e_slab_ev": sp["energy_ev"], "e_bulk_ev_per_atom": eb,
                     "gamma_j_per_m2": gamma_j_per_m2(sp["energy_ev"], int(sp["n_atoms"]), eb, info["area_a2"]),
                     "magmom_slab_bohr": sp["magmom_total_bohr"], "kpts_slab": "x".join(map(str, sp["kpts"])),
                     "kpts_bulk": "x".join(map(str, bp["kpts"])), "slab_seconds": s.seconds,
                     "bulk_seconds": b.seconds})
    cols = ["element", "miller", "n_layers", "n_slab_atoms", "n_bulk_atoms", "a0_a", "area_a2", "e_slab_ev",
            "e_bulk_ev_per_atom", "gamma_j_per_m2", "magmom_slab_bohr", "kpts_slab", "kpts_bulk", "slab_seconds",
            "bulk_seconds"]
    return pd.DataFrame(rows, columns=cols).sort_values(["element", "miller"]).reset_index(drop=True)


# ----------------------------------------------------------------------------------------------------------------
# analysis of the committed data (used by notebooks/20_dft_references)

#: PBE lattice constants the E-V fits are validated against (Å; issue 6: within 1 %)
KNOWN_PBE_A0 = {"Cu": 3.63, "Al": 4.04, "Si": 5.47}


def pairs_table(frames: Sequence) -> "pd.DataFrame":
    """One row per paired structure: composition, PBE and r2SCAN energies per atom, their difference, force and
    stress magnitudes (from the committed extended XYZ frames)."""
    import pandas as pd

    rows = []
    for at in frames:
        i = at.info
        fp, fr = at.arrays["forces_pbe_ev_per_a"], at.arrays["forces_r2scan_ev_per_a"]
        n = len(at)
        rows.append({"id": i["id"], "formula": at.get_chemical_formula(mode="hill", empirical=True),
                     "prototype": i["prototype"], "n_atoms": n,
                     "elements": " ".join(sorted(set(at.get_chemical_symbols()))),
                     "composition": at.get_chemical_formula(mode="hill"),
                     "energy_pbe_ev_per_atom": i["energy_pbe_ev"] / n,
                     "energy_r2scan_ev_per_atom": i["energy_r2scan_ev"] / n,
                     "shift_ev_per_atom": (i["energy_r2scan_ev"] - i["energy_pbe_ev"]) / n,
                     "fmax_pbe_ev_per_a": float(np.linalg.norm(fp, axis=1).max()),
                     "fmax_r2scan_ev_per_a": float(np.linalg.norm(fr, axis=1).max()),
                     "pressure_pbe_gpa": -float(np.mean(i["stress_pbe_ev_per_a3"][:3])) * 160.21766208,
                     "pressure_r2scan_gpa": -float(np.mean(i["stress_r2scan_ev_per_a3"][:3])) * 160.21766208})
    return pd.DataFrame(rows)


def element_shifts(table: "pd.DataFrame") -> "pd.DataFrame":
    """Per-element r2SCAN - PBE shift (eV/atom): the mean over elemental structures, and an AtomRef-style least-
    squares fit over all paired structures (shift per atom on element fractions, as CHGNet fits its AtomRef)."""
    import pandas as pd

    from .atomref import fit_atomref

    elemental = table[table["elements"].str.count(" ") == 0]
    mean = elemental.groupby("elements")["shift_ev_per_atom"].agg(["mean", "std", "count"])
    fit = fit_atomref(list(table["composition"]), table["shift_ev_per_atom"].to_numpy(), intensive=True)
    out = pd.DataFrame({"shift_elemental_mean_ev_per_atom": mean["mean"],
                        "shift_elemental_std_ev_per_atom": mean["std"], "n_elemental": mean["count"]})
    out = out.join(fit.references.rename("shift_fit_ev_per_atom"), how="outer")
    out.index.name = "element"
    return out


def chgnet_atomref_shift() -> "pd.Series":
    """CHGNet's MP-r2SCAN minus MPtrj AtomRef (eV/atom) per element: what its r2SCAN model shifted per element."""
    from .atomref import chgnet_atomref

    return (chgnet_atomref("MP-r2SCAN") - chgnet_atomref("MPtrj")).rename("chgnet_atomref_shift_ev_per_atom")


def eos_table(frames: Sequence) -> "pd.DataFrame":
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
            row.update({"a0_a": (fit["v0_a3"] * {"fcc": 4, "bcc": 2, "diamond": 8, "sc": 1}[sym]) ** (1 / 3),
                        "b_gpa": fit["b_gpa"], "error": ""})
        except Exception as exc:
            row.update({"a0_a": np.nan, "b_gpa": np.nan, "error": str(exc)})
        row["a0_known_pbe_a"] = KNOWN_PBE_A0.get(el, np.nan)
        row["rel_dev_percent"] = 100 * (row["a0_a"] / row["a0_known_pbe_a"] - 1)
        rows.append(row)
    return pd.DataFrame(rows)


def gamma_vs_mp(frames: Sequence, mp: "pd.DataFrame") -> "pd.DataFrame":
    """GPAW γ of the committed static slabs next to the Materials Project (relaxed, VASP) γ of the same facet."""
    import pandas as pd

    rows = []
    for at in frames:
        if at.info.get("kind") != "slab" or "gamma_j_per_m2" not in at.info:
            continue
        el, miller = at.info["element"], str(at.info["miller"])
        m = mp[(mp["element"] == el) & (mp["miller"] == miller)]
        rows.append({"element": el, "miller": miller, "gamma_gpaw_j_per_m2": at.info["gamma_j_per_m2"],
                     "gamma_mp_j_per_m2": float(m["gamma_j_per_m2"].iloc[0]) if len(m) else np.nan,
                     "mp_id": m["id"].iloc[0] if len(m) else ""})
    df = pd.DataFrame(rows, columns=["element", "miller", "gamma_gpaw_j_per_m2", "gamma_mp_j_per_m2", "mp_id"])
    df["rel_diff_percent"] = 100 * (df["gamma_gpaw_j_per_m2"] / df["gamma_mp_j_per_m2"] - 1)
    return df.sort_values(["element", "miller"]).reset_index(drop=True)


def load(name: str):
    """Load one of the project's own DFT datasets (committed under ``data/dft/``): a list of ``ase.Atoms``.

    The datasets (gpaw-pbe-r2scan-pairs, gpaw-pbe-surfaces, gpaw-pbe-eos) are registered in
    :mod:`uipbench.datasets` with the file names below.
    """
    return datasets.load(name)


# ----------------------------------------------------------------------------------------------------------------
# CLI


def _settings_from_args(args) -> DFTSettings:
    """The dataset's production settings (SURFACE_SETTINGS for surfaces / eos, PAIR_SETTINGS for pairs,
    DEFAULT_SETTINGS for the surface convergence variants, which are defined relative to it), with the command-line
    overrides."""
    if args.cheap:
        s = CHEAP_SETTINGS
    else:
        s = {"surfaces": SURFACE_SETTINGS, "eos": SURFACE_SETTINGS, "pairs": PAIR_SETTINGS,
             "pairs-convergence": PAIR_SETTINGS}.get(args.dataset, DEFAULT_SETTINGS)
    changes = {}
    if args.ecut is not None:
        changes["ecut_ev"] = args.ecut
    if args.kdens is not None:
        changes["kpt_density_per_inv_a"] = args.kdens
    return s.replace(**changes) if changes else s


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m uipbench.dft", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="compute (resumes: stored results are skipped)")
    r.add_argument("dataset", choices=["pairs", "surfaces", "eos", "convergence", "pairs-convergence"])
    r.add_argument("--elements", nargs="+", default=None)
    r.add_argument("--prototypes", nargs="+", default=list(DEFAULT_PAIR_PROTOTYPES), choices=PROTOTYPES)
    r.add_argument("--n-per-prototype", type=int, default=3)
    r.add_argument("--functionals", nargs="+", default=["pbe", "r2scan"], choices=sorted(FUNCTIONALS))
    r.add_argument("--facets", nargs="+", default=["111", "100", "110"])
    r.add_argument("--variants", nargs="+", default=list(CONVERGENCE_VARIANTS), choices=list(CONVERGENCE_VARIANTS),
                   help="settings variants (dataset convergence)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--max-atoms", type=int, default=8)
    r.add_argument("--backend", default="serial", choices=["serial", "process", "dask"])
    r.add_argument("--workers", type=int, default=1)
    r.add_argument("--scheduler", default=None, help="Dask scheduler address (backend dask)")
    r.add_argument("--retry-failed", action="store_true")
    r.add_argument("--cheap", action="store_true", help="CHEAP_SETTINGS (tests / smoke runs, not converged)")
    r.add_argument("--ecut", type=float, default=None, help="override the plane-wave cutoff (eV)")
    r.add_argument("--kdens", type=float, default=None, help="override the k-point density (per Å⁻¹)")
    e = sub.add_parser("export", help="rewrite data/dft/*.extxyz and manifest.json from the store")
    e.add_argument("--out", default=None, help="output root (default: the repository's data/)")
    st = sub.add_parser("status", help="counts and CPU hours in the store")
    for sp in (r, e, st):
        sp.add_argument("--store", default=None, help="SQLite result store (default: data/dft/store.sqlite, committed)")
    args = p.parse_args(argv)
    store = ResultStore(args.store) if args.store else default_store()
    if args.cmd == "status":
        total = 0.0
        for kind in (KIND_PAIRS, KIND_EOS, KIND_BULK, KIND_SLAB):
            df = store.frame(kind=kind)
            if df.empty:
                print(f"{kind:22s} none")
                continue
            total += float(df["seconds"].sum())
            for model, g in df.groupby("model"):
                ok = g[g["status"] == "ok"]
                med = ok.groupby("n_atoms")["seconds"].median().round(1).to_dict() if len(ok) else {}
                print(f"{kind:22s} {model:12s} ok {len(ok):4d}  failed {len(g) - len(ok):3d}  "
                      f"{g['seconds'].sum() / 3600:6.3f} h  median s by n_atoms {med}")
        print(f"total {total / 3600:.3f} h of single-threaded calculation wall time")
        return 0
    if args.cmd == "export":
        m = export(store, Path(args.out) if args.out else None)
        print(json.dumps({"counts": m["counts"], "calc_hours_total": round(m["calc_hours_total"], 3)}, indent=1))
        return 0
    settings = _settings_from_args(args)
    kw = {"backend": args.backend, "n_workers": args.workers, "scheduler": args.scheduler,
          "retry_failed": args.retry_failed}
    if args.dataset == "pairs":
        summary, skipped = run_pairs(store, args.elements or DEFAULT_ELEMENTS, args.prototypes, args.n_per_prototype,
                                     args.functionals, args.seed, args.max_atoms, settings, **kw)
        print(summary)
        for k, v in {**skipped, **summary.failures}.items():
            print(f"  skipped/failed {k}: {v}")
    elif args.dataset == "pairs-convergence":
        summary = run_tasks(compute_task, pair_convergence_tasks(settings), store, desc="GPAW pair convergence", **kw)
        print(summary)
        print(pair_convergence_table(store, settings).to_string())
    elif args.dataset == "convergence":
        el = (args.elements or ["Cu"])[0]
        facets = [tuple(int(c) for c in f) for f in args.facets]
        summary = run_tasks(compute_task, convergence_tasks(el, facets=facets, variants=args.variants, base=settings),
                            store, desc="GPAW convergence", **kw)
        print(summary)
        print(convergence_table(store, el, facets=facets, variants=args.variants, base=settings).to_string())
    elif args.dataset == "eos":
        summary = run_eos(args.elements or EOS_ELEMENTS, store, settings, **kw)
        print(summary)
        for el, fit in eos_results(store, settings, args.elements or EOS_ELEMENTS).items():
            print(f"  {el}: {fit}")
    else:
        facets = [tuple(int(c) for c in f) for f in args.facets]
        s1, s2, skipped = run_surfaces(args.elements or SURFACE_ELEMENTS, store, settings, facets, **kw)
        print(s1)
        print(s2)
        for k, v in {**skipped, **s1.failures, **s2.failures}.items():
            print(f"  skipped/failed {k}: {v}")
        print(surface_table(store, settings).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
