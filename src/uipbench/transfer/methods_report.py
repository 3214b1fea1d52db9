"""Chapter 12 (transfer paper Figs. 3a-c, Table 1): CHGNet trained from PBE-like pretraining to a new functional
by five methods, analysed from the stored run records of :mod:`~uipbench.transfer.training_runs`.

Compute lives in :mod:`~uipbench.transfer.training` (one run) and :mod:`~uipbench.transfer.training_runs` (the
sweep as engine tasks); this module only reads finished records and draws:

* :func:`table1`: test-split energy, force and stress MAE per method with 95 % intervals from a bootstrap over
  *structure groups* (frames of one strained/rattled family are correlated, so groups are the unit resampled),
  formation-energy MAE against elemental references from the same model on the same DFT settings, and the paper's
  numbers beside them.
* :func:`fig_gradient_norms` (Fig. 3a), :func:`fig_learning_curves` (Figs. 3b-c), :func:`fig_test_parity`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

#: transfer paper, Table 1 (CHGNet on MP-r2SCAN test split): energy meV/atom, force meV/Å, stress GPa
PAPER_TABLE1 = {
    "m1-scratch": (27, 45, 0.239),
    "m2-atomref-trainable": (26, 54, 0.266),
    "m3-atomref-frozen": (26, 52, 0.257),
    "m4-atomref-refit": (17, 38, 0.167),
}
METHOD_LABELS = {
    "m1-scratch": "1 scratch",
    "m2-atomref-trainable": "2 AtomRef trainable",
    "m3-atomref-frozen": "3 AtomRef frozen (MPtrj)",
    "m4-atomref-refit": "4 AtomRef refit, frozen",
    "m5-atomref-residual": "5 residual AtomRef, frozen",
    "zero-shot-refit": "zero-shot, AtomRef refit",
    "zero-shot-residual": "zero-shot, residual AtomRef",
    "zero-shot-pretrained": "zero-shot, pretrained AtomRef",
}
#: Fig. 3a panels: gradient-norm labels of :func:`~uipbench.transfer.trainer_tools.gradient_parameter_names`
GRADIENT_PANELS = None  # None: every recorded label


def label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def _no_runs(what: str):
    """A figure that says there is nothing to draw (and why), instead of a crash on empty data."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 1.6))
    ax.axis("off")
    ax.text(0.5, 0.5, f"{what}: no finished training runs (see the split above)", ha="center", va="center")
    return fig


# ----------------------------------------------------------------------------------------------------------------
# the split


def split_table(sweep) -> pd.DataFrame:
    """One row per split part of a :class:`~uipbench.transfer.training_runs.Sweep`: frames, groups and elements."""
    data = next(iter(sweep.sets.values()))
    group_of = dict(zip(data.ids, data.groups, strict=True))
    els_of = {i: {str(e) for e in s.composition.elements} for i, s in zip(data.ids, data.structures, strict=True)}
    rows = []
    for part, ids in sweep.split.items():
        gs = sorted({group_of[i] for i in ids})
        rows.append({"part": part, "frames": len(ids), "groups": len(gs),
                     "elements": " ".join(sorted(set().union(*(els_of[i] for i in ids)))) if ids else "",
                     "group ids": ", ".join(gs)})  # fmt: skip
    return pd.DataFrame(rows).set_index("part")


def split_counts(sweep) -> dict[str, dict[str, int]]:
    t = split_table(sweep)
    return {p: {"frames": int(r["frames"]), "groups": int(r["groups"])} for p, r in t.iterrows()}


# ----------------------------------------------------------------------------------------------------------------
# per-frame errors from a record


def frame_errors(record: Mapping) -> pd.DataFrame:
    """One row per test frame: group, energy error (meV/atom), and the summed absolute force / stress errors with
    their component counts (so MAEs over any set of frames are sums over sums)."""
    rows = []
    for p in record["test_predictions"]:
        row = {"id": p["id"], "group": p["group"], "n_atoms": p["n_atoms"],
               "e_err_mev_per_atom": 1000.0 * (p["e_pred"] - p["e_true"])}  # fmt: skip
        if "f_pred" in p:
            d = np.abs(np.asarray(p["f_pred"]) - np.asarray(p["f_true"]))
            row.update(f_abs_sum_mev_per_a=1000.0 * d.sum(), f_n=d.size)
        if "s_pred_gpa" in p:
            d = np.abs(np.asarray(p["s_pred_gpa"], float) - np.asarray(p["s_true_gpa"], float))
            ok = np.isfinite(d)
            row.update(s_abs_sum_gpa=float(d[ok].sum()), s_n=int(ok.sum()))
        rows.append(row)
    return pd.DataFrame(rows)


