"""REMatch structure kernels (De, Bartók, Csányi & Ceriotti 2016; dscribe ``REMatchKernel``), in blocks.

The kernel between structures is computed in row/column blocks: each block is one :class:`~uipbench.engine.Task`
whose raw (un-normalised) similarities are stored in the result store as an array (``kind="rematch-block"``), so
the blocks run on any backend of :func:`uipbench.engine.run_tasks`, an interrupted run keeps its finished blocks,
and a rerun assembles the matrix from the store. The assembled matrix is normalised, ``K_ij / sqrt(K_ii K_jj)``
(what dscribe's ``normalize_kernel=True`` does).

Why blocks call dscribe per pair but not ``REMatchKernel.create``: ``create`` evaluates the local kernel of each
pair with its own scikit-learn call; here the local kernel of a whole block is one matrix product (sparse for the
species-resolved SOAP), sliced per pair, and dscribe's ``get_global_similarity`` (the Sinkhorn iteration) is
called on each slice. The result equals ``create`` (tested).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..engine import RunSummary, Task, run_tasks
from ..store import ResultStore, make_key

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
        return REMatchKernel(
            metric=self.metric, alpha=self.alpha, threshold=self.threshold, gamma=self.gamma, normalize_kernel=False
        )


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


def raw_block(
    x_features: Sequence, y_features: Sequence | None, settings: KernelSettings, symmetric: bool = False
) -> np.ndarray:
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
            c = local[ox[i] : ox[i + 1], oy[j] : oy[j + 1]]
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


@dataclass
class KernelResult:
    matrix: np.ndarray  #: normalised kernel
    raw_diag_rows: np.ndarray
    raw_diag_cols: np.ndarray
    seconds: float  #: wall time of this call
    summary: RunSummary  #: the engine's summary of the block tasks
    compute_seconds: float  #: summed evaluation time of the blocks, as stored with them (the run that computed them)

    @property
    def n_blocks(self) -> int:
        return self.summary.total

    @property
    def from_store(self) -> bool:
        """True when every block was already in the store (nothing computed by this call)."""
        return self.summary.skipped == self.summary.total


@dataclass(frozen=True)
class _Block:
    task: Task
    rows: tuple[int, int]
    cols: tuple[int, int]  #: for a "diag" block: the same range as ``rows``; ``side`` says which vector it fills
    side: str = ""  #: "rows" | "cols" for the normalisation factors of a rectangular kernel


def _blocks(
    row_keys: list[str], col_keys: list[str] | None, settings: KernelSettings, block_size: int, store, label: str
) -> list[_Block]:
    """The block tasks of the kernel: upper triangle when symmetric, else all blocks plus both self-similarities."""
    settings_d = asdict(settings)

    def task(mode, rk, ck, item):
        key = make_key(kind=BLOCK_KIND, mode=mode, settings=settings_d, rows=rk, cols=ck)
        return Task(key=key, kind=BLOCK_KIND, model=label, item=item, args=(store, mode, rk, ck, settings))

    symmetric = col_keys is None
    cols = row_keys if symmetric else col_keys
    out = []
    for bi, (r0, r1) in enumerate(_chunks(len(row_keys), block_size)):
        for bj, (c0, c1) in enumerate(_chunks(len(cols), block_size)):
            if symmetric and bj < bi:
                continue
            mode = "sym" if symmetric and bi == bj else "rect"
            ck = None if mode == "sym" else cols[c0:c1]
            out.append(_Block(task(mode, row_keys[r0:r1], ck, f"{label} block {bi},{bj}"), (r0, r1), (c0, c1)))
    if not symmetric:  # normalisation factors of both sides
        for side, keys in (("rows", row_keys), ("cols", cols)):
            for bi, (s0, s1) in enumerate(_chunks(len(keys), block_size)):
                out.append(
                    _Block(task("diag", keys[s0:s1], None, f"{label} self {side} {bi}"), (s0, s1), (s0, s1), side)
                )
    return out


def _assemble(blocks: list[_Block], store: ResultStore, shape: tuple[int, int], symmetric: bool):
    """Raw matrix, raw self-similarities of rows and columns, and summed block seconds, from the stored blocks."""
    K, dr, dc = np.zeros(shape), np.zeros(shape[0]), np.zeros(shape[1])
    failures, seconds = {}, 0.0
    for b in blocks:
        rec = store.get(b.task.key)
        if rec is None or not rec.ok:
            failures[b.task.item] = rec.error if rec else "missing"
            continue
        seconds += rec.seconds or 0.0
        (r0, r1), (c0, c1) = b.rows, b.cols
        if b.side:
            (dr if b.side == "rows" else dc)[r0:r1] = rec.array
            continue
        K[r0:r1, c0:c1] = rec.array
        if symmetric:
            K[c0:c1, r0:r1] = rec.array.T
    if failures:
        raise RuntimeError(f"{len(failures)} kernel block(s) failed: {failures}")
    if symmetric:
        dr = dc = np.diag(K).copy()
    return K, dr, dc, seconds


def rematch_kernel(
    row_keys: Sequence[str],
    store: ResultStore,
    settings: KernelSettings = KernelSettings(),
    col_keys: Sequence[str] | None = None,
    block_size: int = 100,
    backend: str = "serial",
    n_workers: int = 1,
    scheduler=None,
    progress: bool = True,
    label: str = "",
) -> KernelResult:
    """Normalised REMatch kernel between the structures whose descriptors are stored under ``row_keys`` (and
    ``col_keys``; None: the symmetric N x N kernel of ``row_keys``).

    The matrix is split in ``block_size`` x ``block_size`` blocks (upper triangle only when symmetric), each an
    engine task on ``backend`` with ``n_workers`` whose result is stored; missing/failed blocks raise (their
    reasons are in the store).
    """
    t0 = time.perf_counter()
    row_keys = list(row_keys)
    symmetric = col_keys is None
    col_list = row_keys if symmetric else list(col_keys)
    blocks = _blocks(row_keys, None if symmetric else col_list, settings, block_size, store, label)
    summary = run_tasks(
        _block_task,
        [b.task for b in blocks],
        store,
        backend=backend,
        n_workers=n_workers,
        scheduler=scheduler,
        desc=f"REMatch {label}".strip(),
        progress=progress,
    )
    K, dr, dc, block_seconds = _assemble(blocks, store, (len(row_keys), len(col_list)), symmetric)
    K = K / np.sqrt(np.outer(dr, dc))
    if symmetric:
        K = 0.5 * (K + K.T)
        np.fill_diagonal(K, 1.0)
    return KernelResult(K, dr, dc, time.perf_counter() - t0, summary, block_seconds)
