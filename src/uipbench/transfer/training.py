"""Transfer learning of CHGNet across functionals with chgnet's own ``Trainer``: methods 1-5 of the transfer study.

=====================================  ==================================================================
method (function)                      start and AtomRef
=====================================  ==================================================================
``m1-scratch`` (:func:`train_scratch`)  random network (seeded, the start model's architecture); AtomRef
                                       fitted to the target training data (chgnet's ``AtomRef.fit``), frozen
``m2-atomref-trainable``               chgnet-0.3.0; its (MPtrj, GGA) AtomRef trained with the network
``m3-atomref-frozen``                  chgnet-0.3.0; AtomRef frozen at the MPtrj (GGA) values
``m4-atomref-refit``                   chgnet-0.3.0; AtomRef refitted to the target (``AtomRef.fit``: absent
                                       elements set to 0), frozen (the paper's recipe)
``m5-atomref-residual``                chgnet-0.3.0; AtomRef += least squares of E_target - E_model,
                                       absent elements keep theirs, frozen (beyond the paper)
=====================================  ==================================================================

Every method runs :func:`train_method` with the same split, seed and :class:`TrainConfig` (budget). What the
wrapper adds to a bare ``Trainer.train`` loop:

* **Freezing that survives ``Trainer.train``**: ``train`` sets ``requires_grad`` of every AtomRef parameter to its
  ``train_composition_model`` argument at start (overriding a manual freeze), so the wrapper passes the method's
  own flag on every call; other frozen parameters (``TrainConfig.freeze``, name prefixes) are untouched by it.
* **Checkpoint every epoch, resume**: the wrapper drives ``Trainer.train`` one epoch per call and writes, after
  each epoch, one atomic ``state.pt`` in ``workdir`` (model, optimizer, scheduler, history, best-validation
  weights, gradient records). A killed run started again with the same arguments resumes after its last finished
  epoch and ends bit-identical to an uninterrupted run: the training order of epoch ``k`` is a permutation seeded
  by ``(seed, k)`` (no global RNG state to lose), validation and test are read in order.
* **Gradient norms** of chosen layers (:func:`gradient_parameter_names`) at every 1/10 of the first epoch, read by
  ``optimizer.register_step_pre_hook`` (after ``backward``, before the step; chgnet has no callback API).
* **Test predictions** of the best-validation-energy weights (chgnet's choice), per structure, with MAEs.

Units: energies eV/atom, forces eV/Å, stresses GPa in the results (labels enter as VASP-sign kBar, see
:mod:`.training_data`).
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .atomref_refit import refit_atomref, refit_atomref_residual
from .trainer_tools import (
    EmptySafeLoss,
    EpochPermutation,
    apply_freeze,
    empty_safe_mae,
    evaluate,
    gradient_parameter_names,
    graphable_ids,
    parameters_sha256,
    scratch_model,
    start_model,
    structure_loader,
)
from .training_data import SPLITS, TrainingSet, split_checksum

TRAINING_CODE_VERSION = "2"  #: part of every run's key: bump when a change moves the numbers


@dataclass(frozen=True)
class TrainConfig:
    """The budget and hyperparameters shared by every method (defaults: the paper / chgnet's r2SCAN README)."""

    epochs: int = 50
    batch_size: int = 40
    learning_rate: float = 1e-3
    targets: str = "efs"  #: "efsm" when the data carry magnetic moments (MP-r2SCAN)
    energy_loss_ratio: float = 3.0
    force_loss_ratio: float = 1.0
    stress_loss_ratio: float = 0.1
    mag_loss_ratio: float = 1.0
    criterion: str = "Huber"
    optimizer: str = "Adam"
    scheduler: str = "CosLR"
    seed: int = 0
    grad_points: int = 10  #: gradient norms recorded at every 1/grad_points of the first epoch
    freeze: tuple[str, ...] = ()  #: extra parameter-name prefixes kept frozen (besides a frozen AtomRef)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["freeze"] = list(self.freeze)
        return d


@dataclass(frozen=True)
class Method:
    name: str
    pretrained: bool
    atomref: str  #: "pretrained" | "refit" | "residual"
    train_atomref: bool
    description: str


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("m1-scratch", False, "refit", False, "from scratch, AtomRef fitted to the target and frozen"),
        Method("m2-atomref-trainable", True, "pretrained", True, "from chgnet-0.3.0, AtomRef trainable"),
        Method("m3-atomref-frozen", True, "pretrained", False, "from chgnet-0.3.0, AtomRef frozen at MPtrj"),
        Method("m4-atomref-refit", True, "refit", False, "from chgnet-0.3.0, AtomRef refitted and frozen"),
        Method("m5-atomref-residual", True, "residual", False, "from chgnet-0.3.0, residual AtomRef, frozen"),
    )
}


