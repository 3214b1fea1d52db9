"""Benchmark: CHGNet training epochs on CPU, the project's wrapper against a bare chgnet ``Trainer`` loop.

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python benchmarks/bench_training.py --n 100 --model tiny
    ... --model chgnet-0.3.0 --epochs 3 --batch-size 8

Data: the first ``--n`` frames of the project's legacy GPAW pairs (r2SCAN labels; stresses of B/C/N/O/F cells
masked), split by structure group (8:1:1, the chapter's rule); both loops train on the same training part and
validate on the same validation part. Both loops use the same
model start, data, batch size, targets and hyperparameters (method 3: AtomRef frozen, no refit, so the two do the
same work); the bare loop is ``Trainer.train`` over all epochs with chgnet's ``StructureData`` and a shuffled
loader. Prints per-epoch seconds (epoch 0 builds and caches the graphs), seconds per epoch per 100 structures
and per 1,000 atoms from the later epochs, the wrapper's overhead and peak RSS. Alternates bare / wrapper twice
and reports medians: timings on a shared machine are noisy (the load average is printed).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import statistics
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

from uipbench import paths
from uipbench.engine import single_thread
from uipbench.transfer.training import TrainConfig, start_model, train_method
from uipbench.transfer.training_data import FIRST_ROW_UNCONVERGED, frames_to_training_set, group_split


def tiny():
    from chgnet.model import CHGNet

    with contextlib.redirect_stdout(io.StringIO()):
        return CHGNet(atom_fea_dim=8, bond_fea_dim=8, angle_fea_dim=8, num_radial=5, num_angular=5, n_conv=2,
                      atom_conv_hidden_dim=8, bond_conv_hidden_dim=8, mlp_hidden_dims=(8, 8))  # fmt: skip


def _structure_data(model, data):
    from chgnet.data.dataset import StructureData

    with contextlib.redirect_stdout(io.StringIO()):
        return StructureData(data.structures, list(data.energies), data.forces, stresses=data.stresses,
                             structure_ids=data.ids, graph_converter=model.graph_converter, shuffle=False)  # fmt: skip


def bare_epochs(start, train_data, val_data, cfg: TrainConfig) -> list[float]:
    """Seconds per epoch of chgnet's own loop (epoch times from a wrapped ``_train`` + ``_validate``)."""
    from chgnet.data.dataset import collate_graphs
    from chgnet.trainer import Trainer
    from torch.utils.data import DataLoader

    model = start_model(start)
    train = DataLoader(_structure_data(model, train_data), batch_size=cfg.batch_size, collate_fn=collate_graphs,
                       shuffle=True)  # fmt: skip
    val = DataLoader(_structure_data(model, val_data), batch_size=cfg.batch_size, collate_fn=collate_graphs)
    trainer = Trainer(model=model, targets=cfg.targets, energy_loss_ratio=cfg.energy_loss_ratio,
                      force_loss_ratio=cfg.force_loss_ratio, stress_loss_ratio=cfg.stress_loss_ratio,
                      criterion=cfg.criterion, epochs=cfg.epochs, learning_rate=cfg.learning_rate, use_device="cpu",
                      print_freq=10**9)  # fmt: skip
    times, t0 = [], [0.0]
    inner = trainer._validate

    def timed_validate(*a, **k):
        out = inner(*a, **k)
        times.append(time.perf_counter() - t0[0])
        t0[0] = time.perf_counter()
        return out

    trainer._validate = timed_validate
    t0[0] = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.train(train, val, None, save_dir="", train_composition_model=False)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="number of frames")
    ap.add_argument("--model", default="tiny", help="tiny (a 3.8k-parameter CHGNet) or a registry name")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    single_thread()
    from ase.io import read

    frames = read(paths.PROJECT_DATA / "dft" / "pairs_pbe_r2scan.extxyz", index=f":{args.n}")
    data = frames_to_training_set(frames, "r2scan", mask_stress=FIRST_ROW_UNCONVERGED)
    start = tiny() if args.model == "tiny" else args.model
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size)
    split = group_split(data.ids, data.groups, seed=0)  # the same grouped split for both loops
    parts = {k: data.subset(v) for k, v in split.items()}
    bare, wrapped, wall = [], [], []
    for _ in range(2):
        bare.append(bare_epochs(start, parts["train"], parts["val"], cfg))
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            rec = train_method("m3-atomref-frozen", data, split, cfg, d, start=start)
        wall.append(time.perf_counter() - t)
        wrapped.append(rec["epoch_seconds"])
    later_b = statistics.median(t for r in bare for t in r[1:])
    later_w = statistics.median(t for r in wrapped for t in r[1:])
    n_atoms = sum(len(s) for s in parts["train"].structures)
    print(f"load average {os.getloadavg()}; model {args.model}; {len(parts['train'])} training structures, "
          f"{n_atoms} atoms, "
          f"batch {args.batch_size}, targets {cfg.targets}")  # fmt: skip
    print("bare Trainer epoch seconds:", [[round(t, 3) for t in r] for r in bare])
    print("wrapper epoch seconds:     ", [[round(t, 3) for t in r] for r in wrapped])
    for name, t in (("bare", later_b), ("wrapper", later_w)):
        print(f"{name:8s} epoch (cached graphs): {t:.3f} s = {100 * t / len(parts['train']):.3f} s per 100 structures, "
              f"{1000 * t / n_atoms:.3f} s per 1,000 atoms")  # fmt: skip
    print(f"wrapper overhead: {100 * (later_w / later_b - 1):+.1f} % (median later epochs; they exclude the "
          "checkpoint write, which the whole-call line includes)")  # fmt: skip
    print(f"wrapper whole call (graph check, checkpoints, test predictions): {[round(t, 2) for t in wall]} s; "
          f"bare train loop: {[round(sum(r), 2) for r in bare]} s")  # fmt: skip
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
