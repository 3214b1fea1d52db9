"""The scaling law of transfer against training from scratch (transfer paper Fig. 5): test MAE against the number N
of target-functional training structures, as a resumable sweep of engine tasks.

Compute only; the figures and numbers are :mod:`.scaling_report`. Every (functional, method, N, seed) run is one
task of :func:`~uipbench.transfer.training_runs.training_tasks`, run by
:func:`~uipbench.transfer.training_runs.run_training_sweep` (stored when done, skipped on rerun, a killed sweep
resumes, backends ``serial`` / ``process`` / ``dask`` passed through): this module only chooses the subsets, the
budget and the split, and reads the records back.

Design decisions (stated in chapter 13):

* **One fixed validation/test split** for every run: :func:`fixed_split` is chapter 12's grouped 8:1:1 split (by
  default composition-covered); the N-structure training sets are drawn from its training part only.
* **Nested subsets by structure group** (:func:`nested_subsets`): one seeded permutation of the training *groups*
  per seed; the subset for target size N takes whole groups in that order until it holds at least N frames. So each
  larger subset contains every smaller one (a curve measures adding data, not redrawing it), and a strained/rattled
  family of one cell is never cut: its frames are one DFT calculation family (one prototype and composition), near
  duplicates of each other, and a frame-level draw would let N count correlated copies as independent structures
  and put a family's strained copies in training without the cell they are strained from. The cost: the actual
  frame count overshoots N by less than one group (recorded as ``n_train``; the figures use it), and a small
  subset covers few compositions. ``unit="frame"`` (a seeded permutation of frames, nested too) is there to
  compare.
* **An optimisation budget that does not starve small runs** (:class:`Budget`, :func:`epochs_for`): a run gets
  enough epochs for ``steps_target`` gradient steps, at least ``min_epochs`` and at most ``max_epochs`` epochs.
  Hence the number of steps grows with N where ``max_epochs`` binds (small N: every structure seen
  ``max_epochs`` times), is ``steps_target`` in the middle, and grows again as ``min_epochs`` passes over large
  sets. A run of 8 structures is never cut to the few steps that a fixed epoch count would give it.
* **The zero-shot point**: ``zero-shot-refit`` (chgnet-0.3.0 untrained, AtomRef refitted on the same subset) at
  every (N, seed), and at N = 0 in the figure the same with the AtomRef of the whole training part.

:func:`power_law_fit` fits ``log10 MAE = a + b log10 N`` above a threshold (the paper: N > 1,000) and
:func:`data_efficiency_ratio` turns two fits into "scratch needs r x N structures to match transfer at N";
:func:`data_efficiency` adds a bootstrap interval over seeds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

from .. import paths
from ..engine import RunSummary, Task
from ..store import ResultStore
from .training import TrainConfig
from .training_data import TrainingSet
from .training_runs import ZERO_SHOT, chapter_split, read_records, run_training_sweep, training_tasks

#: methods of Fig. 5: the paper's transfer recipe, training from scratch, and the residual-AtomRef variant
DEFAULT_METHODS = ("m4-atomref-refit", "m1-scratch", "m5-atomref-residual", "zero-shot-refit")
#: test MAEs of a record, in the units of the figures (meV/atom, meV/Å, GPa) with their scale from the record's
TARGETS = {
    "energy": ("test_mae_e_ev_per_atom", 1000.0, "energy MAE (meV/atom)"),
    "force": ("test_mae_f_ev_per_a", 1000.0, "force MAE (meV/Å)"),
    "stress": ("test_mae_s_gpa", 1.0, "stress MAE (GPa)"),
}
#: columns of :func:`scaling_frame` that are not in a record's MAE fields, with their axis labels
DERIVED = {"energy_covered": "energy MAE, test frames with seen elements (meV/atom)"}


# ----------------------------------------------------------------------------------------------------------------
# sizes and subsets


def log_sizes(n_max: int, n_min: int = 8, n_points: int = 6) -> list[int]:
    """``n_points`` training-set sizes log-spaced from ``n_min`` to ``n_max`` (both included), rounded, unique."""
    if n_max < 1:
        raise ValueError(f"n_max must be positive, got {n_max}")
    if n_max <= n_min or n_points <= 1:
        return [int(n_max)]
    sizes = np.unique(np.round(np.geomspace(n_min, n_max, n_points)).astype(int))
    return [int(s) for s in sizes]


def nested_subsets(
    train_ids: Sequence[str], train_groups: Sequence[str], sizes: Sequence[int], seed: int = 0, unit: str = "group"
) -> dict[int, list[str]]:
    """For each target size N (ascending), the ids of a training subset of at least N frames (or all of them).

    ``unit="group"``: one ``numpy.random.default_rng(seed)`` permutation of the sorted groups; whole groups are
    taken in that order until the subset holds >= N frames, so no group is split and every subset contains the
    smaller ones. ``unit="frame"``: a seeded permutation of the frames, the first N. Ids keep the order of
    ``train_ids``.
    """
    if len(train_ids) != len(train_groups):
        raise ValueError(f"{len(train_ids)} ids but {len(train_groups)} groups")
    sizes = sorted({int(n) for n in sizes})
    if not sizes or sizes[0] < 1:
        raise ValueError(f"sizes must be positive, got {sizes}")
    rng = np.random.default_rng(seed)
    if unit == "frame":
        order = [train_ids[i] for i in rng.permutation(len(train_ids))]
        rank = {i: k for k, i in enumerate(order)}
        return {n: [i for i in train_ids if rank[i] < n] for n in sizes}
    if unit != "group":
        raise ValueError(f"unit must be 'group' or 'frame', got {unit!r}")
    groups = sorted(set(train_groups))
    order = [groups[i] for i in rng.permutation(len(groups))]
    size = {g: 0 for g in groups}
    for g in train_groups:
        size[g] += 1
    out, taken, count, k = {}, set(), 0, 0
    for n in sizes:
        while count < n and k < len(order):
            taken.add(order[k])
            count += size[order[k]]
            k += 1
        out[n] = [i for i, g in zip(train_ids, train_groups, strict=True) if g in taken]
    return out


# ----------------------------------------------------------------------------------------------------------------
# the optimisation budget


def epochs_for(n: int, steps_target: int, batch_size: int, min_epochs: int = 1, max_epochs: int = 1000) -> int:
    """Epochs of a run on ``n`` structures: ``ceil(steps_target / steps_per_epoch)`` clipped to
    [``min_epochs``, ``max_epochs``], with ``steps_per_epoch = ceil(n / batch_size)``."""
    if n < 1 or batch_size < 1 or steps_target < 1 or not 1 <= min_epochs <= max_epochs:
        raise ValueError(f"bad budget: n={n}, steps_target={steps_target}, batch_size={batch_size}, "
                         f"epochs in [{min_epochs}, {max_epochs}]")  # fmt: skip
    per_epoch = math.ceil(n / batch_size)
    return int(min(max_epochs, max(min_epochs, math.ceil(steps_target / per_epoch))))


@dataclass(frozen=True)
class Budget:
    """The budget rule of every run of a sweep (see :func:`epochs_for`)."""

    steps_target: int = 1000
    batch_size: int = 16
    min_epochs: int = 5
    max_epochs: int = 100

    RULE = ("epochs = clip(ceil(steps_target / ceil(N / batch_size)), min_epochs, max_epochs): at least "
            "steps_target gradient steps unless that takes more than max_epochs epochs, and never fewer than "
            "min_epochs epochs")  # fmt: skip

    def epochs(self, n: int) -> int:
        return epochs_for(n, self.steps_target, self.batch_size, self.min_epochs, self.max_epochs)

    def steps(self, n: int) -> int:
        return self.epochs(n) * math.ceil(n / self.batch_size)

    def as_dict(self) -> dict:
        return {**asdict(self), "rule": self.RULE}


# ----------------------------------------------------------------------------------------------------------------
# the split and the sweep


def fixed_split(data: TrainingSet, split_seed: int = 0, cover_elements: bool = True) -> dict[str, list[str]]:
    """Chapter 12's grouped 8:1:1 split of ``data`` (:func:`~uipbench.transfer.training_runs.chapter_split`): the
    one validation and test set of every run of the sweep; raises when the data admit none."""
    split, _, blocked = chapter_split(data, split_seed, cover_elements)
    if blocked:
        raise ValueError(blocked)
    return split


@dataclass
class ScalingSweep:
    """What :func:`run_scaling` did: training sets per functional, the fixed split, the subsets per seed
    (``{seed: {n_target: ids}}``), the tasks with their plan (``meta[key]``: functional, method, n_target, n_train,
    seed, epochs, steps, budget), the engine summary, and the finished records and failures by task key."""

    sets: dict[str, TrainingSet]
    split: dict[str, list[str]]
    subsets: dict[int, dict[int, list[str]]]
    tasks: list[Task]
    meta: dict[str, dict]
    budget: Budget
    summary: RunSummary | None = None
    records: dict[str, dict] | None = None
    failures: dict[str, str] | None = None
    split_rule: str = ""  #: how the fixed split was drawn (:func:`~uipbench.transfer.training_runs.chapter_split`)
    blocked: str = ""  #: non-empty: why nothing was planned


def scaling_tasks(
    sets: Mapping[str, TrainingSet],
    split: Mapping[str, list[str]],
    sizes: Sequence[int],
    seeds: Sequence[int] = (0, 1, 2),
    methods: Sequence[str] = DEFAULT_METHODS,
    budget: Budget | None = None,
    base_config: TrainConfig | None = None,
    start="chgnet-0.3.0",
    workroot=None,
    dataset: str = "",
    device: str = "cpu",
    unit: str = "group",
) -> ScalingSweep:
    """Plan the sweep: one task per (functional, method, N, seed), built by ``training_tasks``.

    Run ``(functional, method, N, seed)`` trains on the seed's nested subset of size N of ``split["train"]`` and is
    validated and tested on ``split["val"]`` / ``split["test"]`` (the same for all). ``base_config`` holds
    everything but ``epochs``, ``batch_size`` and ``seed``, which come from ``budget`` and the seed (weights
    initialisation, batch order and the subset's permutation). Zero-shot methods do not train: their config is the
    seed-free ``base_config`` (so runs on equal subsets are one task).
    """
    budget = budget or Budget()
    base = base_config or TrainConfig()
    first = next(iter(sets.values()))
    group_of = dict(zip(first.ids, first.groups, strict=True))
    train = list(split["train"])
    subsets = {s: nested_subsets(train, [group_of[i] for i in train], sizes, seed=s, unit=unit) for s in seeds}
    tasks, meta = [], {}
    for fn, data in sets.items():
        for m in methods:
            for s in seeds:
                for n, ids in subsets[s].items():
                    sub = {"train": ids, "val": list(split["val"]), "test": list(split["test"])}
                    zero = m in ZERO_SHOT
                    cfg = replace(base, epochs=0 if zero else budget.epochs(len(ids)), batch_size=budget.batch_size,
                                  seed=0 if zero else s)  # fmt: skip
                    (t,) = training_tasks(data, sub, cfg, (m,), start, workroot, dataset, device)
                    t = replace(t, item=f"{t.item}:N{n}")
                    tasks.append(t)
                    meta.setdefault(t.key, {"functional": fn, "method": m, "n_target": n, "n_train": len(ids),
                                            "n_groups": len({group_of[i] for i in ids}), "seed": s,
                                            "epochs": cfg.epochs, "steps": 0 if zero else budget.steps(len(ids)),
                                            "budget": budget.as_dict(), "unit": unit})  # fmt: skip
    return ScalingSweep(dict(sets), {k: list(v) for k, v in split.items()}, subsets, tasks, meta, budget)


def run_scaling(sweep: ScalingSweep, store: ResultStore | None = None, **kw) -> ScalingSweep:
    """Run the planned tasks not yet in ``store`` (``**kw``: ``backend``, ``n_workers``, ``scheduler``,
    ``progress``, ... of :func:`~uipbench.engine.run_tasks`) and read every record back into ``sweep``."""
    store = store or ResultStore(paths.results_dir() / "training.sqlite")
    sweep.summary = run_training_sweep(sweep.tasks, store, **kw)
    sweep.records, sweep.failures = read_records(sweep.tasks, store, failure_name=lambda t: t.item)
    return sweep


def run_scaling_law(
    frames,
    functionals: Sequence[str] = ("r2scan",),
    methods: Sequence[str] = DEFAULT_METHODS,
    n_points: int = 6,
    n_min: int = 8,
    seeds: Sequence[int] = (0, 1, 2),
    budget: Budget | None = None,
    base_config: TrainConfig | None = None,
    store: ResultStore | None = None,
    n_max: int = 0,
    dataset: str = "",
    split_seed: int = 0,
    cover_elements: bool = True,
    unit: str = "group",
    start="chgnet-0.3.0",
    workroot=None,
    device: str = "cpu",
    **kw,
) -> ScalingSweep:
    """The whole sweep from labelled ASE frames: training sets per functional, the fixed split, log-spaced sizes
    up to the whole training part (or ``n_max`` when > 0), tasks, run (``**kw`` to the engine)."""
    from .training_data import frames_to_training_set

    sets = {f: frames_to_training_set(frames, f, source=dataset) for f in functionals}
    split, rule, blocked = chapter_split(sets[functionals[0]], split_seed, cover_elements)
    if blocked:  # too little data: an empty sweep that says why (the chapter renders the reason)
        empty = ScalingSweep(sets, split, {}, [], {}, budget or Budget(), RunSummary(total=0), {}, {})
        empty.split_rule, empty.blocked = rule, blocked
        return empty
    n_pool = len(split["train"])
    sizes = log_sizes(min(n_pool, n_max) if n_max > 0 else n_pool, n_min, n_points)
    sweep = scaling_tasks(sets, split, sizes, seeds, methods, budget, base_config, start, workroot, dataset, device,
                          unit)  # fmt: skip
    sweep.split_rule = rule
    return run_scaling(sweep, store, **kw)


def plan_table(sweep: ScalingSweep) -> pd.DataFrame:
    """The plan per (target size, seed) of the trained runs: actual frames and groups, epochs and steps."""
    rows = [{k: m[k] for k in ("n_target", "seed", "n_train", "n_groups", "epochs", "steps")}
            for m in sweep.meta.values() if m["method"] not in ZERO_SHOT]  # fmt: skip
    cols = ["n_target", "seed", "n_train", "n_groups", "epochs", "steps"]
    return pd.DataFrame(rows, columns=cols).drop_duplicates().sort_values(["n_target", "seed"]).reset_index(drop=True)


def scaling_frame(sweep: ScalingSweep) -> pd.DataFrame:
    """One row per finished run: the plan (functional, method, n_target, n_train, n_groups, seed, epochs, steps)
    and the test MAEs (energy meV/atom, force meV/Å, stress GPa), best epoch and training seconds.

    ``test_covered``: the fraction of test frames whose composition the run's training subset determines (it lies
    in the span of the subset's compositions, the criterion of the fixed split's held-out groups), and
    ``energy_covered`` the energy MAE over those frames only. A small subset leaves some test elements unseen, or
    seen only in a compound with another unseen element: a composition-linear reference (AtomRef) is then not
    fixed by the data (``AtomRef.fit`` sets absent elements to 0, splits an undetermined pair arbitrarily), and an
    energy error of eV/atom measures the missing reference, not the data efficiency of the network."""
    first = next(iter(sweep.sets.values()))
    fractions = {i: {str(e): x for e, x in st.composition.fractional_composition.items()}
                 for i, st in zip(first.ids, first.structures, strict=True)}  # fmt: skip
    rows = []
    for key, rec in (sweep.records or {}).items():
        m = sweep.meta[key]
        row = {k: m[k] for k in ("functional", "method", "n_target", "n_train", "n_groups", "seed", "epochs", "steps")}
        for name, (field, scale, _) in TARGETS.items():
            v = rec.get(field)
            row[name] = float(v) * scale if v is not None else np.nan
        row["n_test"] = len(rec.get("test_predictions", []))
        covered = determined(rec.get("test_predictions", []), rec["split"]["train"], fractions)
        row["test_covered"] = len(covered) / row["n_test"] if row["n_test"] else np.nan
        row["energy_covered"] = (1000.0 * float(np.mean([abs(p["e_pred"] - p["e_true"]) for p in covered]))
                                 if covered else np.nan)  # fmt: skip
        row["best_epoch"] = rec.get("best_epoch", np.nan)
        row["train_seconds"] = float(np.sum(rec.get("epoch_seconds", []))) if "epoch_seconds" in rec else 0.0
        rows.append(row)
    cols = ["functional", "method", "n_target", "n_train", "n_groups", "seed", "epochs", "steps", *TARGETS,
            "n_test", "test_covered", "energy_covered", "best_epoch", "train_seconds"]  # fmt: skip
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values(["functional", "method", "n_target", "seed"], kind="stable").reset_index(drop=True)


def determined(predictions: Sequence[Mapping], train_ids: Sequence[str], fractions: Mapping) -> list[Mapping]:
    """The test predictions whose composition (``fractions[id]``: element -> atomic fraction) lies in the span of
    the training compositions, i.e. whose composition-linear reference energy the training data determine."""
    elements = sorted({e for i in list(train_ids) + [p["id"] for p in predictions] for e in fractions[i]})

    def vec(i: str) -> np.ndarray:
        return np.array([float(fractions[i].get(e, 0.0)) for e in elements])

    train = np.unique(np.array([vec(i) for i in train_ids]).round(10), axis=0) if len(train_ids) else np.zeros((0, 1))
    rank = np.linalg.matrix_rank(train) if len(train) else 0
    out = []
    for p in predictions:
        v = vec(p["id"])
        if len(train) and np.linalg.matrix_rank(np.vstack([train, v])) == rank:
            out.append(p)
    return out


def size_means(df: pd.DataFrame, target: str = "energy") -> pd.DataFrame:
    """Per (functional, method, n_target): mean actual size, mean, std, min and max of ``target`` over seeds."""
    g = df.groupby(["functional", "method", "n_target"], sort=True)
    out = g.agg(n=("n_train", "mean"), mean=(target, "mean"), std=(target, "std"), lo=(target, "min"),
                hi=(target, "max"), seeds=("seed", "nunique"))  # fmt: skip
    return out.reset_index()


# ----------------------------------------------------------------------------------------------------------------
# the fit


def power_law_fit(n, mae, n_min: float = 0.0, n_max: float = math.inf) -> dict:
    """Least squares of ``log10 mae = intercept + slope * log10 n`` over the points with ``n_min <= n <= n_max``.

    Returns slope, intercept, R² (of the log-log fit), the fit range (``n_lo``, ``n_hi``) and the number of
    points; NaN slope and R² when fewer than two distinct sizes lie in range (R² is NaN too when every MAE in
    range is equal)."""
    n, mae = np.asarray(n, float), np.asarray(mae, float)
    ok = (n >= n_min) & (n <= n_max) & (n > 0) & (mae > 0) & np.isfinite(mae)
    x, y = np.log10(n[ok]), np.log10(mae[ok])
    lo, hi = (float(n[ok].min()), float(n[ok].max())) if ok.any() else (np.nan, np.nan)
    out = {"slope": np.nan, "intercept": np.nan, "r2": np.nan, "n_lo": lo, "n_hi": hi, "n_points": int(ok.sum()),
           "n_min": float(n_min)}  # fmt: skip
    if len(np.unique(x)) < 2:
        return out
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (intercept + slope * x)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    out.update(slope=float(slope), intercept=float(intercept),
               r2=float(1.0 - np.sum(resid**2) / ss_tot) if ss_tot > 0 else np.nan)  # fmt: skip
    return out


def predict_mae(fit: Mapping, n) -> np.ndarray:
    """The fitted MAE at ``n``."""
    return 10.0 ** (fit["intercept"] + fit["slope"] * np.log10(np.asarray(n, float)))


def data_efficiency_ratio(fit_scratch: Mapping, fit_transfer: Mapping, n: float) -> float:
    """How many times more structures training from scratch needs to reach transfer's (fitted) MAE at ``n``:
    ``N_scratch / n`` with ``fit_scratch(N_scratch) = fit_transfer(n)``. NaN unless the scratch fit decreases
    (a non-negative slope never reaches a lower error)."""
    b_s, a_s = fit_scratch.get("slope", np.nan), fit_scratch.get("intercept", np.nan)
    if not (np.isfinite(b_s) and np.isfinite(a_s) and b_s < 0):
        return float("nan")
    target = float(np.log10(predict_mae(fit_transfer, n)))
    return float(10.0 ** ((target - a_s) / b_s) / n)


def data_efficiency(
    df: pd.DataFrame,
    target: str = "energy",
    scratch: str = "m1-scratch",
    transfer: str = "m4-atomref-refit",
    n: float | None = None,
    n_min: float = 0.0,
    functional: str = "r2scan",
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """:func:`data_efficiency_ratio` of the fits to the seed means of ``df`` (:func:`scaling_frame`) at ``n``
    (default: the largest mean size), with a percentile interval from resampling seeds with replacement (the
    same seeds for both methods: a seed fixes the subsets). ``extrapolated``: the scratch size needed lies
    outside the sizes fitted, by ``extrapolation_factor`` (``n_scratch_needed / n_hi`` of the scratch fit, or
    ``n_lo / n_scratch_needed`` below it): a ratio from a nearly flat scratch fit explodes and is a statement about
    the fit, not a measurement."""
    d = df[(df["functional"] == functional) & df["method"].isin([scratch, transfer])].dropna(subset=[target])
    seeds = sorted(d["seed"].unique())

    def ratio(sub: pd.DataFrame) -> tuple[float, dict, dict]:
        fits = {}
        for m in (scratch, transfer):
            g = sub[sub["method"] == m].groupby("n_target")
            fits[m] = power_law_fit(g["n_train"].mean(), g[target].mean(), n_min=n_min)
        return data_efficiency_ratio(fits[scratch], fits[transfer], n_at), fits[scratch], fits[transfer]

    if d.empty:
        return {"ratio": np.nan, "ratio_lo": np.nan, "ratio_hi": np.nan, "n": n, "n_seeds": 0}
    n_at = float(n) if n is not None else float(d.groupby("n_target")["n_train"].mean().max())
    point, fs, ft = ratio(d)
    rng = np.random.default_rng(seed)
    by_seed = {s: d[d["seed"] == s] for s in seeds}
    boots = []
    for _ in range(n_boot if len(seeds) > 1 else 0):
        pick = rng.choice(seeds, size=len(seeds), replace=True)
        boots.append(ratio(pd.concat([by_seed[s] for s in pick]))[0])
    b = np.asarray(boots, float)
    b = b[np.isfinite(b)]
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    n_needed = point * n_at
    factor = max(n_needed / fs["n_hi"], fs["n_lo"] / n_needed) if np.isfinite(n_needed) and n_needed > 0 else np.nan
    return {"target": target, "functional": functional, "n": n_at, "ratio": point,
            "ratio_lo": float(np.percentile(b, lo)) if b.size else np.nan,
            "ratio_hi": float(np.percentile(b, hi)) if b.size else np.nan, "n_scratch_needed": n_needed,
            "extrapolated": bool(np.isfinite(n_needed) and not fs["n_lo"] <= n_needed <= fs["n_hi"]),
            "extrapolation_factor": float(max(factor, 1.0)) if np.isfinite(factor) else np.nan,
            "n_seeds": len(seeds), "n_boot_finite": int(b.size), "fit_scratch": fs, "fit_transfer": ft}  # fmt: skip
