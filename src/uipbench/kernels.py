"""REMatch structure kernels, kernel PCA and the out-of-domain analysis of the surfaces map (paper Fig. 2).

Pipeline (each step cached, each loop resumable):

1. per-atom descriptors of every structure (:mod:`uipbench.descriptors`, stored in the result store);
2. the REMatch kernel (De, Bartók, Csányi & Ceriotti 2016; dscribe ``REMatchKernel``) between structures, computed
   in row/column blocks: each block is one :class:`~uipbench.engine.Task` whose raw (un-normalised) similarities
   are stored in the result store as an array (``kind="rematch-block"``), so the blocks run on any backend of
   :func:`uipbench.engine.run_tasks` and an interrupted run keeps its finished blocks. The assembled matrix is
   normalised, ``K_ij / sqrt(K_ii K_jj)`` (what dscribe's ``normalize_kernel=True`` does), and cached as ``.npy``
   under ``<results>/kernels/<hash of all inputs>.npy``;
3. kernel PCA (scikit-learn, ``kernel="precomputed"``) with explained variance from the eigenvalues of the centred
   kernel;
4. lattice of each slab's bulk (spglib on its oriented bulk cell) and the out-of-domain analysis: similarity of each
   slab to its own bulk and to the set of all bulk cells, Spearman correlations with the absolute surface-energy
   error and seeded bootstrap intervals.

Why blocks call dscribe per pair but not ``REMatchKernel.create``: ``create`` evaluates the local kernel of each
pair with its own scikit-learn call; here the local kernel of a whole block is one matrix product (sparse for the
species-resolved SOAP), sliced per pair, and dscribe's ``get_global_similarity`` (the Sinkhorn iteration) is
called on each slice. The result equals ``create`` (tested).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from . import paths
from .engine import Task, run_tasks
from .store import ResultStore, canonical_json, make_key

BLOCK_KIND = "rematch-block"


@dataclass(frozen=True)
class KernelSettings:
    """REMatch settings. ``alpha``: entropic regularisation (-> 0: best match; -> inf: average kernel);
    ``metric``: local kernel on L2-normalised per-atom features ("linear" = cosine similarity, or "rbf" with
    ``gamma``); ``threshold``: Sinkhorn convergence threshold."""

    metric: str = "linear"
    alpha: float = 0.1
    threshold: float = 1e-6
    gamma: float | None = None
    normalize_features: bool = True

    def rematch(self):
        from dscribe.kernels import REMatchKernel

        # raw similarities; the normalisation by the self-similarities is applied once the matrix is assembled
        return REMatchKernel(metric=self.metric, alpha=self.alpha, threshold=self.threshold, gamma=self.gamma,
                             normalize_kernel=False)


# ------------------------------------------------------------------------------------------------------------------
# one block

def _prepare(features: Sequence, settings: KernelSettings):
    """Stack per-structure features into one matrix (sparse if any is sparse), rows L2-normalised; offsets."""
    import scipy.sparse as sp
    from sklearn.preprocessing import normalize

    sizes = [f.shape[0] for f in features]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    if any(sp.issparse(f) for f in features):
        x = sp.vstack([sp.csr_matrix(f) for f in features], format="csr")
    else:
        x = np.vstack(features)
    if settings.normalize_features:
        x = normalize(x, norm="l2", axis=1)
    return x, offsets


def raw_block(x_features: Sequence, y_features: Sequence | None, settings: KernelSettings,
              symmetric: bool = False) -> np.ndarray:
    """Un-normalised REMatch similarities between the structures of ``x_features`` and ``y_features``.

    ``symmetric=True`` (``y_features`` None): only the upper triangle is computed and mirrored.
    """
    import scipy.sparse as sp

    kern = settings.rematch()
    x, ox = _prepare(x_features, settings)
    if symmetric:
        y, oy = x, ox
    else:
        y, oy = _prepare(y_features, settings)
    local = kern.get_pairwise_matrix(x, y)  # all local similarities of the block in one call
    if sp.issparse(local):
        local = local.toarray()
    local = np.asarray(local)
    n, m = len(ox) - 1, len(oy) - 1
    out = np.zeros((n, m))
    for i in range(n):
        for j in range(i if symmetric else 0, m):
            c = local[ox[i]:ox[i + 1], oy[j]:oy[j + 1]]
            if not c.any():  # species-resolved features of different elements: orthogonal, similarity 0
                continue
            out[i, j] = kern.get_global_similarity(c)
            if symmetric:
                out[j, i] = out[i, j]
    return out


def self_similarities(features: Sequence, settings: KernelSettings) -> np.ndarray:
    """Un-normalised REMatch self-similarities K_ii (the normalisation factors)."""
    kern = settings.rematch()
    out = np.empty(len(features))
    for i, f in enumerate(features):
        x, _ = _prepare([f], settings)
        c = kern.get_pairwise_matrix(x)
        out[i] = kern.get_global_similarity(np.asarray(c.toarray() if hasattr(c, "toarray") else c))
    return out


def _block_task(args) -> tuple[dict, np.ndarray]:
    """Engine task: load the descriptors of one block from the store and compute its raw similarities."""
    from .descriptors import load_features

    store, mode, row_keys, col_keys, settings = args
    xr = load_features(store, row_keys, sparse=True)
    if mode == "sym":
        a = raw_block(xr, None, settings, symmetric=True)
    elif mode == "rect":
        a = raw_block(xr, load_features(store, col_keys, sparse=True), settings)
    elif mode == "diag":
        a = self_similarities(xr, settings)
    else:
        raise ValueError(mode)
    return {"mode": mode, "shape": list(a.shape)}, a


# ------------------------------------------------------------------------------------------------------------------
# the full matrix

def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def _inputs_hash(**parts) -> str:
    return hashlib.sha256(canonical_json(parts).encode()).hexdigest()


@dataclass
class KernelResult:
    matrix: np.ndarray  #: normalised kernel
    raw_diag_rows: np.ndarray
    raw_diag_cols: np.ndarray
    from_cache: bool
    seconds: float
    summary: object = None  #: the engine's RunSummary of the block tasks (None when served from the .npz cache)
    failures: dict | None = None
    compute_seconds: float = float("nan")  #: wall time of the run that computed the matrix (kept in the cache)

    @property
    def n_blocks(self) -> int:
        return 0 if self.summary is None else self.summary.total


def kernel_cache_dir() -> Path:
    return paths.results_dir() / "kernels"


def rematch_kernel(row_keys: Sequence[str], store: ResultStore, settings: KernelSettings = KernelSettings(),
                   col_keys: Sequence[str] | None = None, block_size: int = 100, backend: str = "serial",
                   n_workers: int = 1, scheduler=None, cache_dir: Path | None = None, use_cache: bool = True,
                   progress: bool = True, label: str = "") -> KernelResult:
    """Normalised REMatch kernel between the structures whose descriptors are stored under ``row_keys`` (and
    ``col_keys``; None: the symmetric N x N kernel of ``row_keys``).

    The matrix is split in ``block_size`` x ``block_size`` blocks (upper triangle only when symmetric), each an
    engine task on ``backend`` with ``n_workers``; the assembled matrix is cached as ``.npy`` keyed by the hash of
    (settings, row keys, column keys). Missing/failed blocks raise (their reasons are in the store).
    """
    t0 = time.perf_counter()
    row_keys = list(row_keys)
    symmetric = col_keys is None
    col_list = row_keys if symmetric else list(col_keys)
    h = _inputs_hash(settings=asdict(settings), rows=row_keys, cols=None if symmetric else col_list)
    cache = (cache_dir or kernel_cache_dir()) / f"rematch_{h[:24]}.npz"
    if use_cache and cache.exists():
        z = np.load(cache)
        cs = float(z["seconds"]) if "seconds" in z.files else float("nan")
        return KernelResult(z["K"], z["dr"], z["dc"], True, time.perf_counter() - t0, compute_seconds=cs)

    settings_d = asdict(settings)

    def task(mode, rk, ck, item):
        key = make_key(kind=BLOCK_KIND, mode=mode, settings=settings_d, rows=rk, cols=ck)
        return Task(key=key, kind=BLOCK_KIND, model=label, item=item, args=(store, mode, rk, ck, settings))

    rb, cb = _chunks(len(row_keys), block_size), _chunks(len(col_list), block_size)
    tasks, layout = [], []
    for bi, (r0, r1) in enumerate(rb):
        for bj, (c0, c1) in enumerate(cb):
            if symmetric and bj < bi:
                continue
            mode = "sym" if symmetric and bi == bj else "rect"
            rk, ck = row_keys[r0:r1], (None if mode == "sym" else col_list[c0:c1])
            tasks.append(task(mode, rk, ck, f"{label} block {bi},{bj}"))
            layout.append((mode, r0, r1, c0, c1))
    diag_tasks = []
    if not symmetric:  # normalisation factors of both sides
        for side, keys in (("rows", row_keys), ("cols", col_list)):
            for bi, (s0, s1) in enumerate(_chunks(len(keys), block_size)):
                diag_tasks.append((side, s0, s1, task("diag", keys[s0:s1], None, f"{label} self {side} {bi}")))
    all_tasks = tasks + [d[3] for d in diag_tasks]
    summary = run_tasks(_block_task, all_tasks, store, backend=backend, n_workers=n_workers, scheduler=scheduler,
                        desc=f"REMatch {label}".strip(), progress=progress)
    failures = {}
    K = np.zeros((len(row_keys), len(col_list)))
    for t, (mode, r0, r1, c0, c1) in zip(tasks, layout):
        rec = store.get(t.key)
        if rec is None or not rec.ok:
            failures[t.item] = rec.error if rec else "missing"
            continue
        K[r0:r1, c0:c1] = rec.array
        if symmetric and mode == "rect":
            K[c0:c1, r0:r1] = rec.array.T
    dr = np.zeros(len(row_keys))
    dc = np.zeros(len(col_list))
    if symmetric:
        dr = dc = np.diag(K).copy()
    for side, s0, s1, t in diag_tasks:
        rec = store.get(t.key)
        if rec is None or not rec.ok:
            failures[t.item] = rec.error if rec else "missing"
            continue
        (dr if side == "rows" else dc)[s0:s1] = rec.array
    if failures:
        raise RuntimeError(f"{len(failures)} kernel block(s) failed: {failures}")
    K = K / np.sqrt(np.outer(dr, dc))
    if symmetric:
        K = 0.5 * (K + K.T)
        np.fill_diagonal(K, 1.0)
    seconds = time.perf_counter() - t0
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.stem + ".tmp.npz")
    np.savez(tmp, K=K, dr=dr, dc=dc, seconds=seconds)
    tmp.replace(cache)
    return KernelResult(K, dr, dc, False, seconds, summary, failures, compute_seconds=seconds)


# ------------------------------------------------------------------------------------------------------------------
# kernel PCA

@dataclass
class KPCAResult:
    coords: np.ndarray  #: (n, n_components)
    explained_variance_ratio: np.ndarray  #: eigenvalue / trace of the centred kernel, per component
    eigenvalues: np.ndarray  #: all eigenvalues of the centred kernel, descending
    min_eigenvalue_uncentred: float  #: smallest eigenvalue of K (PSD check)


def centred(K: np.ndarray) -> np.ndarray:
    n = K.shape[0]
    H = np.eye(n) - np.full((n, n), 1.0 / n)
    return H @ K @ H


def kernel_pca(K: np.ndarray, n_components: int = 2) -> KPCAResult:
    """Kernel PCA of a precomputed kernel (scikit-learn), signs fixed (largest |coordinate| positive).

    Explained variance of component k = lambda_k / trace(HKH): the share of the total variance of the structures in
    the kernel's feature space (H centres it).
    """
    from sklearn.decomposition import KernelPCA

    kpca = KernelPCA(n_components=n_components, kernel="precomputed", eigen_solver="dense")
    coords = kpca.fit_transform(K)
    for k in range(coords.shape[1]):  # eigenvectors have arbitrary signs: make the figure reproducible
        if coords[np.argmax(np.abs(coords[:, k])), k] < 0:
            coords[:, k] *= -1
    Kc = centred(K)
    ev = np.sort(np.linalg.eigvalsh(0.5 * (Kc + Kc.T)))[::-1]
    ratio = ev[:n_components] / np.trace(Kc)
    return KPCAResult(coords, ratio, ev, float(np.linalg.eigvalsh(K).min()))


# ------------------------------------------------------------------------------------------------------------------
# lattice of the bulk and the bulk reference cells

LATTICES = ("FCC", "BCC", "HCP", "other")


def spglib_cell(atoms):
    return (np.asarray(atoms.cell[:]), atoms.get_scaled_positions(), atoms.numbers)


#: spglib tolerances (Å) tried on an oriented bulk cell. The cell comes from a *relaxed* slab interior, strained by
#: up to a few tenths of an Å (e.g. a hcp Tm OUC is Cmcm at 0.05 Å and P6_3/mmc from 0.1 Å; a bcc Sr OUC is C2/m up to
#: 0.2 Å and Im-3m from 0.3 Å), so the highest symmetry found up to 0.5 Å is taken.
SYMPRECS = (0.05, 0.1, 0.2, 0.3, 0.5)


def bulk_symmetry(bulk, symprecs: Sequence[float] = SYMPRECS) -> tuple[str, int, str, float]:
    """(FCC | BCC | HCP | other, space-group number, symbol, symprec used) of a bulk cell from spglib.

    The tolerance with the most symmetry operations wins (ties: the smallest). FCC = Fm-3m with one atom per
    primitive cell, BCC = Im-3m with one, HCP = P6_3/mmc with two; everything else (double hcp, alpha-Sm, Ga, Bi,
    diamond Sn, ...) is "other".
    """
    import spglib

    best = None
    for sp in symprecs:
        ds = spglib.get_symmetry_dataset(spglib_cell(bulk), symprec=sp)
        if ds is not None and (best is None or len(ds.rotations) > len(best[0].rotations)):
            best = (ds, sp)
    if best is None:
        return "other", 0, "?", float("nan")
    ds, sp = best
    prim = spglib.find_primitive(spglib_cell(bulk), symprec=sp)
    n_prim = len(prim[2]) if prim is not None else len(bulk)
    lat = "other"
    if ds.number == 225 and n_prim == 1:
        lat = "FCC"
    elif ds.number == 229 and n_prim == 1:
        lat = "BCC"
    elif ds.number == 194 and n_prim == 2:
        lat = "HCP"
    return lat, int(ds.number), str(ds.international), float(sp)


def classify_lattice(bulk) -> str:
    """FCC / BCC / HCP / other of a bulk cell (see :func:`bulk_symmetry`)."""
    return bulk_symmetry(bulk)[0]


def standard_primitive(bulk, symprec: float = 0.1):
    """spglib's standardised primitive cell (symmetrised) of a bulk cell as ASE Atoms; the input when that fails.

    A REMatch similarity with uniform weights does not change when a cell is replaced by a supercell with the same
    local environments, so the (small) primitive cell stands for the oriented bulk cell in the kernels.
    """
    import spglib
    from ase import Atoms

    out = spglib.standardize_cell(spglib_cell(bulk), to_primitive=True, no_idealize=False, symprec=symprec)
    if out is None:
        return bulk.copy()
    lattice, frac, numbers = out
    return Atoms(numbers=numbers, scaled_positions=frac, cell=lattice, pbc=True)


def bulk_cells(slabs: pd.DataFrame) -> pd.DataFrame:
    """Per slab: oriented bulk cell (:func:`uipbench.surfaces.oriented_bulk_cell`), its lattice, and its symmetrised
    standardised primitive cell. Columns: id, bulk (Atoms or None), bulk_error, lattice, spacegroup_number,
    spacegroup, symprec, bulk_primitive."""
    from . import surfaces

    rows = []
    for sid, atoms in zip(slabs["id"], slabs["atoms"]):
        row = {"id": sid, "bulk": None, "bulk_error": "", "lattice": "unknown", "spacegroup_number": 0,
               "spacegroup": "", "symprec": np.nan, "bulk_primitive": None}
        try:
            if atoms is None:
                raise ValueError("slab not readable")
            ouc, why = surfaces.oriented_bulk_cell(atoms)
            if ouc is None:
                raise ValueError(why)
            row["bulk"] = ouc
            row["lattice"], row["spacegroup_number"], row["spacegroup"], sp = bulk_symmetry(ouc)
            row["symprec"] = sp
            row["bulk_primitive"] = standard_primitive(ouc, symprec=sp)
        except Exception as exc:  # recorded per slab, shown in the notebook
            row["bulk_error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------------------------
# statistics

def spearman_bootstrap(x, y, n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> dict:
    """Spearman rho of (x, y) over finite pairs with a percentile bootstrap interval (resampling pairs, seeded)."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = len(x)
    if n < 4:
        return {"rho": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "n": n}
    res = spearmanr(x, y)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    # rank-correlation per resample, vectorised: Pearson of the ranks of each resample
    from scipy.stats import rankdata

    rx = rankdata(x[idx], axis=1)
    ry = rankdata(y[idx], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        boots = (rx * ry).sum(axis=1) / den
    boots = boots[np.isfinite(boots)]
    lo, hi = np.quantile(boots, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    return {"rho": float(res.statistic), "ci_low": float(lo), "ci_high": float(hi), "p_value": float(res.pvalue),
            "n": int(n)}


def ood_table(K_slab_bulk: np.ndarray, slab_ids: Sequence[str],
              bulk_index_of_slab: Sequence[int | None]) -> pd.DataFrame:
    """Per slab: similarity to its own bulk, max similarity over all bulk cells, and the distances 1 - s."""
    own = np.array([K_slab_bulk[i, j] if j is not None and j >= 0 else np.nan
                    for i, j in enumerate(bulk_index_of_slab)])
    mx = K_slab_bulk.max(axis=1) if K_slab_bulk.shape[1] else np.full(len(slab_ids), np.nan)
    return pd.DataFrame({"id": list(slab_ids), "sim_own_bulk": own, "sim_max_bulk": mx,
                         "dist_own_bulk": 1.0 - own, "dist_bulk_set": 1.0 - mx})


# ------------------------------------------------------------------------------------------------------------------
# the chapter's analysis: structure sets, one descriptor end to end, errors

def bulk_reference_set(bulk: pd.DataFrame, elements: Sequence[str], include_mp: bool = True):
    """The bulk structures each slab is compared with.

    * each slab's own bulk: the standardised primitive cell of its oriented bulk cell (deduplicated: cells equal
      to 0.1 Å share one entry);
    * with ``include_mp``: every Materials Project PBE polymorph of the slab elements (``mp-pbe-element-refs``),
      the bulk structures MPtrj-trained models saw in training, as the "set of all bulk cells".

    Returns ``(structures: dict bulk id -> Atoms, own: dict slab id -> bulk id or None)``.
    """
    from pymatgen.io.ase import AseAtomsAdaptor

    from .store import structure_hash

    structures, own, by_hash = {}, {}, {}
    for sid, prim in zip(bulk["id"], bulk["bulk_primitive"]):
        if prim is None:
            own[sid] = None
            continue
        h = structure_hash(prim, decimals=1)
        if h not in by_hash:
            by_hash[h] = f"ouc:{sid}"
            structures[by_hash[h]] = prim
        own[sid] = by_hash[h]
    if include_mp:
        from . import datasets

        refs = datasets.load("mp-pbe-element-refs")
        for el in sorted(set(elements)):
            for i, p in enumerate(refs.get(el, [])):
                structures[f"mp:{el}:{i}"] = AseAtomsAdaptor.get_atoms(p["structure"])
    return structures, own


@dataclass
class DescriptorAnalysis:
    descriptor: str
    table: pd.DataFrame  #: per slab: id, kpc1, kpc2, sim_own_bulk, sim_max_bulk, dist_own_bulk, dist_bulk_set
    kpca: KPCAResult | None
    kernel: KernelResult | None
    cross: KernelResult | None
    failures: dict  #: item -> reason (descriptor failures of slabs and bulk cells)
    seconds: dict  #: step -> wall seconds


def analyse_descriptor(name: str, slabs: dict, bulks: dict, own_bulk: dict, store: ResultStore,
                       settings: KernelSettings = KernelSettings(), backend: str = "process", n_workers: int = 2,
                       block_size: int = 100, progress: bool = True) -> DescriptorAnalysis:
    """Descriptors -> slab kernel -> kPCA, and slab x bulk kernel -> out-of-domain table, for descriptor ``name``.

    ``slabs``/``bulks``: id -> Atoms (ordered); ``own_bulk``: slab id -> bulk id (or None). Slabs or bulk cells
    whose descriptor fails are left out of this descriptor's analysis and listed in ``failures``.
    """
    from . import descriptors as D

    sec = {}
    t = time.perf_counter()
    skeys, sfail, _ = D.compute_descriptors(name, slabs, store, backend=backend, n_workers=n_workers,
                                            progress=progress)
    bkeys, bfail, _ = D.compute_descriptors(name, bulks, store, backend=backend, n_workers=n_workers,
                                            progress=progress)
    sec["descriptors"] = time.perf_counter() - t
    failures = {**{f"slab {k}": v for k, v in sfail.items()}, **{f"bulk {k}": v for k, v in bfail.items()}}
    ids = [s for s in slabs if s in skeys]
    bids = [b for b in bulks if b in bkeys]
    if len(ids) < 3:
        return DescriptorAnalysis(name, pd.DataFrame({"id": ids}), None, None, None, failures, sec)
    kw = dict(settings=settings, block_size=block_size, backend=backend, n_workers=n_workers, progress=progress)
    K = rematch_kernel([skeys[s] for s in ids], store, label=f"{name} slabs", **kw)
    sec["kernel"] = K.seconds
    kp = kernel_pca(K.matrix)
    C = rematch_kernel([skeys[s] for s in ids], store, col_keys=[bkeys[b] for b in bids],
                       label=f"{name} slabs x bulk", **kw)
    sec["cross_kernel"] = C.seconds
    col = {b: j for j, b in enumerate(bids)}
    own_idx = [col.get(own_bulk.get(s)) if own_bulk.get(s) is not None else None for s in ids]
    table = ood_table(C.matrix, ids, own_idx)
    table.insert(1, "kpc1", kp.coords[:, 0])
    table.insert(2, "kpc2", kp.coords[:, 1])
    return DescriptorAnalysis(name, table, kp, K, C, failures, sec)


def ood_correlations(table: pd.DataFrame, error_col: str = "abs_error_j_per_m2", n_boot: int = 2000,
                     seed: int = 0, group_col: str | None = "element") -> pd.DataFrame:
    """Spearman rho (bootstrap 95% CI) of the |error| with the distances from bulk and the kPCA coordinates.

    With ``group_col``, also ``<distance>|within element``: both the distance and the error minus their median
    over the slabs of the same element, so that a correlation driven only by which elements are far from the
    bulk set and badly described (e.g. all facets of one element) is told apart from one within each element.
    """
    rows = []
    for var in ("dist_own_bulk", "dist_bulk_set", "kpc1", "kpc2"):
        r = spearman_bootstrap(table[var], table[error_col], n_boot=n_boot, seed=seed)
        rows.append({"variable": var, **r})
    if group_col is not None and group_col in table:
        g = table.groupby(group_col)
        err = table[error_col] - g[error_col].transform("median")
        for var in ("dist_own_bulk", "dist_bulk_set"):
            x = table[var] - g[var].transform("median")
            r = spearman_bootstrap(x, err, n_boot=n_boot, seed=seed)
            rows.append({"variable": f"{var}|within element", **r})
    return pd.DataFrame(rows)


def load_gamma_errors(model: str, protocol: str, csv: Path | None = None) -> pd.DataFrame | None:
    """|gamma_model - gamma_DFT| per slab from the surface-energy chapter's ``surfaces_gamma_results.csv``.

    Returns a frame (id, gamma_dft_j_per_m2, gamma_model_j_per_m2, abs_error_j_per_m2) or None when the file or
    the (model, protocol) rows are absent.
    """
    csv = Path(csv) if csv is not None else paths.figures_dir() / "surfaces_gamma_results.csv"
    if not csv.exists():
        return None
    df = pd.read_csv(csv)
    sel = df
    if "model" in df:
        sel = sel[sel["model"] == model]
    if "protocol" in df:
        sel = sel[sel["protocol"] == protocol]
    if "status" in sel:
        sel = sel[sel["status"] == "ok"]  # failed / not evaluated rows carry their reason in chapter 01
    if sel.empty:
        return None
    out = sel[["id", "gamma_dft_j_per_m2", "gamma_model_j_per_m2"]].copy()
    out["abs_error_j_per_m2"] = (out["gamma_model_j_per_m2"] - out["gamma_dft_j_per_m2"]).abs()
    return out.drop_duplicates("id").reset_index(drop=True)


GAMMA_KIND = "kpca-gamma-static"


def _gamma_static_task(args) -> dict:
    """Static surface energy of one slab with one model: slab and its oriented bulk cell at the DFT geometry."""
    from . import models, surfaces

    model_name, slab = args
    ouc, why = surfaces.oriented_bulk_cell(slab)
    if ouc is None:
        raise ValueError(f"no oriented bulk cell: {why}")
    m = models.load_model(model_name)
    eps = m.energy(ouc) / len(ouc)
    g = surfaces.surface_energy(m.energy(slab), len(slab), eps, surfaces.slab_area(slab))
    return {"gamma_model_j_per_m2": g * surfaces.EV_PER_A2_TO_J_PER_M2, "eps_bulk_ev_per_atom": eps}


def compute_gamma_errors_static(model: str, slabs: pd.DataFrame, store: ResultStore, backend: str = "serial",
                                n_workers: int = 1, progress: bool = True) -> tuple[pd.DataFrame, dict]:
    """Fallback when the surface-energy chapter's CSV is absent: static gamma of each slab with ``model``.

    gamma = (E_slab - N eps_bulk) / 2A with both energies single points of ``model`` at the DFT geometries (slab
    as given; bulk = the slab's oriented bulk cell from :func:`uipbench.surfaces.oriented_bulk_cell`), through
    issue 3's :mod:`uipbench.models` and :mod:`uipbench.surfaces`. Returns (errors frame as
    :func:`load_gamma_errors`, failures id -> reason).
    """
    from . import models
    from .store import structure_hash

    checksum = models.weights_checksum(model)
    tasks = [Task(key=make_key(kind=GAMMA_KIND, model=model, weights=checksum, slab=structure_hash(a)),
                  kind=GAMMA_KIND, model=model, item=sid, args=(model, a))
             for sid, a in zip(slabs["id"], slabs["atoms"]) if a is not None]
    run_tasks(_gamma_static_task, tasks, store, backend=backend, n_workers=n_workers, desc=f"gamma {model}",
              progress=progress)
    rows, failures = [], {}
    dft = dict(zip(slabs["id"], slabs["gamma_j_per_m2"]))
    for t in tasks:
        rec = store.get(t.key, with_array=False)
        if rec is None or not rec.ok:
            failures[t.item] = rec.error if rec else "missing"
            continue
        rows.append({"id": t.item, "gamma_dft_j_per_m2": dft[t.item],
                     "gamma_model_j_per_m2": rec.payload["gamma_model_j_per_m2"]})
    out = pd.DataFrame(rows, columns=["id", "gamma_dft_j_per_m2", "gamma_model_j_per_m2"])
    out["abs_error_j_per_m2"] = (out["gamma_model_j_per_m2"] - out["gamma_dft_j_per_m2"]).abs()
    return out, failures


def _verdict_one(r) -> tuple[str, str]:
    ci = f"Spearman rho = {r['rho']:.2f}, 95% CI [{r['ci_low']:.2f}, {r['ci_high']:.2f}], n = {int(r['n'])}"
    if not np.isfinite(r["rho"]):
        return "untestable", "too few slabs with both an error and a distance"
    if r["ci_low"] > 0:
        return ("weakly supported" if r["rho"] < 0.3 else "supported"), ci
    if r["ci_high"] < 0:
        return "contradicted", ci
    return "not supported", ci


def verdict(corr: pd.DataFrame, variable: str = "dist_bulk_set") -> str:
    """Plain statement on the claim 'large errors come from structures far from the (bulk) training domain':
    the rank correlation of |error| with the distance from the bulk set, across all slabs and within elements."""
    c = corr.set_index("variable")
    word, ci = _verdict_one(c.loc[variable])
    text = {"supported": "supported: larger distance from bulk goes with larger |error|",
            "weakly supported": "weakly supported: larger distance from bulk goes with larger |error|",
            "contradicted": "contradicted: larger distance from bulk goes with smaller |error|",
            "not supported": "not supported: no significant rank correlation between distance from bulk and |error|",
            "untestable": "not testable"}[word]
    out = f"{text} ({ci})"
    within = f"{variable}|within element"
    if within in c.index:
        w_word, w_ci = _verdict_one(c.loc[within])
        out += f"; within elements: {w_word} ({w_ci})"
    return out


def claim_statement(corr: pd.DataFrame, variable: str = "dist_bulk_set") -> str:
    """One sentence: do the data support 'large errors come from slabs far from the bulk training domain'?

    Supported only if |error| rises with the distance from the bulk set both across all slabs and within elements
    (otherwise the trend is a between-element difference: some elements are both far from bulk and badly
    described, which says nothing about which *structures* are out of domain)."""
    c = corr.set_index("variable")
    overall, _ = _verdict_one(c.loc[variable])
    within_key = f"{variable}|within element"
    within = _verdict_one(c.loc[within_key])[0] if within_key in c.index else "untestable"
    pos = ("supported", "weakly supported")
    if overall in pos and within in pos:
        return "The data support the claim: |error| rises with the distance from bulk, also within elements."
    if overall in pos:
        return ("The data support the claim only between elements: across all slabs |error| rises weakly with the "
                "distance from bulk, but within an element the facets farther from bulk are not the worse ones "
                f"(within elements: {within}).")
    return f"The data do not support the claim (all slabs: {overall}; within elements: {within})."


# ------------------------------------------------------------------------------------------------------------------
# plots

MARKERS = {"FCC": "o", "BCC": "s", "HCP": "^", "other": "D", "unknown": "X"}


def plot_kpca_map(ax, table: pd.DataFrame, color_col: str = "abs_error_j_per_m2", highlight=(), title: str = "",
                  vmax: float | None = None, cmap: str = "viridis", explained=None, colorbar: bool = True,
                  legend: bool = True):
    """One point per slab at (kPC1, kPC2), coloured by ``color_col`` (grey when missing), marker = lattice;
    slabs of the ``highlight`` elements get a red edge and their element label at the group's centre."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    c = table[color_col].to_numpy(float) if color_col in table else np.full(len(table), np.nan)
    finite = c[np.isfinite(c)]
    norm = Normalize(0.0, vmax if vmax is not None else (np.quantile(finite, 0.98) if len(finite) else 1.0))
    cm = plt.get_cmap(cmap)
    hl = table["element"].isin(list(highlight)).to_numpy()
    for lat, mk in MARKERS.items():
        sel = (table["lattice"] == lat).to_numpy()
        if not sel.any():
            continue
        for is_hl in (False, True):
            s = sel & (hl == is_hl)
            if not s.any():
                continue
            cols = [cm(norm(v)) if np.isfinite(v) else (0.75, 0.75, 0.75, 1.0) for v in c[s]]
            ax.scatter(table["kpc1"][s], table["kpc2"][s], c=cols, marker=mk, s=34 if is_hl else 18,
                       edgecolors="red" if is_hl else "none", linewidths=1.0 if is_hl else 0,
                       alpha=0.9, zorder=3 if is_hl else 2)
    offsets = [(5, 5), (5, -11), (-16, 5), (-16, -11), (8, 0), (-20, 0)]
    for k, el in enumerate(highlight):  # one label per element, at the median of its slabs
        s = table["element"] == el
        if s.any():
            ax.annotate(el, (table.loc[s, "kpc1"].median(), table.loc[s, "kpc2"].median()), fontsize=9,
                        color="red", fontweight="bold", xytext=offsets[k % len(offsets)], textcoords="offset points",
                        zorder=4)
    xl, yl = "kPC1", "kPC2"
    if explained is not None:
        xl += f" ({100 * explained[0]:.0f}%)"
        yl += f" ({100 * explained[1]:.0f}%)"
    ax.set_xlabel(xl)
    ax.set_ylabel(yl)
    ax.set_title(title, fontsize=10)
    if legend:
        from matplotlib.lines import Line2D

        present = [lat for lat in MARKERS if (table["lattice"] == lat).any()]
        handles = [Line2D([], [], ls="", marker=MARKERS[lat], color="0.35", label=lat) for lat in present]
        if len(highlight):
            handles.append(Line2D([], [], ls="", marker="o", mfc="none", mec="red", label="highlighted"))
        ax.legend(handles=handles, title="bulk lattice", fontsize=7, title_fontsize=8, loc="best")
    if colorbar:
        sm = plt.cm.ScalarMappable(norm=norm, cmap=cm)
        ax.figure.colorbar(sm, ax=ax, label=r"|$\gamma$ error| (J/m$^2$)", extend="max", shrink=0.85)
    return ax