def formation_errors(record: Mapping) -> pd.DataFrame:
    """Formation-energy errors (meV/atom) of the multi-element test frames: E_f = E/N - sum_i x_i mu_i, with mu_i
    the energy per atom of element i's lowest-energy (by DFT) single-element frame, for the DFT labels and for the
    model's prediction on that same frame. Frames with an element that has no reference are listed with NaN."""
    from pymatgen.core import Composition

    refs = {}
    for p in record.get("reference_predictions", []):
        el = _formula_element(p)
        if el is not None and (el not in refs or p["e_true"] < refs[el]["e_true"]):
            refs[el] = p
    rows = []
    for p in record["test_predictions"]:
        comp = Composition(p.get("formula") or _group_formula(p["group"]))
        if len(comp) < 2:
            continue
        x = {str(e): comp.get_atomic_fraction(e) for e in comp.elements}
        missing = sorted(set(x) - set(refs))
        if missing:
            err = np.nan
        else:
            ef_true = p["e_true"] - sum(f * refs[e]["e_true"] for e, f in x.items())
            ef_pred = p["e_pred"] - sum(f * refs[e]["e_pred"] for e, f in x.items())
            err = 1000.0 * (ef_pred - ef_true)
        rows.append({"id": p["id"], "group": p["group"], "ef_err_mev_per_atom": err, "missing_refs": missing})
    return pd.DataFrame(rows, columns=["id", "group", "ef_err_mev_per_atom", "missing_refs"])


def _group_formula(group: str) -> str:
    return group.split("-")[0]


def _formula_element(p: Mapping) -> str | None:
    from pymatgen.core import Composition

    comp = Composition(_group_formula(p["group"]))
    return str(comp.elements[0]) if len(comp) == 1 else None


# ----------------------------------------------------------------------------------------------------------------
# Table 1


def _maes(df: pd.DataFrame) -> dict[str, float]:
    out = {"energy_mae_mev_per_atom": float(np.mean(np.abs(df["e_err_mev_per_atom"])))}
    if "f_n" in df:
        out["force_mae_mev_per_a"] = float(df["f_abs_sum_mev_per_a"].sum() / df["f_n"].sum())
    if "s_n" in df:
        n = df["s_n"].sum()
        out["stress_mae_gpa"] = float(df["s_abs_sum_gpa"].sum() / n) if n else np.nan
    return out


