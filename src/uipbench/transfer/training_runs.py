"""Training runs as tasks of the project's engine: a sweep of methods is resumable at two levels.

* A **finished** run is one record of the :class:`~uipbench.store.ResultStore` (kind ``"transfer-training"``):
  metrics, history, test predictions, gradient records, split ids, AtomRef refit; never the weights. Its key hashes
  the method, the data checksum, the split, the settings, the start model's weights checksum and the training code
  version, so a rerun of the sweep skips it (:func:`~uipbench.engine.run_tasks`).
* An **unfinished** run resumes from its last epoch checkpoint: its work directory is named by the same key
  (``<results>/training/<key[:16]>``), so a killed sweep started again continues where each run stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..engine import RunSummary, Task, run_tasks
from ..store import ResultStore, make_key
from .training import METHODS, TRAINING_CODE_VERSION, TrainConfig, _start_label, evaluate_zero_shot, train_method
from .training_data import TrainingSet, split_checksum

KIND = "transfer-training"
#: the untrained pretrained model with its AtomRef refitted on the training split (Table 1's zero-shot row)
ZERO_SHOT = ("zero-shot-refit", "zero-shot-residual", "zero-shot-pretrained")


@dataclass(frozen=True)
class TrainingArgs:
    method: str
    data: TrainingSet
    split: dict
    config: TrainConfig
    workdir: str
    start: object = "chgnet-0.3.0"  #: registry name or a CHGNet instance
    device: str = "cpu"


def training_key(method: str, data: TrainingSet, split: dict, config: TrainConfig, start="chgnet-0.3.0") -> str:
    return make_key(
        kind=KIND,
        method=method,
        data=data.checksum(),
        split=split_checksum(split),
        config=config.as_dict(),
        start=_start_label(start),
        code=TRAINING_CODE_VERSION,
    )


def run_training_task(args: TrainingArgs) -> dict:
    """Engine function: train one method to the end (resuming its checkpoint) and return its record."""
    if args.method in ZERO_SHOT:
        return evaluate_zero_shot(args.data, args.split, args.method.removeprefix("zero-shot-"), args.start,
                                  args.config.targets)  # fmt: skip
    out = train_method(args.method, args.data, args.split, args.config, args.workdir, start=args.start,
                       device=args.device)  # fmt: skip
    if not out.get("finished"):
        raise RuntimeError(f"{args.method}: run stopped after {out['epochs_done']} epochs")
    return out


def training_tasks(
    data: TrainingSet,
    split: dict,
    config: TrainConfig,
    methods=tuple(METHODS),
    start="chgnet-0.3.0",
    workroot: str | Path | None = None,
    dataset: str = "",
    device: str = "cpu",
) -> list[Task]:
    """One :class:`~uipbench.engine.Task` per method, all on the same data, split, seed and budget."""
    root = Path(workroot) if workroot is not None else paths.results_dir() / "training"
    tasks = []
    for m in methods:
        if m not in METHODS and m not in ZERO_SHOT:
            raise KeyError(f"unknown method {m!r}; choose from {sorted(METHODS)} or {ZERO_SHOT}")
        key = training_key(m, data, split, config, start)
        item = f"{dataset or data.source or 'data'}:{data.functional}:seed{config.seed}:{m}"
        args = TrainingArgs(m, data, split, config, str(root / key[:16]), start, device)
        tasks.append(Task(key=key, kind=KIND, model=m, item=item, args=args))
    return tasks


def read_records(tasks: list[Task], store: ResultStore, name=lambda t: t.key, failure_name=None) -> tuple[dict, dict]:
    """(finished payloads, reasons of the others: "not computed yet" or the stored error) of ``tasks``, keyed by
    ``name(task)`` (``failure_name(task)`` for the failures, default the same)."""
    failure_name = failure_name or name
    records, failures = {}, {}
    for t in tasks:
        rec = store.get(t.key, with_array=False)
        if rec is not None and rec.ok:
            records[name(t)] = rec.payload
        else:
            failures[failure_name(t)] = "not computed yet" if rec is None else str(rec.error)
    return records, failures


def run_training_sweep(tasks: list[Task], store: ResultStore, **kw) -> RunSummary:
    """Run the tasks not yet in ``store`` (serially by default: each training is single-threaded)."""
    return run_tasks(run_training_task, tasks, store, desc=KIND, **kw)


@dataclass
class Sweep:
    """What :func:`run_methods` did: the training sets per functional, the one split, the tasks, the engine
    summary, the finished records by run name (``"<functional>/<method>"``) and the failures with their reason."""

    sets: dict[str, TrainingSet]
    split: dict[str, list[str]]
    tasks: list[Task]
    summary: RunSummary
    records: dict[str, dict]
    failures: dict[str, str]
    split_rule: str = "composition-covered"  #: how the split was drawn, or why there is none
    blocked: str = ""  #: non-empty: why nothing was trained (the chapter shows it)


def chapter_split(data: TrainingSet, split_seed: int = 0, cover_elements: bool = True) -> tuple[dict, str, str]:
    """(split, rule, blocked) of the transfer chapters: the grouped 8:1:1 split, composition-covered with
    ``cover_elements`` (:func:`~uipbench.transfer.training_data.group_split`); when the data admit no such split
    (a few elemental groups and no compounds), test groups covered and validation groups not, else the plain
    grouped split, with a ``rule`` that says which and why; with fewer than three groups an empty split and the
    reason in ``blocked``, so a chapter renders the reason."""
    from .training_data import group_split

    comps = {g: {str(e): x for e, x in st.composition.fractional_composition.items()}
             for g, st in zip(data.groups, data.structures, strict=True)}  # fmt: skip
    if not cover_elements or len(set(data.groups)) < 3:
        try:
            return group_split(data.ids, data.groups, seed=split_seed), "grouped", ""
        except ValueError as exc:
            return {"train": [], "val": [], "test": []}, "none", f"no split: {exc}"
    try:
        return group_split(data.ids, data.groups, seed=split_seed, compositions=comps), "composition-covered", ""
    except ValueError as exc:
        first = exc
    try:
        split = group_split(data.ids, data.groups, seed=split_seed, compositions=comps, cover="test")
        return split, f"composition-covered test groups, validation not covered ({first})", ""
    except ValueError:
        rule = f"grouped (no composition-covered split: {first}); held-out elements have no fitted AtomRef"
        return group_split(data.ids, data.groups, seed=split_seed), rule, ""


def run_methods(
    frames,
    functionals=("r2scan",),
    methods=tuple(METHODS),
    config: TrainConfig | None = None,
    store: ResultStore | None = None,
    dataset: str = "",
    split_seed: int = 0,
    cover_elements: bool = True,
    device: str = "cpu",
    **kw,
) -> Sweep:
    """Every method on every target functional of ``frames`` (ASE frames with ``energy_<functional>_ev`` labels),
    on one grouped 8:1:1 split (the same structures for every functional), stored and resumable.

    ``cover_elements``: held-out groups only among those whose composition the training groups determine
    (:func:`~uipbench.transfer.training_data.group_split`); when the data admit no such split (a few elemental
    groups and no compounds), the plain grouped split is used and ``split_rule`` says why. With fewer than three
    groups nothing is trained and ``blocked`` says so: the chapter renders the reason instead of failing."""
    from .training_data import frames_to_training_set

    config = config or TrainConfig()
    store = store or ResultStore(paths.results_dir() / "training.sqlite")
    sets = {f: frames_to_training_set(frames, f, source=dataset) for f in functionals}
    first = sets[functionals[0]]
    split, rule, blocked = chapter_split(first, split_seed, cover_elements)
    if blocked:
        return Sweep(sets, split, [], RunSummary(total=0), {}, {}, rule, blocked)
    tasks = [t for f in functionals
             for t in training_tasks(sets[f], split, config, methods, dataset=dataset, device=device)]  # fmt: skip
    summary = run_training_sweep(tasks, store, **kw)
    records, failures = read_records(tasks, store, lambda t: f"{t.args.data.functional}/{t.args.method}")
    return Sweep(sets, split, tasks, summary, records, failures, rule)


def load_training_frames(dataset: str, limit: int | None = None) -> list:
    """Frames of a registered dataset with paired labels (the project's GPAW pairs), or ``"mp-r2scan"`` (the
    paper's set: downloaded, verified and cached by :func:`~uipbench.transfer.mp_r2scan.load_mp_r2scan`)."""
    if dataset == "mp-r2scan":
        from .mp_r2scan import load_mp_r2scan

        return load_mp_r2scan(limit=limit)
    from .. import datasets

    frames = datasets.load(dataset)
    return frames[:limit] if limit else frames
