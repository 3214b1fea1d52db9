"""Universal interatomic potentials by name: ``load_model("chgnet-0.3.0")`` -> a :class:`LoadedModel`.

Each registry entry knows where its weights come from, how to load them and which torch default dtype it runs
under. A :class:`LoadedModel` has an ASE calculator (``.calc``, for relaxations) and a direct ``.energy(atoms)``
path (CHGNet's ``predict_structure`` with ``task="e"``: no force back-propagation, one structure at a time, which
is what a static single point needs).

The registry of names is :mod:`uipbench.model_registry`; everything about weight files (pins, verification,
downloads, provenance, safe ``torch.load``) is :mod:`uipbench.weights`. Their public names are re-exported here,
so ``models.REGISTRY``, ``models.weights_files``, ``models.PINNED`` ... keep working.

When weights cannot be had, :class:`ModelNotAvailableError` says which file, where it was looked for and how to
supply it (see :mod:`uipbench.weights`).

**matgl weights written before matgl 3.0** (see :mod:`uipbench.model_registry`): loaded only under the matgl version
they were validated under; ``tensornet``/``tensornet-r2scan`` are validated for single-element structures only and
their calculator raises ``ValueError`` for any other structure; ``m3gnet-mp-2021.2.8`` runs with the pre-3.0
message-passing convention restored on the loaded model (:func:`_legacy_m3gnet_convention`). None of this applies to
a user's own matgl directory (``model_path``), which is run as matgl runs it.

**dtype isolation.** MACE sets torch's *global* default dtype when it loads (ACEsuit/mace#328), which would change
the numbers of every model loaded or called after it in the same process. Every load here runs inside
:func:`default_dtype` (saved and restored), and every call of a model runs under the dtype the model was built for
(:class:`GuardedCalculator`), so models cannot change each other's results.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from .model_registry import REGISTRY, ModelNotAvailableError, ModelSpec, domain_violation, get_spec
from .weights import (
    _RESOLVED,
    PINNED,
    PinnedFile,
    UnsafeWeightsError,
    WeightsChecksumError,
    _import,
    _safe_torch_load,
    _sevenn_safe_globals,
    _unsafe_torch_load,
    file_sha256,
    mace_cache_dir,
    mace_cached_path,
    mace_url,
    matgl_data_dir,
    weights_checksum,
    weights_files,
    weights_provenance,
)

#: the public names of this module, those of :mod:`uipbench.model_registry` and :mod:`uipbench.weights` included
__all__ = [
    "PINNED",
    "REGISTRY",
    "GuardedCalculator",
    "LoadedModel",
    "ModelNotAvailableError",
    "ModelSpec",
    "PinnedFile",
    "UnsafeWeightsError",
    "WeightsChecksumError",
    "availability",
    "default_dtype",
    "file_sha256",
    "get_spec",
    "load_model",
    "mace_cache_dir",
    "mace_cached_path",
    "mace_url",
    "matgl_data_dir",
    "weights_checksum",
    "weights_files",
    "weights_provenance",
]


# ----------------------------------------------------------------------------------------------------------------
# dtype guard


@contextmanager
def default_dtype(dtype=None):
    """Run a block under torch default ``dtype`` (None: unchanged) and restore the previous default afterwards."""
    import torch

    old = torch.get_default_dtype()
    if dtype is not None:
        torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


class GuardedCalculator(Calculator):
    """ASE calculator that runs ``inner`` under a fixed torch default dtype and restores the global one after."""

    def __init__(self, inner: Calculator, dtype, name: str = "", spec: ModelSpec | None = None):
        super().__init__()
        self.inner = inner
        self.dtype = dtype
        self.model_name = name
        #: the registry entry whose validated domain every structure is checked against (None: no check)
        self.spec = spec
        self.implemented_properties = list(getattr(inner, "implemented_properties", ["energy", "forces"]))

    def check_domain(self, atoms: Atoms) -> None:
        """Raise ``ValueError`` when ``atoms`` is outside the validated domain of the model's pinned weights."""
        if self.spec is None or not self.spec.domain:
            return
        why = domain_violation(self.spec, atoms.get_chemical_symbols())
        if why:
            raise ValueError(
                f"{self.model_name}: {atoms.get_chemical_formula()} is outside the validated domain of "
                f"{self.spec.variant} ({self.spec.domain} structures only, under {self.spec.runtime}): {why}. These "
                f"weights were written before matgl 3.0; {self.spec.runtime} reproduces the code that wrote them "
                f"for single-element structures only and gives other energies for structures with two or more "
                f"elements (measured: MgO rock salt 7.1 eV per cell off). See uipbench.model_registry."
            )

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        self.check_domain(atoms if atoms is not None else self.atoms)
        super().calculate(atoms, properties, system_changes)
        with default_dtype(self.dtype):
            self.inner.calculate(self.atoms, list(properties), system_changes)
        self.results = {k: (np.array(v) if isinstance(v, np.ndarray) else v) for k, v in self.inner.results.items()}


# ----------------------------------------------------------------------------------------------------------------
# loading


