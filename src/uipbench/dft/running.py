"""Running the calculations through the engine into the result store (resumable: stored results are skipped).

Every dataset of ``python -m uipbench.dft run`` runs one way: :func:`run_dataset` (name, store, options, engine
keywords) dispatches to the dataset's runner in :data:`DATASETS`, each ``runner(store, options, engine_kw)`` ->
:class:`RunResult`. The building blocks :func:`run_pairs`, :func:`run_eos`, :func:`run_surfaces` take the store
first. The E-V fit is computed once per run and passed down (slabs, surface table, relaxations).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from .. import paths
from ..engine import RunSummary, run_tasks
from ..store import ResultStore
from .calc import compute_task
from .eos import EOS_ELEMENTS, eos_results, eos_tasks
from .pairs import (
    DEFAULT_ELEMENTS,
    DEFAULT_PAIR_PROTOTYPES,
    pair_convergence_table,
    pair_convergence_tasks,
    pair_structures,
    pair_tasks,
)
from .relax import DEFAULT_RELAX_SLABS, FMAX_EV_PER_A, MAX_STEPS, relax_task, relax_tasks, relaxed_table
from .settings import PAIR_SETTINGS, SURFACE_SETTINGS, DFTSettings
from .surface_convergence import CONVERGENCE_VARIANTS, convergence_a0, convergence_table, convergence_tasks
from .surfaces import SURFACE_ELEMENTS, SURFACE_FACETS, resolve_tasks, surface_table, surface_tasks

#: The DFT result store is part of the project's data, committed beside the exports: it holds hours of CPU time
#: (every finished calculation, failures with their reasons, convergence variants), so that any machine resumes
#: where the last one stopped instead of recomputing. ``export`` checkpoints it (WAL merged) before a commit.
STORE_FILE = "dft/store.sqlite"


def default_store() -> ResultStore:
    return ResultStore(paths.PROJECT_DATA / STORE_FILE)


# ----------------------------------------------------------------------------------------------------------------
# building blocks (store first)


def run_eos(
    store: ResultStore, elements: Iterable[str] = EOS_ELEMENTS, settings: DFTSettings = SURFACE_SETTINGS, **kw
) -> RunSummary:
    return run_tasks(compute_task, eos_tasks(elements, settings), store, desc="GPAW E-V (PBE)", **kw)


def run_slabs(
    store: ResultStore,
    eos: dict[str, dict],
    elements: Iterable[str] = SURFACE_ELEMENTS,
    settings: DFTSettings = SURFACE_SETTINGS,
    facets: Iterable[Sequence[int]] = SURFACE_FACETS,
    **kw,
) -> tuple[RunSummary, dict[str, str]]:
    """Slabs and oriented bulks at the lattice constants of the E-V fits ``eos`` (elements without one skipped)."""
    tasks, skipped = surface_tasks(eos, elements, facets, settings)
    tasks = resolve_tasks(store, tasks)
    return run_tasks(compute_task, tasks, store, desc="GPAW slabs (PBE)", **kw), skipped


def run_surfaces(
    store: ResultStore,
    elements: Iterable[str] = SURFACE_ELEMENTS,
    settings: DFTSettings = SURFACE_SETTINGS,
    facets: Iterable[Sequence[int]] = SURFACE_FACETS,
    **kw,
):
    """E-V fits, then slabs and oriented bulks (two resumable stages): (E-V summary, slab summary, skipped)."""
    elements = list(elements)
    s1 = run_eos(store, elements, settings, **kw)
    s2, skipped = run_slabs(store, eos_results(store, settings, elements), elements, settings, facets, **kw)
    return s1, s2, skipped


def run_pairs(
    store: ResultStore,
    elements=DEFAULT_ELEMENTS,
    prototypes=DEFAULT_PAIR_PROTOTYPES,
    n_per_prototype: int = 3,
    functionals=("pbe", "r2scan"),
    seed: int = 0,
    max_atoms: int = 8,
    settings: DFTSettings = PAIR_SETTINGS,
    **kw,
):
    structs, skipped = pair_structures(elements, prototypes, n_per_prototype, seed, max_atoms)
    summary = run_tasks(
        compute_task, pair_tasks(structs, functionals, settings), store, desc="GPAW pairs (PBE, r2SCAN)", **kw
    )
    return summary, skipped


# ----------------------------------------------------------------------------------------------------------------
# one way to run a dataset


@dataclass(frozen=True)
class RunOptions:
    """The options of ``run`` (defaults as on the command line); ``settings``: the dataset's settings."""

    settings: DFTSettings
    elements: Sequence[str] | None = None  #: None: the dataset's default elements
    prototypes: Sequence[str] = DEFAULT_PAIR_PROTOTYPES
    n_per_prototype: int = 3
    n_check: int = 1
    functionals: Sequence[str] = ("pbe", "r2scan")
    facets: Sequence[str] = ("111", "100", "110")
    variants: Sequence[str] = tuple(CONVERGENCE_VARIANTS)
    slabs: Sequence[str] = DEFAULT_RELAX_SLABS
    fmax: float = FMAX_EV_PER_A
    max_steps: int = MAX_STEPS
    seed: int = 0
    max_atoms: int = 8
    cheap: bool = False
    wave: int | None = None  #: training: groups per wave (E-V, frames, retries), None: all groups at once

    def hkl(self) -> list[tuple[int, ...]]:
        return [tuple(int(c) for c in f) for f in self.facets]


