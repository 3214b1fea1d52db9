"""Author notebooks/01_surface_energies.ipynb (run from the repository root: python scripts/make_surfaces_notebook.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nbtools import code, md, params, write_notebook  # noqa: E402

cells = [
    md("""
# Surface energies of elemental crystals with universal potentials (surfaces paper, Fig. 1)
"""),
    md("""
## Overview

Fig. 1 of Focassio, Freitas & Schleder (arXiv:2403.04217) compares universal interatomic potentials with the
Materials Project PBE surface energies of elemental crystals: (a) bulk energy per atom, (b) slab energy per atom,
(c) surface energy, each model against DFT, and (d) the distribution of the surface-energy errors. This chapter
rebuilds the four panels on the 801 slabs of the Materials Project surface database (Tran et al. 2016) for every
model whose weights are on this machine, with two protocols:

* **static**: single points on the DFT geometries, $\\gamma = (E_{slab} - N\\,\\varepsilon_{OUC}) / 2A$ with both
  energies from the model;
* **relaxed** (a stratified subset): the bulk cell relaxed with the model (positions and cell), the slab mapped onto
  the model's lattice by the same affine strain, then its atoms relaxed (FIRE, 0.05 eV/Å).

The bulk reference of each slab is its **oriented bulk unit cell** (OUC, Sun & Ceder 2013), which the data set does
not ship: it is derived here from the slab interior (the repeat vector of the stacking and the atoms of one period,
`uipbench.surfaces.oriented_bulk_cell`, validated in `tests/test_surfaces.py` on slabs cut from known bulks).

**Faithfulness.** The data set has surface energies but no slab or bulk total energies. The DFT bulk energy per
atom comes from matching each OUC to the Materials Project PBE polymorphs of its element (pymatgen
StructureMatcher), and **the DFT slab energies of panel (b) are reconstructed**, not computed:
$E_{slab}^{DFT} = 2A\\gamma^{DFT} + N\\varepsilon_{bulk}^{DFT}$. The paper evaluated MACE-MP-0, CHGNet and M3GNet
(matgl < 3); here the models are those of the availability table below (MACE-MP-0 and matgl weights need a
download this machine cannot make). The relaxed protocol runs on a stratified subset, not on all slabs.
`chgnet-r2scan` (CHGNet fine-tuned on MP-r2SCAN, from the transfer paper) is included for contrast: it is compared
with the same PBE references, so its absolute energies (panels a, b) are on the r2SCAN scale and its surface-energy
differences from PBE mix functional and model error.
"""),
    md("""
## Prerequisites

* data (`UIPBENCH_DATA`): `mp-surfaces` (801 slabs, PBE surface energies) and `mp-pbe-element-refs` (Materials
  Project PBE polymorphs with energies per atom), see the datasets chapter;
* models: see the availability table; CHGNet and SevenNet-0 weights ship in their wheels;
* results are cached in the result store `<results>/results.sqlite` (one record per slab, model, protocol and
  settings): a rerun only computes what is missing, and an interrupted run resumes.
"""),
    params("""
models = ["chgnet-0.3.0", "chgnet-0.2.0", "sevennet-0"]  # registry names (uipbench.models.REGISTRY)
model_paths = {}  # name -> local weights file / matgl model directory (optional)
protocols = ["static", "relaxed"]
subset = "full"  # "full": all 801 slabs; "quick": per_element slabs of every element (lowest Miller indices)
per_element = 2  # slabs per element in the quick subset
relaxed_per_element = 2  # relaxed protocol: stratified subset, this many slabs per element (with a DFT bulk match)
relaxed_limit = None  # cap on the number of relaxed slabs (evenly spread over elements); None: no cap
backend = "serial"  # "serial" | "process" | "dask"
n_workers = 1
scheduler = None  # dask scheduler address, e.g. "tcp://host:8786"; None: a LocalCluster of n_workers
n_bootstrap = 1000
seed = 0
"""),
    code("""
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from uipbench import figures, models as uip_models, paths, protocols as P, surface_report as R, surfaces
from uipbench.store import ResultStore

pd.set_option("display.width", 160)
pd.set_option("display.max_colwidth", 90)
store = ResultStore(paths.results_dir() / "results.sqlite")
print("result store:", store.path)
"""),
    md("""
## Models available here

Weights are looked for where each package keeps them; nothing is downloaded (set `UIPBENCH_ALLOW_DOWNLOAD=1` on a
machine with internet). The sha256 of the weights enters every result-store key.
"""),
    code("""