def group_bootstrap(df: pd.DataFrame, stat, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """``stat(df)`` (a dict of floats) and percentile intervals from resampling ``df``'s groups with replacement."""
    point = stat(df)
    groups = sorted(df["group"].unique())
    by_group = {g: df[df["group"] == g] for g in groups}
    rng = np.random.default_rng(seed)
    samples = {k: [] for k in point}
    for _ in range(n_boot if len(groups) > 1 else 0):
        pick = rng.integers(0, len(groups), len(groups))
        s = stat(pd.concat([by_group[groups[i]] for i in pick]))
        for k, v in s.items():
            samples[k].append(v)
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    out = {}
    for k, v in point.items():
        arr = np.asarray(samples[k], float)
        arr = arr[np.isfinite(arr)]
        out[k] = v
        out[f"{k}_lo"] = float(np.percentile(arr, lo)) if arr.size else np.nan
        out[f"{k}_hi"] = float(np.percentile(arr, hi)) if arr.size else np.nan
    return out


def table1(records: Mapping[str, Mapping], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Test MAEs per run (``records``: name -> finished record) with group-bootstrap intervals and the paper's
    numbers; formation-energy MAE where the test split holds compounds whose elements all have references."""
    rows = []
    for name, rec in records.items():
        fe = frame_errors(rec)
        row = {"run": name, "method": rec["method"], "functional": rec["functional"], "n_test": len(fe),
               "n_test_groups": fe["group"].nunique(), **group_bootstrap(fe, _maes, n_boot, seed)}  # fmt: skip
        form = formation_errors(rec).dropna(subset=["ef_err_mev_per_atom"])
        row["n_formation"] = len(form)
        if len(form):
            row.update(group_bootstrap(form, _formation_mae, n_boot, seed))
        paper = PAPER_TABLE1.get(rec["method"])
        row.update(paper_energy_mev_per_atom=paper and paper[0], paper_force_mev_per_a=paper and paper[1],
                   paper_stress_gpa=paper and paper[2])  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else TABLE1_COLUMNS)


#: the columns of an empty Table 1 (no finished runs)
TABLE1_COLUMNS = ["run", "method", "functional", "n_test", "n_test_groups", "energy_mae_mev_per_atom",
                  "energy_mae_mev_per_atom_lo", "energy_mae_mev_per_atom_hi", "n_formation",
                  "paper_energy_mev_per_atom", "paper_force_mev_per_a", "paper_stress_gpa"]  # fmt: skip


def _formation_mae(df: pd.DataFrame) -> dict[str, float]:
    return {"formation_mae_mev_per_atom": float(np.mean(np.abs(df["ef_err_mev_per_atom"])))}


def table1_display(t1: pd.DataFrame) -> pd.DataFrame:
    """Table 1 as text cells 'value [lo, hi]' beside the paper's numbers."""

    def cell(r, k, digits):
        if k not in r or pd.isna(r[k]):
            return "n/a"
        return f"{r[k]:.{digits}f} [{r[f'{k}_lo']:.{digits}f}, {r[f'{k}_hi']:.{digits}f}]"

    out = pd.DataFrame(
        {
            "method": [label(m) for m in t1["method"]],
            "target": t1["functional"],
            "test frames (groups)": [f"{a} ({b})" for a, b in zip(t1["n_test"], t1["n_test_groups"], strict=True)],
            "energy meV/atom": [cell(r, "energy_mae_mev_per_atom", 1) for _, r in t1.iterrows()],
            "force meV/Å": [cell(r, "force_mae_mev_per_a", 1) for _, r in t1.iterrows()],
            "stress GPa": [cell(r, "stress_mae_gpa", 3) for _, r in t1.iterrows()],
            "formation meV/atom": [cell(r, "formation_mae_mev_per_atom", 1) for _, r in t1.iterrows()],
            "paper E / F / S": [
                "" if pd.isna(e) else f"{e:g} / {f:g} / {s:g}"
                for e, f, s in zip(
                    t1["paper_energy_mev_per_atom"], t1["paper_force_mev_per_a"], t1["paper_stress_gpa"], strict=True
                )
            ],
        }
    )
    return out


# ----------------------------------------------------------------------------------------------------------------
# figures


def gradient_frame(records: Mapping[str, Mapping]) -> pd.DataFrame:
    """Long table of the first epoch's gradient norms: run, method, fraction of the epoch, layer label, norm."""
    rows = []
    for name, rec in records.items():
        for g in rec.get("gradient_records", []):
            for lab, v in g["norms"].items():
                rows.append({"run": name, "method": rec["method"], "functional": rec["functional"],
                             "fraction": g["fraction"], "layer": lab, "grad_norm": v})  # fmt: skip
    return pd.DataFrame(rows, columns=["run", "method", "functional", "fraction", "layer", "grad_norm"])


def fig_gradient_norms(records: Mapping[str, Mapping], layers: Sequence[str] | None = GRADIENT_PANELS):
    """Fig. 3a: per-layer gradient norm at every 1/10 of the first epoch, one panel per layer, one line per run."""
    import matplotlib.pyplot as plt

    df = gradient_frame(records)
    if df.empty:
        return _no_runs("Fig. 3a")
    layers = list(layers or dict.fromkeys(df["layer"]))
    ncol = min(4, max(1, len(layers)))
    nrow = -(-len(layers) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.6 * nrow), squeeze=False, sharex=True)
    for ax, lab in zip(axes.ravel(), layers, strict=False):
        for k, (run, g) in enumerate(df[df["layer"] == lab].groupby("run", sort=False)):
            ax.plot(g["fraction"], g["grad_norm"], "o-", ms=3, color=f"C{k}", label=_run_label(records[run]))
        ax.set_yscale("log")
        ax.set_title(lab, fontsize=9)
    for ax in axes.ravel()[len(layers) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("fraction of epoch 1")
    axes[0, 0].set_ylabel("gradient norm")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def _run_label(rec: Mapping) -> str:
    return f"{label(rec['method'])} ({rec['functional']})"


def history_frame(records: Mapping[str, Mapping]) -> pd.DataFrame:
    """Long table of per-epoch MAEs: run, method, functional, target (e/f/s), part (train/val), epoch, MAE in
    chgnet's units (eV/atom, eV/Å, GPa)."""
    rows = []
    for name, rec in records.items():
        for target, parts in rec.get("history", {}).items():
            for part, values in parts.items():
                for epoch, v in enumerate(values, start=1):
                    rows.append({"run": name, "method": rec["method"], "functional": rec["functional"],
                                 "target": target, "part": part, "epoch": epoch, "mae": v})  # fmt: skip
    return pd.DataFrame(rows, columns=["run", "method", "functional", "target", "part", "epoch", "mae"])


def fig_learning_curves(records: Mapping[str, Mapping], target: str = "e"):
    """Figs. 3b-c: training (b) and validation (c) energy MAE per epoch for every run (meV/atom, log scale)."""
    import matplotlib.pyplot as plt

    df = history_frame(records)
    df = df[df["target"] == target]
    if df.empty:
        return _no_runs("Figs. 3b-c")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, part, letter in zip(axes, ("train", "val"), "bc", strict=True):
        for k, (run, g) in enumerate(df[df["part"] == part].groupby("run", sort=False)):
            ls = "-" if records[run]["functional"] == "r2scan" else "--"
            ax.plot(g["epoch"], 1000 * g["mae"], ls, color=f"C{k % 10}", label=_run_label(records[run]))
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(f"({letter}) {'training' if part == 'train' else 'validation'} energy MAE", fontsize=10)
    axes[0].set_ylabel("energy MAE (meV/atom)")
    axes[1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def fig_test_parity(records: Mapping[str, Mapping], functional: str = "r2scan"):
    """Test-split energy parity (DFT vs model, eV/atom) of every run on ``functional``, one panel per run."""
    import matplotlib.pyplot as plt

    runs = [(n, r) for n, r in records.items() if r["functional"] == functional]
    if not runs:
        return _no_runs("test parity")
    ncol = min(4, max(1, len(runs)))
    nrow = -(-len(runs) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3 * ncol, 3 * nrow), squeeze=False)
    for ax, (_name, rec) in zip(axes.ravel(), runs, strict=False):
        p = pd.DataFrame(rec["test_predictions"])
        ax.plot(p["e_true"], p["e_pred"], "o", ms=4, alpha=0.7)
        lim = [min(p["e_true"].min(), p["e_pred"].min()), max(p["e_true"].max(), p["e_pred"].max())]
        ax.plot(lim, lim, "k--", lw=0.8)
        mae = 1000 * np.mean(np.abs(p["e_pred"] - p["e_true"]))
        ax.set_title(f"{label(rec['method'])}\nMAE {mae:.1f} meV/atom", fontsize=8)
    for ax in axes.ravel()[len(runs) :]:
        ax.axis("off")
    fig.supxlabel(f"DFT {functional} energy (eV/atom)")
    fig.supylabel("model (eV/atom)")
    fig.tight_layout()
    return fig


def chapter_metrics(t1: pd.DataFrame, records: Mapping[str, Mapping], dataset_info: Mapping) -> dict:
    """The numbers of chapter 12 (its metrics file)."""
    cols = [c for c in t1.columns if c.endswith(("_mev_per_atom", "_mev_per_a", "_gpa", "_lo", "_hi"))]
    keep = [*cols, "n_test", "n_test_groups", "n_formation"]
    per_run = {r["run"]: {c: r[c] for c in keep if c in r and pd.notna(r[c])} for _, r in t1.iterrows()}
    epochs = {n: {"epochs_done": r.get("epochs_done"), "best_epoch": r.get("best_epoch"),
                  "seconds_per_epoch": float(np.mean(r["epoch_seconds"])) if r.get("epoch_seconds") else None}
              for n, r in records.items() if "epochs_done" in r}  # fmt: skip
    return {"dataset": dict(dataset_info), "table1": per_run, "training": epochs}
