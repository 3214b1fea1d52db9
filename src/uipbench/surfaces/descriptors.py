"""Per-atom descriptors of a structure: one function, ``structure + descriptor name -> (n_atoms, n_features)``.

The kernel-PCA chapter (surfaces paper, Fig. 2) compares slabs through the local environments of their atoms as
*a model sees them*. Four descriptors are registered in :data:`DESCRIPTORS`:

``soap``          dscribe SOAP over **all 42 elements of the surface set** (model-independent baseline). Features
                  are comparable across slabs (same layout), but for elemental structures a species-resolved power
                  spectrum of element A is orthogonal to that of element B: the linear REMatch kernel between slabs
                  of different elements is exactly 0. ``compression="crossover"`` keeps only same-species blocks,
                  which is lossless for one-element structures (there are no cross-species terms) and makes the
                  size linear in the number of species (42 x 10 x 5 = 2100 features).
``soap-mu2``      the same SOAP, element-agnostic (``compression="mu2"``, Darby et al. 2022): the geometry of the
                  neighbourhood only (at its absolute length scale), so slabs of different elements are comparable.
``chgnet-0.3.0``  CHGNet atom features (``predict_structure(..., return_atom_feas=True)``: the 64-d atom features
                  after the second-to-last interaction block, the ones CHGNet reads its magnetic moments from).
``sevennet-0``    SevenNet-0 node features: the 128 scalar channels leaving the last interaction block (forward
                  hook on the last ``*_equivariant_gate``; the input of the ``reduce_input_to_hidden`` readout).
``mace-mp-0``     MACE-MP-0 (medium) node features via ``MACECalculator.get_descriptors`` (invariant part, all
                  layers), as in the paper; needs the weights in the mace cache (see :mod:`uipbench.models`).

Every matrix is cached in the :class:`~uipbench.store.ResultStore` (``kind="descriptor"``) under
``make_key(descriptor, settings incl. package version and weights checksum, structure_hash)`` and computed through
:func:`uipbench.engine.run_tasks` (progress bar, resumable, failures recorded with their reason).

Models are loaded through :mod:`uipbench.models` (weights lookup, sha256 checksum in the key, dtype guard); the small
adapters here reach the torch module inside its calculator (``LoadedModel.calc.inner``) for the features.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..engine import Task, run_tasks
from ..store import ResultStore, make_key, structure_hash

KIND = "descriptor"

#: the 42 elements of the Materials Project surface set (``datasets.load("mp-surfaces")``); fixed here so that the
#: species-resolved SOAP has the same layout (and the same cache keys) for any subset of slabs
SURFACE_ELEMENTS = (
    "Ac",
    "Ag",
    "Al",
    "Au",
    "Ba",
    "Be",
    "Bi",
    "Ca",
    "Cd",
    "Ce",
    "Cu",
    "Dy",
    "Er",
    "Ga",
    "Hg",
    "Ho",
    "In",
    "Ir",
    "La",
    "Li",
    "Lu",
    "Mg",
    "Nd",
    "Ni",
    "Pb",
    "Pd",
    "Pm",
    "Pr",
    "Pt",
    "Rh",
    "Sc",
    "Sm",
    "Sn",
    "Sr",
    "Tb",
    "Th",
    "Tl",
    "Tm",
    "Y",
    "Yb",
    "Zn",
    "Zr",
)

#: SOAP settings. r_cut = 6 Å reaches past the first neighbour shell of every element of the set (largest nearest-
#: neighbour distance: Ba, 4.35 Å); n_max = 4, l_max = 4 keep the 801 x 801 REMatch kernel at about a minute on one
#: core (measured on a random 60-slab subset: 0.25-0.4 ms per structure pair, dominated by the Sinkhorn iterations,
#: not by the feature length); sigma = 0.5 Å is dscribe's customary Gaussian width for metals.
SOAP_SETTINGS = {"r_cut": 6.0, "n_max": 4, "l_max": 4, "sigma": 0.5, "rbf": "gto", "periodic": True}


@dataclass(frozen=True)
class Descriptor:
    name: str
    description: str
    compute: Callable  #: (atoms) -> (n_atoms, n_features) float64
    settings: Callable  #: () -> dict that identifies the descriptor (package version, weights checksum, settings)
    check: Callable = field(default=lambda: None)  #: () -> None or raise: is it usable here (weights, packages)?


# ------------------------------------------------------------------------------------------------------------------
# SOAP (dscribe)


@functools.cache
def _soap(mode: str):
    from dscribe.descriptors import SOAP

    s = SOAP(species=list(SURFACE_ELEMENTS), compression={"mode": mode, "species_weighting": None}, **SOAP_SETTINGS)
    return s


def _version(dist: str) -> str:
    from importlib.metadata import version

    return f"{dist}=={version(dist)}"


def _soap_settings(mode: str) -> dict:
    return {"package": _version("dscribe"), "species": list(SURFACE_ELEMENTS), "compression": mode, **SOAP_SETTINGS}


def _soap_compute(atoms, mode: str) -> np.ndarray:
    unknown = sorted(set(atoms.get_chemical_symbols()) - set(SURFACE_ELEMENTS))
    if unknown:
        raise ValueError(f"elements {unknown} are not in the SOAP species list (the 42 elements of the surface set)")
    return np.asarray(_soap(mode).create(atoms), dtype=np.float64)


# ------------------------------------------------------------------------------------------------------------------
# model adapters on top of issue 3's registry (uipbench.models: weights lookup, checksum, dtype guard); the raw torch
# modules are reached through ``LoadedModel.calc.inner``

#: descriptor name -> model name in :data:`uipbench.models.REGISTRY` (MACE-MP-0 "medium" is the paper's model)
MODEL_OF = {"chgnet-0.3.0": "chgnet-0.3.0", "sevennet-0": "sevennet-0", "mace-mp-0": "mace-mp-0-medium"}


def _model_settings(name: str, layer: str) -> dict:
    from .. import models

    m = MODEL_OF[name]
    pkg = {"chgnet": "chgnet", "sevennet": "sevenn", "mace": "mace-torch"}[models.get_spec(m).family]
    return {"package": _version(pkg), "model": m, "weights_sha256": models.weights_checksum(m), "layer": layer}


def _check_model(name: str) -> None:
    from .. import models

    models.weights_files(MODEL_OF[name], allow_download=False)  # raises ModelNotAvailableError with the reason


@functools.cache
def _loaded(name: str):
    from .. import models

    return models.load_model(MODEL_OF[name])


def _chgnet_compute(atoms) -> np.ndarray:
    import torch
    from pymatgen.io.ase import AseAtomsAdaptor

    from ..models import default_dtype

    lm = _loaded("chgnet-0.3.0")
    model = lm.calc.inner.model
    structure = AseAtomsAdaptor.get_structure(atoms)
    # one structure at a time: batched prediction on CPU is slower and its memory explodes (NOTES)
    with default_dtype(lm.dtype), torch.no_grad():
        out = model.predict_structure(structure, task="e", return_atom_feas=True, batch_size=1)
    return np.asarray(out["atom_fea"], dtype=np.float64)


@functools.cache
def _sevennet_hooked():
    """SevenNet-0 with a forward hook that keeps the node features leaving the last interaction block."""
    import sevenn._keys as KEY

    lm = _loaded("sevennet-0")
    net = lm.calc.inner.model
    gates = [n for n in net._modules if n.endswith("_equivariant_gate")]
    captured: dict = {}

    def hook(_module, _inputs, output):
        captured["x"] = output[KEY.NODE_FEATURE].detach().cpu().numpy().copy()

    net._modules[gates[-1]].register_forward_hook(hook)
    return lm, captured


def _sevennet_compute(atoms) -> np.ndarray:
    lm, captured = _sevennet_hooked()
    captured.clear()
    a = atoms.copy()
    a.calc = lm.calc
    a.get_potential_energy()
    x = captured.get("x")
    if x is None or x.shape[0] != len(atoms):
        raise RuntimeError("SevenNet forward hook captured no node features")
    return np.asarray(x, dtype=np.float64)


def _mace_compute(atoms) -> np.ndarray:
    import torch

    from ..models import default_dtype

    lm = _loaded("mace-mp-0")
    with default_dtype(lm.dtype), torch.no_grad():
        d = lm.calc.inner.get_descriptors(atoms.copy(), invariants_only=True, num_layers=-1)
    return np.asarray(d, dtype=np.float64)


DESCRIPTORS: dict[str, Descriptor] = {
    d.name: d
    for d in [
        Descriptor(
            "soap",
            "SOAP, species-resolved over the 42 elements (dscribe, crossover)",
            lambda a: _soap_compute(a, "crossover"),
            lambda: _soap_settings("crossover"),
        ),
        Descriptor(
            "soap-mu2",
            "SOAP, element-agnostic geometry (dscribe, mu2 compression)",
            lambda a: _soap_compute(a, "mu2"),
            lambda: _soap_settings("mu2"),
        ),
        Descriptor(
            "chgnet-0.3.0",
            "CHGNet 0.3.0 atom features (64)",
            _chgnet_compute,
            lambda: _model_settings("chgnet-0.3.0", "atom_fea (after conv n-1)"),
            lambda: _check_model("chgnet-0.3.0"),
        ),
        Descriptor(
            "sevennet-0",
            "SevenNet-0 node features after the last interaction block (128)",
            _sevennet_compute,
            lambda: _model_settings("sevennet-0", "output x of the last equivariant gate"),
            lambda: _check_model("sevennet-0"),
        ),
        Descriptor(
            "mace-mp-0",
            "MACE-MP-0 medium invariant node features (all layers)",
            _mace_compute,
            lambda: _model_settings("mace-mp-0", "get_descriptors(invariants_only=True, num_layers=-1)"),
            lambda: _check_model("mace-mp-0"),
        ),
    ]
}


def get(name: str) -> Descriptor:
    try:
        return DESCRIPTORS[name]
    except KeyError:
        raise KeyError(f"unknown descriptor {name!r}; registered: {sorted(DESCRIPTORS)}") from None


def compute_descriptor(atoms, name: str) -> np.ndarray:
    """Per-atom feature matrix ``(len(atoms), n_features)`` of ``atoms`` for descriptor ``name`` (not cached)."""
    x = get(name).compute(atoms)
    if x.ndim != 2 or x.shape[0] != len(atoms):
        raise RuntimeError(f"{name}: expected ({len(atoms)}, n_features), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise RuntimeError(f"{name}: non-finite features")
    return x


@functools.cache
def descriptor_settings(name: str) -> tuple:
    """Identity of descriptor ``name`` for cache keys (a hashable, sorted tuple of its settings)."""
    return tuple(sorted((k, str(v)) for k, v in get(name).settings().items()))


def descriptor_key(name: str, atoms) -> str:
    return make_key(
        kind=KIND, descriptor=name, settings=dict(descriptor_settings(name)), structure=structure_hash(atoms)
    )


def availability(names) -> pd.DataFrame:
    """One row per descriptor: ``available`` and the loader's error when not (shown in the notebook)."""
    rows = []
    for n in names:
        try:
            get(n).check()
            rows.append({"descriptor": n, "available": True, "reason": "", "description": get(n).description})
        except Exception as exc:  # the reason is the table's content
            rows.append(
                {
                    "descriptor": n,
                    "available": False,
                    "reason": f"{type(exc).__name__}: {exc}",
                    "description": get(n).description if n in DESCRIPTORS else "",
                }
            )
    return pd.DataFrame(rows)


