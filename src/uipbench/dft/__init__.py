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
scripts/dft_production.sh.

Modules (everything is re-exported here, so ``from uipbench import dft; dft.NAME`` works for every name):

* :mod:`~uipbench.dft.settings`: :class:`DFTSettings` (every field enters the store key), the production
  settings of each dataset, k-point meshes, initial magnetic moments, software versions;
* :mod:`~uipbench.dft.calc`: one GPAW single point (:class:`CalcSpec`, its store key, :func:`compute`);
* :mod:`~uipbench.dft.pairs`: dataset 1 (prototypes, strains, rattles; PBE / r2SCAN tasks; its convergence check);
* :mod:`~uipbench.dft.surfaces`: E-V curves, slabs and oriented bulks, surface energies (dataset 2; its
  convergence check);
* :mod:`~uipbench.dft.relax`: relaxations of chosen dataset-2 slabs (static vs relaxed γ; BFGS checkpointed);
* :mod:`~uipbench.dft.running`: running the tasks into the store (``run_pairs``, ``run_surfaces``, ``run_eos``);
* :mod:`~uipbench.dft.exporting`: :func:`export` to ``data/dft/`` and :func:`load`;
* :mod:`~uipbench.dft.analysis`: tables and fits of the committed data for ``notebooks/20_dft_references``;
* :mod:`~uipbench.dft.cli` (and ``__main__``): the command line above.
"""

from __future__ import annotations

import os

# MPI-enabled GPAW builds call MPI_Init on import; Open MPI refuses root without these (containers run as root).
os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")

# The environment above is set before any submodule is imported (GPAW itself is imported lazily, inside them).
from .settings import (  # noqa: E402
    CHEAP_SETTINGS, DEFAULT_MAGMOMS, DEFAULT_SETTINGS, FUNCTIONALS, PAIR_SETTINGS, SURFACE_SETTINGS, DFTSettings,
    gpaw_available, initial_magmoms, kpt_mesh, software_versions)
from .calc import (  # noqa: E402
    KIND_BULK, KIND_EOS, KIND_PAIRS, KIND_SLAB, CalcSpec, compute, compute_task, gpaw_calculator, make_spec,
    start_atoms)
from .pairs import (  # noqa: E402
    BINARY_COMPOUNDS, DEFAULT_ELEMENTS, DEFAULT_PAIR_PROTOTYPES, ELEMENTAL_PROTOTYPES, PAIR_CONVERGENCE_STRUCTURES,
    PAIR_CONVERGENCE_VARIANTS, PROTOTYPES, PairStructure, build_prototype, pair_convergence_table,
    pair_convergence_tasks, pair_structures, pair_tasks, perturb)
from .surfaces import (  # noqa: E402
    CONVERGENCE_VARIANTS, EOS_ELEMENTS, EOS_SCALES, EV_PER_A2_TO_J_PER_M2, SURFACE_ELEMENTS, SURFACE_FACETS,
    CONVERGENCE_A0, build_slab, convergence_a0, convergence_elements, convergence_table, convergence_tasks, eos_results,
    eos_structures, eos_tasks, fit_eos, gamma_j_per_m2,
    slab_a0, surface_records, surface_specs, surface_table, surface_tasks)
from .relax import (  # noqa: E402
    DEFAULT_RELAX_SLABS, FMAX_EV_PER_A, KIND_SLAB_RELAXED, MAX_STEPS, RelaxSpec, central_layers,
    interlayer_changes_percent, layer_index, relax, relax_task, relax_tasks, relaxed_items, relaxed_table)
from .running import STORE_FILE, default_store, run_eos, run_pairs, run_surfaces  # noqa: E402
from .exporting import (  # noqa: E402
    CONVERGENCE_FILE, CONVERGENCE_FILE_PATTERN, EOS_FILE, MANIFEST_FILE, PAIR_CONVERGENCE_FILE, PAIRS_FILE,
    RELAXED_FILE, SURFACES_FILE, export, load)
from .analysis import (  # noqa: E402
    KNOWN_PBE_A0, chgnet_atomref_shift, element_shifts, eos_table, gamma_vs_mp, pairs_table)
from .cli import main  # noqa: E402

# private helpers, still reachable as ``dft._NAME`` as before the split (the tests use some of them)
from .settings import _file_sha256  # noqa: E402, F401
from .calc import _fermi_level, _setup_provenance  # noqa: E402, F401
from .pairs import (_FLUORITE_CATION_FIRST, _pair_convergence_structures, _radius,  # noqa: E402, F401
                    _reference_nn_distance, _stable_int)
from .surfaces import _miller_str, _orthogonal_c, _reduce_2d  # noqa: E402, F401
from .exporting import (_atoms_from_record, _ok_frame, _provenance_info, _settings_info,  # noqa: E402, F401
                        _versions_in_store, _write_extxyz)
from .cli import _settings_from_args  # noqa: E402, F401

__all__ = [
    # settings
    "FUNCTIONALS", "DEFAULT_MAGMOMS", "DFTSettings", "DEFAULT_SETTINGS", "SURFACE_SETTINGS", "PAIR_SETTINGS",
    "CHEAP_SETTINGS", "kpt_mesh", "initial_magmoms", "software_versions", "gpaw_available",
    # calc
    "KIND_PAIRS", "KIND_EOS", "KIND_SLAB", "KIND_BULK", "CalcSpec", "make_spec", "gpaw_calculator", "compute",
    "compute_task", "start_atoms",
    # pairs
    "ELEMENTAL_PROTOTYPES", "BINARY_COMPOUNDS", "PROTOTYPES", "DEFAULT_ELEMENTS", "DEFAULT_PAIR_PROTOTYPES",
    "build_prototype", "perturb", "PairStructure", "pair_structures", "pair_tasks", "PAIR_CONVERGENCE_STRUCTURES",
    "PAIR_CONVERGENCE_VARIANTS", "pair_convergence_tasks", "pair_convergence_table",
    # surfaces
    "EV_PER_A2_TO_J_PER_M2", "SURFACE_ELEMENTS", "SURFACE_FACETS", "EOS_ELEMENTS", "EOS_SCALES", "eos_structures",
    "eos_tasks", "fit_eos", "eos_results", "gamma_j_per_m2", "build_slab", "slab_a0", "surface_specs",
    "surface_tasks",
    "CONVERGENCE_VARIANTS", "CONVERGENCE_A0", "convergence_a0", "convergence_elements", "convergence_tasks",
    "convergence_table", "surface_records", "surface_table",
    # relax
    "KIND_SLAB_RELAXED", "DEFAULT_RELAX_SLABS", "FMAX_EV_PER_A", "MAX_STEPS", "RelaxSpec", "layer_index",
    "central_layers", "interlayer_changes_percent", "relax", "relax_task", "relax_tasks", "relaxed_items",
    "relaxed_table",
    # running
    "STORE_FILE", "default_store", "run_eos", "run_surfaces", "run_pairs",
    # exporting
    "PAIRS_FILE", "SURFACES_FILE", "EOS_FILE", "MANIFEST_FILE", "CONVERGENCE_FILE", "CONVERGENCE_FILE_PATTERN",
    "PAIR_CONVERGENCE_FILE", "RELAXED_FILE", "export", "load",
    # analysis
    "KNOWN_PBE_A0", "pairs_table", "element_shifts", "chgnet_atomref_shift", "eos_table", "gamma_vs_mp",
    # cli
    "main",
]