# ----------------------------------------------------------------------------------------------------------------
# one run


@dataclass
class _State:
    epoch_done: int = 0
    history: dict = field(default_factory=dict)
    grad_records: list = field(default_factory=list)
    epoch_seconds: list = field(default_factory=list)
    best_val_e: float = float("inf")
    best_epoch: int = -1
    best_state: dict | None = None
    atomref: dict = field(default_factory=dict)


def check_split(data: TrainingSet, split: dict[str, list[str]]) -> None:
    """Refuse a split with unknown ids, an id in two splits, or a structure group in more than one split."""
    group_of = dict(zip(data.ids, data.groups, strict=True))
    unknown = [i for k in SPLITS for i in split[k] if i not in group_of]
    if unknown:
        raise ValueError(f"split ids not in the data: {unknown[:5]} ({len(unknown)} in all)")
    where: dict[str, set[str]] = {}
    for k in SPLITS:
        for i in split[k]:
            where.setdefault(group_of[i], set()).add(k)
    straddle = {g: sorted(v) for g, v in where.items() if len(v) > 1}
    if straddle:
        raise ValueError(f"structure groups in more than one split: {dict(list(straddle.items())[:5])}")


def run_signature(method: Method, data: TrainingSet, split: dict, config: TrainConfig, start: str) -> str:
    from ..store import make_key

    return make_key(
        method=method.name,
        data=data.checksum(),
        split=split_checksum(split),
        config=config.as_dict(),
        start=start,
        code=TRAINING_CODE_VERSION,
    )


def _start_label(start) -> str:
    if isinstance(start, str):
        from ..models import weights_checksum

        return f"{start}@{weights_checksum(start)[:16]}"
    return f"instance@{parameters_sha256(start)[:16]}"


def train_method(
    method: str | Method,
    data: TrainingSet,
    split: dict[str, list[str]],
    config: TrainConfig,
    workdir: str | Path,
    start="chgnet-0.3.0",
    stop_after_epochs: int | None = None,
    device: str = "cpu",
) -> dict:
    """Train ``method`` on ``split`` of ``data`` with ``config``; checkpoint to / resume from ``workdir``.

    Returns the run's record (JSON-able): settings, split ids, dropped structures, AtomRef refit, per-epoch history
    (train/val MAE per target), epoch times, gradient records, best epoch, test predictions and test MAEs.
    ``stop_after_epochs`` ends the call after that many finished epochs (what a killed run leaves behind) and
    returns ``{"finished": False, ...}``; calling again resumes.
    """
    from ..engine import single_thread

    single_thread()
    method = METHODS[method] if isinstance(method, str) else method
    check_split(data, split)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    signature = run_signature(method, data, split, config, _start_label(start))
    model, parts, dropped = _prepare_model_and_parts(method, data, split, config, start)
    state_path = workdir / "state.pt"
    st, saved = _initial_state(state_path, signature, method, model, parts["train"])
    frozen = apply_freeze(model, config.freeze, freeze_atomref=not method.train_atomref)
    trainer = _make_trainer(model, config, device)
    if saved is not None:
        _restore(saved, model, trainer, st)
    st.history = trainer.training_history
    _run_epochs(method, model, trainer, parts, config, st, state_path, signature, stop_after_epochs)
    record = _run_record(method, data, parts, config, start, dropped, frozen, st, trainer, model, device)
    if st.epoch_done < config.epochs:
        return {"finished": False, **record}
    model.load_state_dict(st.best_state)
    record.update(best_epoch=st.best_epoch, **evaluate(model, parts["test"], config.targets), finished=True)
    record["reference_predictions"] = reference_predictions(model, data, set(dropped))
    return record