def _task(args) -> tuple[dict, np.ndarray]:
    name, atoms = args
    x = compute_descriptor(atoms, name)
    payload = {"n_atoms": int(x.shape[0]), "n_features": int(x.shape[1])}
    # species-resolved SOAP of a one-element slab is zero outside that element's block (50 of 2100 columns):
    # store only the non-zero columns and their indices (lossless; 40x smaller store)
    cols = np.flatnonzero(np.any(x != 0.0, axis=0))
    if len(cols) < 0.5 * x.shape[1]:
        payload["columns"] = cols.tolist()
        x = x[:, cols]
    return payload, x


def descriptor_tasks(name: str, structures: Mapping[str, object]) -> list[Task]:
    return [
        Task(key=descriptor_key(name, atoms), kind=KIND, model=name, item=str(item), args=(name, atoms))
        for item, atoms in structures.items()
    ]


def compute_descriptors(
    name: str,
    structures: Mapping[str, object],
    store: ResultStore,
    backend: str = "serial",
    n_workers: int = 1,
    progress: bool = True,
    retry_failed: bool = False,
):
    """Descriptor ``name`` of every structure (item id -> Atoms), cached in ``store``.

    Returns ``(keys, failures, summary)``: ``keys`` item -> store key of each successful matrix (read it with
    :func:`load_features`), ``failures`` item -> reason.
    """
    tasks = descriptor_tasks(name, structures)
    summary = run_tasks(
        _task,
        tasks,
        store,
        backend=backend,
        n_workers=n_workers,
        desc=f"descriptor {name}",
        retry_failed=retry_failed,
        progress=progress,
    )
    keys, failures = {}, {}
    for t in tasks:
        rec = store.get(t.key, with_array=False)
        if rec is not None and rec.ok:
            keys[t.item] = t.key
        else:
            failures[t.item] = rec.error if rec is not None else "not computed"
    return keys, failures, summary


def load_features(store: ResultStore, keys, sparse: bool = False) -> list:
    """The stored feature matrices of ``keys`` (in order), float64 ``(n_atoms, n_features)``.

    Matrices stored column-compressed (see :func:`_task`) come back dense, or as ``scipy.sparse.csr_matrix`` when
    ``sparse`` (the kernel code multiplies those without expanding them).
    """
    import scipy.sparse as sp

    out = []
    for k in keys:
        rec = store.get(k)
        if rec is None or not rec.ok or rec.array is None:
            raise KeyError(f"no stored descriptor for key {k[:12]}")
        x = np.asarray(rec.array, dtype=np.float64)
        cols = (rec.payload or {}).get("columns")
        if cols is not None:
            n, m = x.shape[0], int(rec.payload["n_features"])
            if sparse:
                rows = np.repeat(np.arange(n), len(cols))
                x = sp.csr_matrix((x.ravel(), (rows, np.tile(cols, n))), shape=(n, m))
            else:
                full = np.zeros((n, m))
                full[:, cols] = x
                x = full
        out.append(x)
    return out
