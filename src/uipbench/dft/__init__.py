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
    python -m uipbench.dft run relax --slabs "Pt|110" "Al|111"  # static vs relaxed γ of dataset-2 slabs
    python -m uipbench.dft export          # rewrite data/dft/*.extxyz from the store
    python -m uipbench.dft status          # counts, failures and timings per kind / functional / size

Every ``run`` accepts ``--backend serial|process|dask --workers N`` (one single-threaded GPAW process per core)
and ``--store PATH`` (default ``data/dft/store.sqlite``, committed); the production order is in
scripts/dft_production.sh and scripts/dft_training_production.sh.

Modules (this package exports only its public face: the settings, :func:`export`, :func:`load`, :func:`main`, the
dataset file names and what ``notebooks/20_dft_references`` calls; everything else is imported from its module,
e.g. ``from uipbench.dft.pairs import pair_structures``):

* :mod:`~uipbench.dft.settings`: :class:`DFTSettings` (every field enters the store key), the production
  settings of each dataset, k-point meshes, initial magnetic moments, software versions;
* :mod:`~uipbench.dft.calc`: one GPAW single point (:class:`CalcSpec`, its store key, :func:`compute`);
* :mod:`~uipbench.dft.pairs`: dataset 1 (prototypes, strains, rattles; PBE / r2SCAN tasks; its convergence check);
* :mod:`~uipbench.dft.eos`: PBE E-V curves and their fits (lattice constants of dataset 2, validation);
* :mod:`~uipbench.dft.surface_convergence`: γ against cutoff, k-points, smearing, vacuum, layers;
* :mod:`~uipbench.dft.surfaces`: slabs and oriented bulks, surface energies (dataset 2);
* :mod:`~uipbench.dft.relax`: relaxations of chosen dataset-2 slabs (static vs relaxed γ; BFGS checkpointed);
* :mod:`~uipbench.dft.running`: running the tasks into the store (``run_dataset``, one runner per dataset;
  ``run_pairs``, ``run_eos``, ``run_surfaces``, store first);
* :mod:`~uipbench.dft.exporting`: one exporter per dataset, composed by :func:`export` to ``data/dft/``, and
  :func:`load`;
* :mod:`~uipbench.dft.analysis`: tables and fits of the committed data for ``notebooks/20_dft_references``;
* :mod:`~uipbench.dft.cli` (and ``__main__``): the command line above.
"""

from __future__ import annotations

import os

# MPI-enabled GPAW builds call MPI_Init on import; Open MPI refuses root without these (containers run as root).
os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")

# The environment above is set before any submodule is imported (GPAW itself is imported lazily, inside them).
from .analysis import chgnet_atomref_shift, element_shifts, eos_table, gamma_vs_mp, pairs_table
from .calc import KIND_PAIRS
from .cli import main
from .exporting import (
    CONVERGENCE_FILE,
    CONVERGENCE_FILE_PATTERN,
    EOS_FILE,
    MANIFEST_FILE,
    PAIR_CONVERGENCE_FILE,
    PAIRS_FILE,
    RELAXED_FILE,
    SURFACES_FILE,
    export,
    load,
)
from .running import run_pairs
from .settings import CHEAP_SETTINGS, DEFAULT_SETTINGS, PAIR_SETTINGS, SURFACE_SETTINGS, DFTSettings, gpaw_available

#: the public face (settings, the dataset files, export / load / main, and what notebook 20 calls)
__all__ = [
    "CHEAP_SETTINGS",
    "CONVERGENCE_FILE",
    "CONVERGENCE_FILE_PATTERN",
    "DEFAULT_SETTINGS",
    "EOS_FILE",
    "KIND_PAIRS",
    "MANIFEST_FILE",
    "PAIRS_FILE",
    "PAIR_CONVERGENCE_FILE",
    "PAIR_SETTINGS",
    "RELAXED_FILE",
    "SURFACES_FILE",
    "SURFACE_SETTINGS",
    "DFTSettings",
    "chgnet_atomref_shift",
    "element_shifts",
    "eos_table",
    "export",
    "gamma_vs_mp",
    "gpaw_available",
    "load",
    "main",
    "pairs_table",
    "run_pairs",
]
