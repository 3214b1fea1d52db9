"""Running the calculations through the engine into the result store (resumable: stored results are skipped)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .. import paths
from ..engine import run_tasks
from ..store import ResultStore
from .calc import compute_task
from .pairs import DEFAULT_ELEMENTS, DEFAULT_PAIR_PROTOTYPES, pair_structures, pair_tasks
from .settings import PAIR_SETTINGS, SURFACE_SETTINGS, DFTSettings
from .surfaces import SURFACE_FACETS, eos_results, eos_tasks, surface_tasks

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
