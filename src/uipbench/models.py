"""Universal interatomic potentials by name: ``load_model("chgnet-0.3.0")`` -> a :class:`LoadedModel`.

Each registry entry knows where its weights come from, how to load them and which torch default dtype it runs
under. A :class:`LoadedModel` has an ASE calculator (``.calc``, for relaxations) and a direct ``.energy(atoms)``
path (CHGNet's ``predict_structure`` with ``task="e"``: no force back-propagation, one structure at a time, which
is what a static single point needs).

======================  =====================================================  =====================================
name                    weights                                                where they are looked for
======================  =====================================================  =====================================
chgnet-0.3.0 / 0.2.0    shipped in the chgnet wheel                            ``chgnet/pretrained/<version>/``
chgnet-r2scan           shipped in the chgnet 0.4.2 wheel (MP-r2SCAN transfer)  ``chgnet/pretrained/r2scan/``
sevennet-0              shipped in the sevenn 0.10.4 wheel (11 Jul 2024)        ``sevenn/pretrained_potentials/``
mace-mp-0-small/        GitHub releases of ACEsuit/mace-mp, fetched by          ``$XDG_CACHE_HOME/mace`` (default
medium/large            ``mace.calculators.mace_mp``'s downloader               ``~/.cache/mace``) or ``model_path``
m3gnet / tensornet      Hugging Face hub ``materialyze/<...-PES>`` (matgl 4)    the HF cache, or ``model_path`` (a
                                                                               directory with model.json, model.pt,
                                                                               state.pt)
======================  =====================================================  =====================================

When weights cannot be had, :class:`ModelNotAvailableError` says which file, where it was looked for and how to
supply it. Downloads are attempted only when ``allow_download`` is true (or ``UIPBENCH_ALLOW_DOWNLOAD=1``); the
default is to fail fast on a machine without internet (matgl would otherwise retry for ~46 s).

**dtype isolation.** MACE sets torch's *global* default dtype when it loads (ACEsuit/mace#328), which would change
the numbers of every model loaded or called after it in the same process. Every load here runs inside
:func:`default_dtype` (saved and restored), and every call of a model runs under the dtype the model was built for
(:class:`GuardedCalculator`), so models cannot change each other's results.

The weights checksum (:func:`weights_checksum`, sha256 of the weight files) enters the result-store key, so a
different file under the same name is never served stale results.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes


class ModelNotAvailableError(RuntimeError):
    """The weights of a model cannot be had here; the message says which file, where, and how to supply it."""


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

    def __init__(self, inner: Calculator, dtype, name: str = ""):
        super().__init__()
        self.inner = inner
        self.dtype = dtype
        self.model_name = name
        self.implemented_properties = list(getattr(inner, "implemented_properties", ["energy", "forces"]))

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        with default_dtype(self.dtype):
            self.inner.calculate(self.atoms, list(properties), system_changes)
        self.results = {k: (np.array(v) if isinstance(v, np.ndarray) else v) for k, v in self.inner.results.items()}


# ----------------------------------------------------------------------------------------------------------------
# registry


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  #: chgnet | sevennet | mace | matgl
    variant: str  #: chgnet version, mace size, matgl model name
    description: str
    citation: str
    #: the functional / data the model was trained on (the benchmark's DFT is PBE)
    training: str = "MPtrj (PBE/PBE+U)"


_CHGNET_CITE = "B. Deng et al., Nat. Mach. Intell. 5, 1031 (2023)."
_MACE_CITE = "I. Batatia et al., A foundation model for atomistic materials chemistry, arXiv:2401.00096."
_MATGL_CITE = "C. Chen, S. P. Ong, Nat. Comput. Sci. 2, 718 (2022); MatPES: A. D. Kaplan et al., arXiv:2503.04070."

# fmt: off
REGISTRY: dict[str, ModelSpec] = {s.name: s for s in [
    ModelSpec("chgnet-0.3.0", "chgnet", "0.3.0", "CHGNet 0.3.0 (MPtrj)", _CHGNET_CITE),
    ModelSpec("chgnet-0.2.0", "chgnet", "0.2.0", "CHGNet 0.2.0 (MPtrj; the surfaces paper's version)",
              _CHGNET_CITE),
    ModelSpec("chgnet-r2scan", "chgnet", "r2scan", "CHGNet fine-tuned on MP-r2SCAN (transfer paper)",
              "X. Huang et al., arXiv:2504.05565 (2025).", training="MP-r2SCAN (transfer from MPtrj)"),
    ModelSpec("sevennet-0", "sevennet", "7net-0", "SevenNet-0 (11 Jul 2024)",
              "Y. Park et al., J. Chem. Theory Comput. 20, 4857 (2024)."),
    ModelSpec("mace-mp-0-small", "mace", "small", "MACE-MP-0 small", _MACE_CITE),
    ModelSpec("mace-mp-0-medium", "mace", "medium", "MACE-MP-0 medium", _MACE_CITE),
    ModelSpec("mace-mp-0-large", "mace", "large", "MACE-MP-0 large", _MACE_CITE),
    ModelSpec("m3gnet", "matgl", "M3GNet-MatPES-PBE-v2025.1-PES", "M3GNet (matgl 4, MatPES PBE)", _MATGL_CITE,
              training="MatPES (PBE)"),
    ModelSpec("tensornet", "matgl", "TensorNet-MatPES-PBE-v2025.1-PES", "TensorNet (matgl 4, MatPES PBE)",
              _MATGL_CITE, training="MatPES (PBE)"),
]}
# fmt: on


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered: {sorted(REGISTRY)}") from None


def _allow_download(allow: bool | None) -> bool:
    return bool(allow) if allow is not None else os.environ.get("UIPBENCH_ALLOW_DOWNLOAD", "") == "1"


# ----------------------------------------------------------------------------------------------------------------
# where the weights are


def mace_cache_dir() -> Path:
    """MACE's download cache (``$XDG_CACHE_HOME/mace``, default ``~/.cache/mace``), as mace computes it."""
    from mace.tools.utils import get_cache_dir

    return Path(get_cache_dir())