def reference_predictions(model, data: TrainingSet, dropped=frozenset()) -> list[dict]:
    """Energy predictions on every single-element frame of ``data`` (train, val and test): the elemental
    references of formation energies, taken with the same model and DFT settings as the compounds."""
    ids = [i for i, s in zip(data.ids, data.structures, strict=True) if len(s.composition) == 1 and i not in dropped]
    return evaluate(model, data.subset(ids), targets="e")["test_predictions"] if ids else []


def _prepare_model_and_parts(method: Method, data: TrainingSet, split: dict, config: TrainConfig, start):
    """The start model (pretrained or re-initialised) and the split's training sets, without the structures whose
    graph cannot be built (dropped and listed, never swapped for random ones as chgnet does)."""
    base = start_model(start)
    model = scratch_model(base, config.seed) if not method.pretrained else base
    kept, dropped = graphable_ids(model, data)
    keep = set(kept)
    parts = {k: data.subset([i for i in split[k] if i in keep]) for k in SPLITS}
    if min(len(parts[k]) for k in SPLITS) == 0:
        raise ValueError(f"an empty split after dropping {len(dropped)} structures: {[len(parts[k]) for k in SPLITS]}")
    return model, parts, dropped


def _initial_state(state_path: Path, signature: str, method: Method, model, train: TrainingSet):
    """(state, saved checkpoint or None); a new run refits the method's AtomRef on the training split only."""
    import torch

    st = _State()
    saved = torch.load(state_path, map_location="cpu", weights_only=True) if state_path.exists() else None
    if saved is not None and saved["signature"] != signature:
        raise RuntimeError(f"{state_path} belongs to another run (signature differs); use another workdir")
    if saved is None:
        if method.atomref == "refit":
            st.atomref = refit_atomref(model, train.structures, train.energies)
        elif method.atomref == "residual":
            st.atomref = refit_atomref_residual(model, train.structures, train.energies)
        else:
            st.atomref = {"atomref_variant": "pretrained", "elements_zeroed": []}
    return st, saved


def _make_trainer(model, config: TrainConfig, device: str):
    from chgnet.trainer import Trainer

    trainer = Trainer(
        model=model,
        targets=config.targets,
        energy_loss_ratio=config.energy_loss_ratio,
        force_loss_ratio=config.force_loss_ratio,
        stress_loss_ratio=config.stress_loss_ratio,
        mag_loss_ratio=config.mag_loss_ratio,
        optimizer=config.optimizer,
        scheduler=config.scheduler,
        criterion=config.criterion,
        epochs=config.epochs,
        learning_rate=config.learning_rate,
        use_device=device,
        print_freq=10**9,
        allow_missing_labels=True,  # NaN labels (masked stresses, absent magnetic moments) leave the loss
    )
    trainer.criterion.criterion = EmptySafeLoss(trainer.criterion.criterion)
    return trainer


def _restore(saved: dict, model, trainer, st: _State) -> None:
    model.load_state_dict(saved["model"])
    trainer.optimizer.load_state_dict(saved["optimizer"])
    trainer.scheduler.load_state_dict(saved["scheduler"])
    for k in ("epoch_done", "history", "grad_records", "epoch_seconds", "best_val_e", "best_epoch", "atomref"):
        setattr(st, k, saved[k])
    st.best_state = saved["best_state"]
    trainer.training_history = st.history