@dataclass
class RunResult:
    """What a dataset run did: its engine summaries (name, summary) in order, the skipped items with their reason
    and a text table of the dataset's results in the store ('' when it has none)."""

    summaries: list[tuple[str, RunSummary]]
    skipped: dict[str, str] = field(default_factory=dict)
    table: str = ""

    def failures(self) -> dict[str, str]:
        """Skipped and failed items with their reasons."""
        out = dict(self.skipped)
        for _, s in self.summaries:
            out.update(s.failures)
        return out


def _pairs(store: ResultStore, o: RunOptions, kw: dict) -> RunResult:
    summary, skipped = run_pairs(
        store,
        o.elements or DEFAULT_ELEMENTS,
        o.prototypes,
        o.n_per_prototype,
        o.functionals,
        o.seed,
        o.max_atoms,
        o.settings,
        **kw,
    )
    return RunResult([("", summary)], skipped)


def _pairs_convergence(store: ResultStore, o: RunOptions, kw: dict) -> RunResult:
    summary = run_tasks(compute_task, pair_convergence_tasks(o.settings), store, desc="GPAW pair convergence", **kw)
    return RunResult([("", summary)], table=pair_convergence_table(store, o.settings).to_string())


def _training(store: ResultStore, o: RunOptions, kw: dict) -> RunResult:
    from .training import CHEAP_TRAINING_KW, run_training_pairs

    out = run_training_pairs(
        store,
        o.elements or DEFAULT_ELEMENTS,
        o.prototypes,
        o.n_per_prototype,
        o.n_check,
        o.seed,
        o.max_atoms,
        retry=True,
        settings_kw=CHEAP_TRAINING_KW if o.cheap else None,
        wave=o.wave,
        **kw,
    )
    return RunResult(list(out["summaries"].items()), out["skipped"])


def _label_convergence(store: ResultStore, o: RunOptions, kw: dict) -> RunResult:
    from .label_convergence import convergence_frame, study_tasks

    summary = run_tasks(compute_task, study_tasks(), store, desc="GPAW label convergence", **kw)
    return RunResult([("", summary)], table=convergence_frame(store).to_string())


def _convergence(store: ResultStore, o: RunOptions, kw: dict) -> RunResult:
    el = (o.elements or ["Cu"])[0]
    a0 = convergence_a0(store, el)
    tasks = resolve_tasks(store, convergence_tasks(el, a0, o.hkl(), o.variants, base=o.settings))
    summary = run_tasks(compute_task, tasks, store, desc="GPAW convergence", **kw)
    return RunResult(
        [("", summary)], table=convergence_table(store, el, a0, o.hkl(), o.variants, base=o.settings).to_string()
    )


def _relax(store: ResultStore, o: RunOptions, kw: dict) -> RunResult:
    eos = eos_results(store, o.settings)  # once: the relaxations do not change the E-V points
    tasks, skipped = relax_tasks(store, o.slabs, o.settings, o.fmax, o.max_steps, eos=eos)
    summary = run_tasks(relax_task, tasks, store, desc="GPAW slab relaxations (PBE)", **kw)
    return RunResult([("", summary)], skipped, relaxed_table(store, o.slabs, o.settings, o.fmax, eos=eos).to_string())


def _eos(store: ResultStore, o: RunOptions, kw: dict) -> RunResult:
    elements = list(o.elements or EOS_ELEMENTS)
    summary = run_eos(store, elements, o.settings, **kw)
    fits = eos_results(store, o.settings, elements)
    return RunResult([("", summary)], table="\n".join(f"  {el}: {fit}" for el, fit in fits.items()))


def _surfaces(store: ResultStore, o: RunOptions, kw: dict) -> RunResult:
    elements = list(o.elements or SURFACE_ELEMENTS)
    s1 = run_eos(store, elements, o.settings, **kw)
    eos = eos_results(store, o.settings)  # once, after the E-V stage: the slabs and the table use the same fits
    s2, skipped = run_slabs(store, eos, elements, o.settings, o.hkl(), **kw)
    return RunResult([("", s1), ("", s2)], skipped, surface_table(store, o.settings, eos=eos).to_string())


#: dataset name of ``python -m uipbench.dft run`` -> runner(store, options, engine keywords) -> RunResult
DATASETS: dict[str, Callable[[ResultStore, RunOptions, dict], RunResult]] = {
    "pairs": _pairs,
    "surfaces": _surfaces,
    "eos": _eos,
    "convergence": _convergence,
    "pairs-convergence": _pairs_convergence,
    "relax": _relax,
    "label-convergence": _label_convergence,
    "training": _training,
}


def run_dataset(name: str, store: ResultStore, options: RunOptions, **engine_kw) -> RunResult:
    """Run dataset ``name`` (a key of :data:`DATASETS`) into ``store``; ``engine_kw`` go to ``run_tasks``
    (backend, n_workers, scheduler, retry_failed, progress)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; one of {sorted(DATASETS)}")
    return DATASETS[name](store, options, engine_kw)