def mace_url(size: str) -> str:
    from mace.calculators.foundations_models import mace_mp_urls

    return mace_mp_urls[size]


def mace_cached_path(size: str) -> Path:
    """Where mace's downloader stores ``size``: URL file name with all but letters, digits and '_' removed."""
    url = mace_url(size)
    name = "".join(c for c in os.path.basename(url) if c.isalnum() or c in "_")
    return mace_cache_dir() / name


def weights_files(name: str, model_path: str | Path | None = None, allow_download: bool | None = None) -> list[Path]:
    """The weight files of ``name`` (downloading only when allowed); raise :class:`ModelNotAvailableError`."""
    spec = get_spec(name)
    if spec.family == "chgnet":
        if model_path is not None:
            return [_existing(Path(model_path), name, "a CHGNet checkpoint (.pth.tar)")]
        import chgnet

        d = Path(chgnet.__file__).parent / "pretrained" / spec.variant
        files = sorted(d.glob("*.pth.tar"))
        if not files:
            raise ModelNotAvailableError(
                f"{name}: no checkpoint *.pth.tar in {d} (it ships in the chgnet wheel; reinstall chgnet==0.4.2, "
                f"or pass model_path=<checkpoint>)"
            )
        return files[:1]
    if spec.family == "sevennet":
        if model_path is not None:
            return [_existing(Path(model_path), name, "a SevenNet checkpoint (.pth)")]
        _trust_packaged_pickles()
        from sevenn.util import pretrained_name_to_path

        p = Path(pretrained_name_to_path(spec.variant))
        return [
            _existing(
                p,
                name,
                "the SevenNet-0 checkpoint shipped in the sevenn 0.10.4 wheel "
                "(reinstall sevenn==0.10.4, or pass model_path=<checkpoint>)",
            )
        ]
    if spec.family == "mace":
        if model_path is not None:
            return [_existing(Path(model_path), name, "a MACE .model file")]
        cached = mace_cached_path(spec.variant)
        if cached.is_file():
            return [cached]
        url = mace_url(spec.variant)
        if not _allow_download(allow_download):
            raise ModelNotAvailableError(
                f"{name}: weights file {cached.name} not found in the MACE cache {cached.parent} (downloads "
                f"disabled: set UIPBENCH_ALLOW_DOWNLOAD=1 or allow_download=True to fetch it with mace's own "
                f"downloader). Supply it by downloading {url} to {cached} (the cache follows $XDG_CACHE_HOME), "
                f"or pass model_path=<path to the .model file>."
            )
        from mace.calculators.foundations_models import download_mace_mp_checkpoint

        try:
            return [Path(download_mace_mp_checkpoint(spec.variant))]
        except Exception as exc:
            raise ModelNotAvailableError(
                f"{name}: download of {url} failed ({type(exc).__name__}: {exc}); looked for {cached}. Download "
                f"the file elsewhere and put it at {cached}, or pass model_path=<path to the .model file>."
            ) from exc
    if spec.family == "matgl":
        files = ("model.json", "model.pt", "state.pt")
        if model_path is not None:
            d = Path(model_path)
            missing = [f for f in files if not (d / f).is_file()]
            if missing:
                raise ModelNotAvailableError(
                    f"{name}: model directory {d} lacks {missing} (a matgl >= 3 model directory holds "
                    f"{', '.join(files)}; save one with matgl's Potential.save or download "
                    f"materialyze/{spec.variant} from the Hugging Face hub)"
                )
            return [d / f for f in files]
        return [Path(p) for p in _hf_snapshot(name, spec.variant, allow_download, files)]
    raise AssertionError(spec.family)