avail = uip_models.availability(model_paths=model_paths)
display(avail[["model", "description", "training", "available", "sha256", "reason"]])
run_models = [m for m in models if bool(avail.set_index("model").loc[m, "available"])]
skipped_models = {m: avail.set_index("model").loc[m, "reason"] for m in models if m not in run_models}
print("running:", run_models)
for m, why in skipped_models.items():
    print(f"not available: {m}: {why}")
"""),
    md("""
## Slabs, oriented bulk cells and DFT bulk references

Every slab CIF is read with ASE. The OUC is derived from the slab interior; it is then matched to the element's
Materials Project PBE polymorphs (StructureMatcher, scale-tolerant; among matching polymorphs the one closest in
volume per atom), which gives the DFT bulk energy per atom and the reconstructed DFT slab energy. Slabs without an
OUC cannot be evaluated; slabs with an OUC but no match still get a model surface energy (panel c) but no DFT bulk
or slab energy (panels a, b).
"""),
    code("""
slabs = surfaces.load_slabs()
if subset == "quick":
    chosen = P.stratified_subset(slabs, per_element, seed=seed)
    slabs = slabs[slabs["id"].isin(chosen)].reset_index(drop=True)
elif subset != "full":
    raise ValueError(f"subset must be 'quick' or 'full', got {subset!r}")
refs = P.references(slabs, store)
n = len(refs)
print(f"{n} slabs of {refs['element'].nunique()} elements; unreadable CIFs: {(slabs['parse_error'] != '').sum()}")
print(f"OUC found:        {refs['ouc_found'].sum()} / {n} ({refs['ouc_found'].mean():.1%})")
print(f"MP bulk matched:  {refs['matched'].sum()} / {n} ({refs['matched'].mean():.1%})")
print(f"OUC volume / matched MP volume per atom: median {refs['volume_ratio'].median():.4f}, "
      f"5-95% {refs['volume_ratio'].quantile(0.05):.3f}-{refs['volume_ratio'].quantile(0.95):.3f}")
no_ref = refs[refs["reason"] != ""][["id", "element", "miller", "n_atoms", "reason"]]
print("\\nslabs without OUC or DFT bulk match, by reason:")
display(no_ref["reason"].map(R.reason_category).value_counts().rename("slabs").to_frame())
display(no_ref)
ref_table = refs.drop(columns=["ouc"])
figures.save_table(ref_table, "surfaces_bulk_references", sort_by=["id"])
"""),
    md("""
## Running the models

Each (model, protocol) pair is one pass of `uipbench.engine.run_tasks` over the slabs: results already in the store
are skipped, every new result is written at once, failures (unconverged relaxations, exploding energies, unknown
elements) are stored with their reason. The relaxed protocol runs on a stratified subset: `relaxed_per_element`
slabs of every element with a DFT bulk match, lowest Miller indices first.
"""),
    code("""
relaxed_ids = P.stratified_subset(refs, relaxed_per_element, seed=seed, mask=refs["matched"], limit=relaxed_limit)
keys_by_run, summaries = {}, {}
for protocol in protocols:
    sel = refs if protocol == "static" else refs[refs["id"].isin(relaxed_ids)]
    for m in run_models:
        summary, keys = P.run_surfaces(sel, slabs, m, protocol, store, backend=backend, n_workers=n_workers,
                                       scheduler=scheduler, model_path=model_paths.get(m))
        keys_by_run[(m, protocol)] = keys
        summaries[(m, protocol)] = summary
        print(f"{m:>14s} {protocol:>8s}: {summary}")
        for item, why in list(summary.failures.items())[:10]:
            print(f"    failed {item}: {why}")
results = P.results_table(refs, store, keys_by_run)
results = results[~((results["protocol"] == "relaxed") & ~results["id"].isin(relaxed_ids))].reset_index(drop=True)
"""),
    md("""
## Fraction evaluated

Per model and protocol: slabs selected, evaluated, failed, and why the others were not (no OUC, failed
relaxations, ...). `with_dft_bulk` counts the evaluated slabs that also have a Materials Project bulk match (panels
a, b and the energy correlations use only those).
"""),
    code("""
coverage = R.coverage_table(results)
display(coverage)
failed = results[results["status"] == "failed"][["id", "model", "protocol", "reason"]]
if len(failed):
    print("failed evaluations:")
    display(failed)
"""),
    md("""
## Fig. 1a: bulk energy per atom, model vs DFT

The model's energy per atom of each slab's OUC (static protocol: the OUC as derived from the DFT slab) against the
Materials Project PBE energy per atom of the matched polymorph. MPtrj-trained models reproduce their training
energies closely; a systematic offset here shifts slab and bulk alike and cancels in the surface energy. Models
trained on another functional (r2SCAN) have absolute energies on another scale and are left out of panels a and b.
"""),
    code("""