@dataclass
class LoadedModel:
    name: str
    calc: GuardedCalculator
    weights: list[Path]
    checksum: str
    dtype: object  #: torch dtype the model runs under
    direct_energy: Callable[[Atoms], float] | None = None
    load_seconds: float = 0.0
    #: ``origin`` (pinned | user), ``sha256`` of every file (see :func:`weights_provenance`)
    meta: dict = field(default_factory=dict)

    def energy(self, atoms: Atoms) -> float:
        """Total potential energy (eV) of ``atoms``: the direct path when the package has one, else the calculator."""
        if self.direct_energy is not None:
            with default_dtype(self.dtype):
                return float(self.direct_energy(atoms))
        a = atoms.copy()
        a.calc = self.calc
        return float(a.get_potential_energy())


_LOADED: dict[tuple, LoadedModel] = {}


def load_model(
    name: str,
    model_path: str | Path | None = None,
    device: str = "cpu",
    allow_download: bool | None = None,
    cache: bool = True,
) -> LoadedModel:
    """Load model ``name`` (once per process when ``cache``); raise :class:`ModelNotAvailableError` when absent.

    The weights are verified against their pinned sha256 before anything reads them (:func:`weights_files`);
    ``model_path`` (the user's own file) is accepted as given and its sha256 recorded.
    """
    key = (name, str(model_path) if model_path else None, device)
    if cache and key in _LOADED:
        return _LOADED[key]
    import torch

    spec = get_spec(name)
    files = weights_files(name, model_path, allow_download=allow_download)
    t0 = time.perf_counter()
    try:
        with default_dtype(torch.float32):  # every loader starts from torch's stock default and cannot leak a change
            if spec.family == "chgnet":
                inner, dtype, direct = _load_chgnet(spec, files[0], model_path, device)
            elif spec.family == "sevennet":
                inner, dtype, direct = _load_sevennet(files[0], device)
            elif spec.family == "mace":
                inner, dtype, direct = _load_mace(files[0], device)
            else:
                inner, dtype, direct = _load_matgl(spec, files[0].parent, model_path, device)
    except Exception as exc:  # torch's refusal, possibly wrapped by the package's loader (matgl: RuntimeError)
        refusal = _unpickling_error(exc)
        if refusal is None:
            raise
        detail = str(refusal).strip().splitlines()[-1] if str(refusal).strip() else type(refusal).__name__
        raise UnsafeWeightsError(
            f"{name}: {', '.join(str(f) for f in files)} refused by torch's weights-only unpickler ({detail[:300]}); "
            f"nothing in it was executed and the model was not loaded. Use a checkpoint saved as plain tensors."
        ) from exc
    model = LoadedModel(
        name=name,
        calc=GuardedCalculator(inner, dtype, name, spec if model_path is None else None),
        weights=files,
        checksum=weights_checksum(name, model_path),
        dtype=dtype,
        direct_energy=direct,
        load_seconds=time.perf_counter() - t0,
        meta=dict(_RESOLVED[name]),
    )
    if cache:
        _LOADED[key] = model
    return model