def _hf_snapshot(name: str, model: str, allow_download: bool | None, files: tuple[str, ...]) -> list[str]:
    from huggingface_hub import constants, snapshot_download

    repo = f"materialyze/{model}"
    local_only = not _allow_download(allow_download) or os.environ.get("HF_HUB_OFFLINE", "") == "1"
    try:
        d = Path(snapshot_download(repo_id=repo, local_files_only=local_only))
    except Exception as exc:
        how = (
            "downloads disabled (set UIPBENCH_ALLOW_DOWNLOAD=1, unset HF_HUB_OFFLINE)"
            if local_only
            else f"download failed: {type(exc).__name__}"
        )
        raise ModelNotAvailableError(
            f"{name}: Hugging Face model {repo} (files {', '.join(files)}) not in the local hub cache "
            f"{constants.HF_HUB_CACHE}; {how}. Supply it with `huggingface-cli download {repo} --local-dir DIR` on "
            f"a machine with internet and pass model_path=DIR (or copy the hub cache)."
        ) from exc
    missing = [f for f in files if not (d / f).is_file()]
    if missing:
        raise ModelNotAvailableError(f"{name}: the cached snapshot {d} of {repo} lacks {missing}")
    return [str(d / f) for f in files]


def _trust_packaged_pickles() -> None:
    """Let torch.load unpickle the files that sevenn 0.10.4 and e3nn 0.4.4 ship in their wheels.

    Under torch >= 2.6 ``torch.load`` defaults to ``weights_only=True``, which rejects e3nn's ``constants.pt``
    (read at import) and SevenNet's checkpoint. Both come from the installed, pinned wheels (trusted); mace sets the
    same variable for the whole process when it is imported (see NOTES).
    """
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")


def _existing(p: Path, name: str, what: str) -> Path:
    if not p.is_file():
        raise ModelNotAvailableError(f"{name}: weights file {p} does not exist ({what})")
    return p


_CHECKSUMS: dict[tuple, str] = {}


def weights_checksum(name: str, model_path: str | Path | None = None) -> str:
    """sha256 over the weight files of ``name`` (file names and bytes): part of every result-store key."""
    files = weights_files(name, model_path, allow_download=False)
    sig = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if sig not in _CHECKSUMS:
        h = hashlib.sha256()
        for f in files:
            h.update(f.name.encode())
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        _CHECKSUMS[sig] = h.hexdigest()
    return _CHECKSUMS[sig]


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
    """Load model ``name`` (once per process when ``cache``); raise :class:`ModelNotAvailableError` when absent."""
    key = (name, str(model_path) if model_path else None, device)
    if cache and key in _LOADED:
        return _LOADED[key]
    import torch

    spec = get_spec(name)
    files = weights_files(name, model_path, allow_download=allow_download)
    t0 = time.perf_counter()
    with default_dtype(torch.float32):  # every loader starts from torch's stock default and cannot leak a change
        if spec.family == "chgnet":
            inner, dtype, direct = _load_chgnet(spec, files[0], model_path, device)
        elif spec.family == "sevennet":
            inner, dtype, direct = _load_sevennet(files[0], device)
        elif spec.family == "mace":
            inner, dtype, direct = _load_mace(files[0], device)
        else:
            inner, dtype, direct = _load_matgl(files[0].parent, device)
    model = LoadedModel(
        name=name,
        calc=GuardedCalculator(inner, dtype, name),
        weights=files,
        checksum=weights_checksum(name, model_path),
        dtype=dtype,
        direct_energy=direct,
        load_seconds=time.perf_counter() - t0,
    )
    if cache:
        _LOADED[key] = model
    return model


def _load_chgnet(spec: ModelSpec, file: Path, model_path, device):
    import torch
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator
    from pymatgen.io.ase import AseAtomsAdaptor

    if model_path is None:
        model = CHGNet.load(model_name=spec.variant, use_device=device, verbose=False)
    else:
        model = CHGNet.from_file(str(file)).to(device)
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

    _trust_packaged_pickles()
    from sevenn.calculator import SevenNetCalculator

    return SevenNetCalculator(model=str(file), device=device), torch.float32, None


def _load_mace(file: Path, device):
    import torch
    from mace.calculators import mace_mp

    # float64: relaxations need it and MACE-MP supports it; mace_mp sets the global default dtype, which the
    # surrounding default_dtype() guard restores
    calc = mace_mp(model=str(file), device=device, default_dtype="float64")
    return calc, torch.float64, None


def _load_matgl(directory: Path, device):
    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local directory: never reach out to the hub
    import matgl
    from matgl.ext.ase import PESCalculator

    potential = matgl.load_model(directory)
    return PESCalculator(potential, stress_unit="eV/A3"), torch.float32, None


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
        except Exception as exc:  # ModelNotAvailableError, or a load failure: say why
            row["reason"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    return pd.DataFrame(rows)