# absolute energies of models trained on another functional (r2SCAN) are on another scale than the PBE references
other_scale = tuple(m for m in run_models if "PBE" not in uip_models.get_spec(m).training)
print("not in panels a, b (absolute energies not on the PBE scale):", list(other_scale))
fig = R.fig1a_bulk_parity(results, "static", exclude=other_scale)
figures.save_figure(fig, "surfaces_fig1a_bulk_parity")
plt.show()
ok = results[(results["status"] == "ok") & results["eps_dft_ev_per_atom"].notna()]
figures.save_table(ok[["id", "element", "miller", "model", "protocol", "eps_dft_ev_per_atom", "eps_model_ev_per_atom",
                       "bulk_error_ev_per_atom"]], "surfaces_fig1a_bulk_parity",
                   sort_by=["model", "protocol", "id"])
"""),
    md("""
## Fig. 1b: slab energy per atom, model vs DFT (reconstructed)

The DFT slab energies are **reconstructed** from the data set's surface energies and the matched bulk energies,
$E_{slab}^{DFT} = 2A\\gamma^{DFT} + N\\varepsilon_{bulk}^{DFT}$; the model's are single points on the DFT slab.
"""),
    code("""
fig = R.fig1b_slab_parity(results, "static", exclude=other_scale)
figures.save_figure(fig, "surfaces_fig1b_slab_parity")
plt.show()
figures.save_table(ok[["id", "element", "miller", "model", "protocol", "n_atoms", "e_slab_dft_ev_per_atom",
                       "e_slab_model_ev_per_atom", "slab_error_ev_per_atom"]], "surfaces_fig1b_slab_parity",
                   sort_by=["model", "protocol", "id"])
"""),
    md("""
## Fig. 1c: surface energy, model vs DFT

Rows: protocols; columns: models; dashed line x = y. Annotations: number of slabs, MAE, mean signed error
(model - DFT) and Spearman's rank correlation. Every slab with an OUC enters (no DFT bulk match needed: the DFT
surface energy is the data set's).
"""),
    code("""
metrics = R.metrics_table(results, n_boot=n_bootstrap, seed=seed)
fig = R.fig1c_gamma_parity(results, metrics)
figures.save_figure(fig, "surfaces_fig1c_gamma_parity")
plt.show()
gamma_cols = ["id", "element", "miller", "model", "protocol", "status", "reason", "n_atoms", "gamma_dft_j_per_m2",
              "gamma_model_j_per_m2", "error_j_per_m2", "abs_error_j_per_m2", "eps_dft_ev_per_atom",
              "eps_model_ev_per_atom", "e_slab_dft_ev_per_atom", "e_slab_model_ev_per_atom"]
figures.save_table(results[gamma_cols], "surfaces_gamma_results", sort_by=["model", "protocol", "id"])
figures.save_table(results.loc[results["status"] == "ok", ["id", "element", "miller", "model", "protocol",
                   "gamma_dft_j_per_m2", "gamma_model_j_per_m2"]], "surfaces_fig1c_gamma_parity",
                   sort_by=["model", "protocol", "id"])
"""),
    md("""
## Fig. 1d: distribution of surface-energy errors

Box plot (quartiles, whiskers at 1.5 IQR, outliers as points) and violin plot (kernel density, median line) of
$\\gamma_{model} - \\gamma_{DFT}$ per model and protocol (static: every slab with an OUC; relaxed: the stratified
subset, so compare the two protocols with the paired table below).
"""),
    code("""
fig = R.fig1d_error_distributions(results)
figures.save_figure(fig, "surfaces_fig1d_error_distributions")
plt.show()
figures.save_table(results.loc[results["status"] == "ok", ["id", "model", "protocol", "error_j_per_m2"]],
                   "surfaces_fig1d_error_distributions", sort_by=["model", "protocol", "id"])
"""),
    md("""
## Metrics per model and protocol

Surface energies in J/m²: MAE, RMSE, mean signed error (MSE, model - DFT), MAPE (%), R² and Spearman's ρ, each
with a percentile bootstrap 95 % interval (slabs resampled with replacement, seeded).
"""),
    code("""
show = metrics.copy()
for k in R.METRICS:
    show[k] = [f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in zip(show[k], show[f"{k}_lo"], show[f"{k}_hi"])]
display(show[["model", "protocol", "n", *R.METRICS]])
figures.save_table(metrics, "surfaces_gamma_metrics", sort_by=["model", "protocol"])
"""),
    md("""
The relaxed protocol runs on a subset (low-index facets of every element), so its row above is not directly
comparable with the static row over all slabs. The same metrics on the slabs of the relaxed subset only, for both
protocols (a paired comparison: same slabs, same DFT references):
"""),
    code("""