def _unpickling_error(exc: BaseException | None) -> pickle.UnpicklingError | None:
    """The ``pickle.UnpicklingError`` in ``exc``'s chain of causes, if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, pickle.UnpicklingError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _load_chgnet(spec: ModelSpec, file: Path, model_path, device):
    import torch

    CHGNet = _import("chgnet.model").CHGNet
    CHGNetCalculator = _import("chgnet.model.dynamics").CHGNetCalculator
    from pymatgen.io.ase import AseAtomsAdaptor

    # CHGNet.from_file would call torch.load(weights_only=False); the checkpoint is plain tensors and dicts, so it
    # is read here with the weights-only unpickler and built with CHGNet.from_dict (what from_file does after
    # loading; CHGNet.load adds mlp_out_bias for 0.2.0 and the version name)
    with _safe_torch_load():
        state = torch.load(file, map_location="cpu", weights_only=True)
    kwargs = {} if model_path is not None else {"mlp_out_bias": spec.variant == "0.2.0", "version": spec.variant}
    model = CHGNet.from_dict(state["model"], **kwargs).to(device)
    model.eval()
    calc = CHGNetCalculator(model=model, use_device=device)

    def direct(atoms: Atoms) -> float:
        # CHGNet predicts energy per atom; task "e" skips the force/stress back-propagation
        structure = AseAtomsAdaptor.get_structure(atoms)
        with torch.no_grad():
            pred = model.predict_structure(structure, task="e", batch_size=1)
        return float(np.asarray(pred["e"])) * len(atoms)

    return calc, torch.float32, direct


def _load_sevennet(file: Path, device):
    import torch

    util = _import("sevenn.util")
    SevenNetCalculator = _import("sevenn.calculator").SevenNetCalculator
    # SevenNetCalculator(model=<path>) would call torch.load(weights_only=False): read the checkpoint here with the
    # weights-only unpickler (a few numpy types allowlisted) and hand the built model to the calculator
    with _safe_torch_load(), torch.serialization.safe_globals(_sevenn_safe_globals()):
        checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    model, config = util.model_from_checkpoint(checkpoint)
    return SevenNetCalculator(model=model, device=device, sevennet_config=config), torch.float32, None


def _load_mace(file: Path, device):
    import torch

    mace_mp = _import("mace.calculators").mace_mp
    # float64: relaxations need it and MACE-MP supports it; mace_mp sets the global default dtype, which the
    # surrounding default_dtype() guard restores. UNSAFE LOAD, confined to this call: a MACE .model file is a pickled
    # torch.nn.Module (e3nn code included) that only torch.load(weights_only=False) can read. The file got here only
    # with its pinned sha256 or as the user's explicit model_path.
    with _unsafe_torch_load():
        calc = mace_mp(model=str(file), device=device, default_dtype="float64")
    return calc, torch.float64, None


def _load_matgl(spec: ModelSpec, directory: Path, model_path, device):
    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local directory: never reach out to the hub
    matgl = _import("matgl")
    PESCalculator = _import("matgl.ext.ase").PESCalculator

    with _safe_torch_load():  # matgl 4 reads model.pt and state.pt with weights_only=True itself
        potential = matgl.load_model(directory)
    if model_path is None and spec.adapter == "matgl-legacy-m3gnet":
        _legacy_m3gnet_convention(potential, spec.name)
    elif model_path is None and spec.adapter:
        raise ValueError(f"{spec.name}: unknown loader adapter {spec.adapter!r}")
    # PESCalculator reports stress in GPa by default; ASE's cell filters need eV/Å^3
    return PESCalculator(potential, stress_unit="eV/A3"), torch.float32, None


def _legacy_m3gnet_convention(potential, name: str) -> int:
    """Restore the pre-matgl-3.0 message passing on a loaded matgl 4.1.2 M3GNet (this model instance only).

    matgl <= 2.x (DGL) summed the node-update messages of ``M3GNetGraphConv`` (computed from ``[v_src, v_dst,
    e]``) onto the edge's *destination* node (``graph.update_all(fn.copy_e("mess", "mess"), fn.sum("mess",
    "ve"))``, materialyzeai/matgl@e9cde229 src/matgl/layers/_graph_convolution_dgl.py); matgl 3.0 sums them onto the
    *source* node, everything else being the same computation. Weights trained before 3.0 need the old direction:
    with it, matgl 4.1.2 reproduces matgl's own published test energies of M3GNet-MP-2021.2.8-PES to 1e-6 eV (see
    :mod:`uipbench.model_registry`). Returns the number of layers changed (raises if none: a matgl whose layer
    differs from 4.1.2's must not be run with these weights).
    """
    import inspect
    import types

    import torch

    gc = _import("matgl.layers._graph_convolution")
    expected = ["edge_index", "edge_feat", "node_feat", "rbf", "u_per_edge", "num_nodes"]
    if list(inspect.signature(gc.M3GNetGraphConv.node_update_).parameters)[1:] != expected:
        raise ModelNotAvailableError(
            f"{name}: matgl's M3GNetGraphConv.node_update_ is not the 4.1.2 one the pre-3.0 adapter was validated on"
        )
    scatter_add = gc.scatter_add

    def node_update_(self, edge_index, edge_feat, node_feat, rbf, u_per_edge, num_nodes):
        src, dst = edge_index[0], edge_index[1]
        parts = [node_feat[src], node_feat[dst], edge_feat] + ([u_per_edge] if self.include_state else [])
        mess = self.node_update_func(torch.hstack(parts)) * self.node_weight_func(rbf)
        return scatter_add(mess, dst, dim_size=num_nodes, dim=0)  # matgl 4.1.2: onto src

    n = 0
    for module in potential.modules():
        if isinstance(module, gc.M3GNetGraphConv):
            module.node_update_ = types.MethodType(node_update_, module)
            n += 1
    if n == 0:
        raise ModelNotAvailableError(f"{name}: no M3GNetGraphConv layer in the loaded model: adapter not applicable")
    return n


def availability(
    names: list[str] | None = None, try_load: bool = False, model_paths: dict[str, str] | None = None
) -> pd.DataFrame:
    """One row per model: available?, weights file(s), sha256 (first 12 hex), reason when not available.

    ``try_load`` also loads each available model (slower) so that a broken file shows up here.
    """
    rows = []
    for name in names or list(REGISTRY):
        spec = get_spec(name)
        mp = (model_paths or {}).get(name)
        row = dict(
            model=name,
            description=spec.description,
            training=spec.training,
            available=False,
            weights="",
            sha256="",
            reason="",
        )
        try:
            files = weights_files(name, mp, allow_download=False)
            row.update(weights=", ".join(str(f) for f in files), sha256=weights_checksum(name, mp)[:12])
            if try_load:
                load_model(name, mp)
            row["available"] = True
        except WeightsChecksumError as exc:  # a file with a wrong hash is unavailable, never loaded
            row["reason"] = f"checksum mismatch: {exc}"
        except Exception as exc:  # ModelNotAvailableError, or a load failure: say why
            row["reason"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    return pd.DataFrame(rows)