def _gradient_hook(model, st: _State, counter: dict, n_batches: int, grad_points: int):
    """An optimizer step pre-hook recording the per-layer gradient norms at every 1/``grad_points`` of epoch 0."""
    record_at = sorted({int(k) for k in np.arange(1, grad_points + 1) * n_batches // grad_points} - {0})
    grad_names = gradient_parameter_names(model)
    params = dict(model.named_parameters())

    def hook(optimizer, args, kwargs):
        counter["step"] += 1
        if counter["epoch"] == 0 and counter["step"] in record_at:
            norms = {}
            for label, name in grad_names.items():
                g = params[name].grad
                norms[label] = float(g.norm()) if g is not None else float("nan")
            st.grad_records.append(
                {"epoch": 0, "step": counter["step"], "fraction": counter["step"] / n_batches, "norms": norms}
            )

    return hook


def _run_epochs(method, model, trainer, parts, config, st, state_path, signature, stop_after_epochs) -> None:
    """One ``Trainer.train`` call per epoch (so the sampler is seeded per epoch), the best-validation state kept,
    an atomic checkpoint after every epoch."""
    sampler = EpochPermutation(range(len(parts["train"])), config.seed)
    train_loader = structure_loader(model, parts["train"], config.targets, config.batch_size, sampler)
    val_loader = structure_loader(model, parts["val"], config.targets, config.batch_size)
    counter = {"epoch": st.epoch_done, "step": 0}
    hook = _gradient_hook(model, st, counter, len(train_loader), config.grad_points)
    handle = trainer.optimizer.register_step_pre_hook(hook)
    last = config.epochs if stop_after_epochs is None else min(config.epochs, st.epoch_done + stop_after_epochs)
    try:
        for epoch in range(st.epoch_done, last):
            counter.update(epoch=epoch, step=0)
            sampler.epoch = epoch
            trainer.starting_epoch, trainer.epochs = epoch, epoch + 1
            n_before = len(trainer.training_history["e"]["train"])
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()), empty_safe_mae():
                trainer.train(train_loader, val_loader, None, save_dir="", train_composition_model=method.train_atomref)
            st.epoch_seconds.append(time.perf_counter() - t0)
            if len(trainer.training_history["e"]["train"]) == n_before:
                raise FloatingPointError(f"{method.name}: NaN loss in epoch {epoch} (chgnet stopped the run)")
            val_e = trainer.training_history["e"]["val"][-1]
            if val_e < st.best_val_e:
                st.best_val_e, st.best_epoch = val_e, epoch
                st.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            st.epoch_done = epoch + 1
            _save_state(state_path, signature, model, trainer, st)
    finally:
        handle.remove()
        trainer.epochs = config.epochs


def _run_record(method, data, parts, config, start, dropped, frozen, st, trainer, model, device) -> dict:
    return {
        "method": method.name,
        "description": method.description,
        "start": _start_label(start),
        "config": config.as_dict(),
        "code_version": TRAINING_CODE_VERSION,
        "data_checksum": data.checksum(),
        "functional": data.functional,
        "source": data.source,
        "split": {k: parts[k].ids for k in SPLITS},
        "dropped": dropped,
        "masked_stress_ids": data.masked_stress_ids,
        "frozen_parameters": frozen,
        "atomref": st.atomref,
        "epochs_done": st.epoch_done,
        "history": {k: {p: list(v[p]) for p in ("train", "val")} for k, v in trainer.training_history.items()},
        "epoch_seconds": st.epoch_seconds,
        "n_train": len(parts["train"]),
        "n_train_atoms": int(sum(len(s) for s in parts["train"].structures)),
        "gradient_records": st.grad_records,
        "gradient_parameters": gradient_parameter_names(model),
        "final_parameters_sha256": parameters_sha256(model),
        "device": device,
    }


def _save_state(path: Path, signature: str, model, trainer, st: _State) -> None:
    import torch

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(
        {
            "signature": signature,
            "model": model.state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "scheduler": trainer.scheduler.state_dict(),
            "epoch_done": st.epoch_done,
            "history": trainer.training_history,
            "grad_records": st.grad_records,
            "epoch_seconds": st.epoch_seconds,
            "best_val_e": st.best_val_e,
            "best_epoch": st.best_epoch,
            "best_state": st.best_state,
            "atomref": st.atomref,
        },
        tmp,
    )
    os.replace(tmp, path)  # atomic: a kill mid-write leaves the previous epoch's state


def evaluate_zero_shot(
    data: TrainingSet, split: dict[str, list[str]], atomref: str = "refit", start="chgnet-0.3.0", targets: str = "efs"
) -> dict:
    """The pretrained model without training, its AtomRef refitted on the training split (Table 1's zero-shot row).

    ``atomref``: "refit" (``AtomRef.fit``, absent elements 0), "residual" (method 5's correction) or "pretrained"
    (unchanged). Returns the same test fields as :func:`train_method` (predictions, MAEs) and the AtomRef refit.
    """
    check_split(data, split)
    model = start_model(start)
    kept, dropped = graphable_ids(model, data)
    keep = set(kept)
    tr = data.subset([i for i in split["train"] if i in keep])
    te = data.subset([i for i in split["test"] if i in keep])
    if atomref == "refit":
        info = refit_atomref(model, tr.structures, tr.energies)
    elif atomref == "residual":
        info = refit_atomref_residual(model, tr.structures, tr.energies)
    elif atomref == "pretrained":
        info = {"atomref_variant": "pretrained", "elements_zeroed": []}
    else:
        raise ValueError(f"atomref must be 'refit', 'residual' or 'pretrained', got {atomref!r}")
    return {"method": f"zero-shot-{atomref}", "start": _start_label(start), "functional": data.functional,
            "data_checksum": data.checksum(), "split": {k: [i for i in split[k] if i in keep] for k in SPLITS},
            "dropped": dropped, "atomref": info, "code_version": TRAINING_CODE_VERSION, "finished": True,
            **evaluate(model, te, targets),
            "reference_predictions": reference_predictions(model, data, set(dropped))}  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# one function per method (same split, seed and budget)


def train_scratch(data, split, config, workdir, start="chgnet-0.3.0", **kw) -> dict:
    """Method 1: random initialisation (the start model's architecture), AtomRef fitted to the target, frozen."""
    return train_method("m1-scratch", data, split, config, workdir, start=start, **kw)


def train_atomref_trainable(data, split, config, workdir, start="chgnet-0.3.0", **kw) -> dict:
    """Method 2: from the pretrained model, AtomRef trained with the network."""
    return train_method("m2-atomref-trainable", data, split, config, workdir, start=start, **kw)


def train_atomref_frozen(data, split, config, workdir, start="chgnet-0.3.0", **kw) -> dict:
    """Method 3: from the pretrained model, AtomRef frozen at its MPtrj (GGA) values."""
    return train_method("m3-atomref-frozen", data, split, config, workdir, start=start, **kw)


def train_atomref_refit(data, split, config, workdir, start="chgnet-0.3.0", **kw) -> dict:
    """Method 4 (the paper's): AtomRef refitted to the target training data with ``AtomRef.fit``, frozen."""
    return train_method("m4-atomref-refit", data, split, config, workdir, start=start, **kw)


def train_atomref_residual(data, split, config, workdir, start="chgnet-0.3.0", **kw) -> dict:
    """Method 5: AtomRef plus the least-squares fit of E_target - E_model, frozen."""
    return train_method("m5-atomref-residual", data, split, config, workdir, start=start, **kw)