paired = results[results["id"].isin(relaxed_ids)]
metrics_paired = R.metrics_table(paired, n_boot=n_bootstrap, seed=seed)
show = metrics_paired.copy()
for k in R.METRICS:
    show[k] = [f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in zip(show[k], show[f"{k}_lo"], show[f"{k}_hi"])]
display(show[["model", "protocol", "n", *R.METRICS]])
"""),
    md("""
## Errors against the DFT total energy

The paper reports that the surface-energy errors correlate with the total energy. Here: the error against the DFT
bulk energy per atom (matched MP polymorph) and against the reconstructed DFT slab energy per atom, with Pearson and
Spearman coefficients, static protocol (slabs with a DFT bulk match). The two energies differ only by the surface
term $2A\\gamma/N$, so both panels tell nearly the same story.
"""),
    code("""
corr = R.error_energy_correlation(results)
display(corr)
fig = R.fig1e_error_vs_energy(results, corr, "static")
figures.save_figure(fig, "surfaces_fig1e_error_vs_energy")
plt.show()
figures.save_table(corr, "surfaces_fig1e_error_vs_energy", sort_by=["model", "protocol", "x", "y"])
"""),
    md("""
## Summary

* The OUC of almost every slab is recovered from its interior; the failures are strongly relaxed slabs of soft,
  low-symmetry elements (Bi, Ga, Sn, ...), listed above with their reason. Ytterbium has no entry among the
  Materials Project PBE references, so its slabs have model surface energies but no DFT bulk energy.
* The MPtrj-trained models underestimate surface energies systematically (negative mean signed error in Fig. 1c
  and 1d), the softening the surfaces paper reports; the metrics table gives the size of the effect per model
  with bootstrap intervals.
* Relaxing with the model changes little: on the slabs of the relaxed subset the relaxed and static errors are
  close, relaxation lowering the model's surface energies slightly further (paired table above). The
  underestimation is a property of the models' energy surfaces, not of the DFT geometries they are evaluated on.
* The DFT slab energies of Fig. 1b are reconstructed from the data set's surface energies and the matched bulk
  energies, not computed.

The numbers below are also written to `01_surface_energies_metrics.json`.
"""),
    code("""
summary = {
    "n_slabs": int(n),
    "ouc_found": int(refs["ouc_found"].sum()),
    "ouc_found_fraction": float(refs["ouc_found"].mean()),
    "mp_matched": int(refs["matched"].sum()),
    "mp_matched_fraction": float(refs["matched"].mean()),
    "models_run": run_models,
    "models_unavailable": skipped_models,
    "relaxed_subset_size": len(relaxed_ids),
    "coverage": {f"{r.model}/{r.protocol}": {"selected": r.selected, "ok": r.ok, "failed": r.failed,
                                              "not_evaluated": r.not_evaluated}
                 for r in coverage.itertuples()},
    "gamma_metrics_j_per_m2": {f"{r['model']}/{r['protocol']}": {k: r[k] for k in metrics.columns
                                                                   if k not in ("model", "protocol")}
                               for _, r in metrics.iterrows()},
    "gamma_metrics_relaxed_subset_j_per_m2": {
        f"{r['model']}/{r['protocol']}": {k: r[k] for k in metrics_paired.columns if k not in ("model", "protocol")}
        for _, r in metrics_paired.iterrows()},
    "bulk_mae_ev_per_atom": {m: float(g["bulk_error_ev_per_atom"].abs().mean())
                             for m, g in ok[ok["protocol"] == "static"].groupby("model") if m not in other_scale},
    "slab_mae_ev_per_atom": {m: float(g["slab_error_ev_per_atom"].abs().mean())
                             for m, g in ok[ok["protocol"] == "static"].groupby("model") if m not in other_scale},
    "error_vs_energy": {f"{r.model}/{r.protocol}/{r.x}/{r.y}": {"pearson": r.pearson, "spearman": r.spearman,
                                                                 "n": r.n} for r in corr.itertuples()},
}
figures.save_metrics("01_surface_energies", summary)
for k, v in summary["gamma_metrics_j_per_m2"].items():
    print(f"{k:>24s}: n={v['n']:4d}  MAE {v['mae']:.3f} [{v['mae_lo']:.3f}, {v['mae_hi']:.3f}] J/m^2  "
          f"MSE {v['mse']:+.3f}  RMSE {v['rmse']:.3f}  MAPE {v['mape']:.1f}%  R2 {v['r2']:.3f}  "
          f"Spearman {v['spearman']:.3f}")
print(f"OUC found {summary['ouc_found']}/{n}, MP matched {summary['mp_matched']}/{n}")
"""),
]

write_notebook("notebooks/01_surface_energies.ipynb", cells)
