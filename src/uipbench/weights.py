"""Weight files of the registry's models: where they are looked for, their pinned sha256, verification before
anything reads them, downloads (only when allowed), provenance records and the safety of ``torch.load``.

======================  =====================================================  =====================================
name                    weights                                                where they are looked for
======================  =====================================================  =====================================
chgnet-0.3.0 / 0.2.0    shipped in the chgnet 0.4.2 wheel                      ``chgnet/pretrained/<version>/``
chgnet-r2scan           shipped in the chgnet 0.4.2 wheel (MP-r2SCAN transfer)  ``chgnet/pretrained/r2scan/``
sevennet-0              shipped in the sevenn 0.10.4 wheel (11 Jul 2024)        ``sevenn/pretrained_potentials/``
mace-mp-0-small/        GitHub releases of ACEsuit/mace-mp                     ``$XDG_CACHE_HOME/mace`` (default
medium/large                                                                   ``~/.cache/mace``)
m3gnet-mp-2021.2.8,     materialyzeai/matgl@e9cde229 ``pretrained_models/``    ``$UIPBENCH_DATA/matgl/pretrained_models/
tensornet(-r2scan),     (MP-2021.2.8; MatPES PBE / r2SCAN; weights written     <name>/`` (model.json, model.pt,
m3gnet(-r2scan)         before matgl 3.0; see model_registry for validity)     state.pt)
======================  =====================================================  =====================================

**Pinned weights.** Every file above has its sha256 pinned in :data:`PINNED` (wheel files: computed from the
pinned wheels; matgl: the data directory's MANIFEST; MACE: see the comment there) and is verified before anything
reads it; a mismatch raises :class:`WeightsChecksumError` naming the file, both hashes and the fix, and
:func:`uipbench.models.availability` reports it as unavailable. A user's own file is accepted only when passed
explicitly (``model_path``); its sha256 is recorded (:func:`weights_provenance`, in every metrics file's
provenance).

**Safe loading.** CHGNet and SevenNet checkpoints and matgl's files are read with ``torch.load(weights_only=True)``.
A MACE ``.model`` file is a pickled module that only the unsafe mode can read: that mode is confined to the one
``mace_mp`` call (:func:`_unsafe_torch_load`), and the ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` that mace's import
sets for the whole process is restored (:func:`_import`).

When weights cannot be had, :class:`ModelNotAvailableError` says which file, where it was looked for and how to
supply it. Downloads are attempted only when ``allow_download`` is true (or ``UIPBENCH_ALLOW_DOWNLOAD=1``); the
default is to fail fast on a machine without internet (matgl would otherwise retry for ~46 s).

The weights checksum (:func:`weights_checksum`, sha256 of the weight files) enters the result-store key, so a
different file under the same name is never served stale results.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .model_registry import ModelNotAvailableError, ModelSpec, get_spec
from .paths import shown


def _allow_download(allow: bool | None) -> bool:
    return bool(allow) if allow is not None else os.environ.get("UIPBENCH_ALLOW_DOWNLOAD", "") == "1"


# ----------------------------------------------------------------------------------------------------------------
# pinned weights: every file the registry loads by name has its sha256 here, checked before it is read


class WeightsChecksumError(ModelNotAvailableError):
    """A weights file the registry knows does not have its pinned sha256 (or none is pinned): it is not loaded."""


class UnsafeWeightsError(ModelNotAvailableError):
    """A checkpoint that torch's weights-only unpickler refused (it holds code or unexpected objects): not loaded."""


@dataclass(frozen=True)
class PinnedFile:
    #: where the file is: a path relative to site-packages (``chgnet/...``), to the data directory (``matgl/...``)
    #: or, for MACE, the release URL (the cache file name is derived from it, as mace does)
    path: str
    sha256: str
    bytes: int
    #: where the pin comes from
    source: str


_CHGNET_WHEEL = "computed from the files of the chgnet 0.4.2 wheel (constraints.txt pins chgnet==0.4.2)"
_SEVENN_WHEEL = "computed from the file of the sevenn 0.10.4 wheel (constraints.txt pins sevenn==0.10.4)"
# ACEsuit publishes no checksum for the MACE-MP-0 release files (neither the mace-torch source, which downloads them
# without any check, nor the README of ACEsuit/mace-mp). These values (and byte counts) were recorded independently
# by several unrelated public repositories that downloaded the files from exactly these URLs (found by searching
# stored public source for the file names; 5+ agreeing records each for small and medium, 3+ for large, none
# disagreeing). They are a corroborated pin, not a signature of the authors: a file that matches is what everyone
# else downloaded; a file that does not match is refused. Nothing here was downloaded on this machine.
_MACE_PUBLIC = "agreeing sha256 of independent public downloads of this URL (no checksum published by ACEsuit)"
_MATGL_DATA = (
    "shared/data/MANIFEST.tsv: byte-exact copy of materialyzeai/matgl@e9cde2291acd0b4c4a342428e7dd5e4d596b7bf9 "
    "pretrained_models/ (matgl 2.0.4, weights written before matgl 3.0)"
)
_MATGL_RAW = "https://raw.githubusercontent.com/materialyzeai/matgl/e9cde2291acd0b4c4a342428e7dd5e4d596b7bf9/"
_MACE_RELEASE = "https://github.com/ACEsuit/mace-mp/releases/download/mace_mp_0/"

# fmt: off
PINNED: dict[str, tuple[PinnedFile, ...]] = {
    "chgnet-0.3.0": (PinnedFile(
        "chgnet/pretrained/0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar",
        "d14ab7c0f093efe64b60a7bcd540bca10e74fb7f46c86108a079af60524659d1", 4863221, _CHGNET_WHEEL),),
    "chgnet-0.2.0": (PinnedFile(
        "chgnet/pretrained/0.2.0/chgnet_0.2.0_e30f77s348m32.pth.tar",
        "ef624f78b6db9d315b4ef256f1bb3207449924191b91720dc17d3f60c5df980e", 4639235, _CHGNET_WHEEL),),
    "chgnet-r2scan": (PinnedFile(
        "chgnet/pretrained/r2scan/chgnet_r2scan_transfer_learning_e15f36s161m23.pth.tar",
        "8eba3db0f35a2788bb3ae22885ad340591e27996f213c6643af522a633b50dad", 4872387, _CHGNET_WHEEL),),
    "sevennet-0": (PinnedFile(
        "sevenn/pretrained_potentials/SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth",
        "7052cb42b7b3be42b40b97fa0d21077a48c54b5548948fc4dcf346629f813c36", 10268648, _SEVENN_WHEEL),),
    "mace-mp-0-small": (PinnedFile(
        _MACE_RELEASE + "2023-12-10-mace-128-L0_energy_epoch-249.model",
        "2ddb079cee0e131eaaf6912ba581b394551ead283e95c99cfe78c605d10b5736", 32581838, _MACE_PUBLIC),),
    "mace-mp-0-medium": (PinnedFile(
        _MACE_RELEASE + "2023-12-03-mace-128-L1_epoch-199.model",
        "01bfe22100139f424713cf921144e5509cbe353d67aa9fa1be9c6e1e0ed35845", 44422970, _MACE_PUBLIC),),
    "mace-mp-0-large": (PinnedFile(
        _MACE_RELEASE + "MACE_MPtrj_2022.9.model",
        "f80e992b65ab8f88fdf26964511357c022e92704e4d9bcd086652635a8495b32", 133803220, _MACE_PUBLIC),),
    "m3gnet-mp-2021.2.8": (
        PinnedFile("matgl/pretrained_models/M3GNet-MP-2021.2.8-PES/model.json",
                   "05e7db8676ceb37eb07848aff49c556b188699e1035f3df0cbbf1a2c4959148f", 5211, _MATGL_DATA),
        PinnedFile("matgl/pretrained_models/M3GNet-MP-2021.2.8-PES/model.pt",
                   "62678f76fbc5d8997ea1d7f3c4bf086df200102125c802b32b08ce14fbcde25b", 672717, _MATGL_DATA),
        PinnedFile("matgl/pretrained_models/M3GNet-MP-2021.2.8-PES/state.pt",
                   "a9aa723705bd1a242ec8749332f137811c4a94e17995a564f8f94a9aca68061b", 1228529, _MATGL_DATA),
    ),
    "m3gnet": (
        PinnedFile("matgl/pretrained_models/M3GNet-MatPES-PBE-v2025.1-PES/model.json",
                   "6ab754c8593efef1005a37882a27b25417153bfd0b5624d0943901f18116b552", 5593, _MATGL_DATA),
        PinnedFile("matgl/pretrained_models/M3GNet-MatPES-PBE-v2025.1-PES/model.pt",
                   "94b511e45d576cb38a54e2d952fac1eb66e179fb3cddf48ccd86bf4f689f86df", 4038, _MATGL_DATA),
        PinnedFile("matgl/pretrained_models/M3GNet-MatPES-PBE-v2025.1-PES/state.pt",
                   "9f710eac88ec2c666c8e488883c59768cf11c116f177e9d82896ae56f3fc338d", 2733214, _MATGL_DATA),
    ),
    "tensornet": (
        PinnedFile("matgl/pretrained_models/TensorNet-MatPES-PBE-v2025.1-PES/model.json",
                   "cf7d1db6c89da617245021a8fde16fb79db5bc06f7b6e11ee837f06eb32137d8", 5609, _MATGL_DATA),
        PinnedFile("matgl/pretrained_models/TensorNet-MatPES-PBE-v2025.1-PES/model.pt",
                   "1cba95766c872082eec349a7e417a28461aea450b655a0301eec060a985fdd71", 4038, _MATGL_DATA),
        PinnedFile("matgl/pretrained_models/TensorNet-MatPES-PBE-v2025.1-PES/state.pt",
                   "d2dfa51a65d23a47fd935eb0628177d2a1088584562091ef3350ce3a002fce6a", 3403519, _MATGL_DATA),
    ),
    "m3gnet-r2scan": (
        PinnedFile("matgl/pretrained_models/M3GNet-MatPES-r2SCAN-v2025.1-PES/model.json",
                   "50fc9e0db095c22412c97fb5436dc8bcf6a58eda4c87c3e5090fe5bdfa3d6b19", 5289, _MATGL_DATA),
        PinnedFile("matgl/pretrained_models/M3GNet-MatPES-r2SCAN-v2025.1-PES/model.pt",
                   "3ebc5de43da48b2e042e6258e5209c0d13d43a5ba566e8fdcb52df091d042602", 4038, _MATGL_DATA),
        PinnedFile("matgl/pretrained_models/M3GNet-MatPES-r2SCAN-v2025.1-PES/state.pt",
                   "b9b3234afc655b282c7930ff32cb5a5f98edde4a93475b0d4605b59c161fe483", 2733214, _MATGL_DATA),
    ),
    "tensornet-r2scan": (
        PinnedFile("matgl/pretrained_models/TensorNet-MatPES-r2SCAN-v2025.1-PES/model.json",
                   "408b29cb197ae7ebfb72cff6685745bb112018be983ab23040669a4c7c4b87df", 5305, _MATGL_DATA),
        PinnedFile("matgl/pretrained_models/TensorNet-MatPES-r2SCAN-v2025.1-PES/model.pt",
                   "0444e7e9396e1b34be25e33821373c93eedacd214b23d686323e19740495c23d", 4038, _MATGL_DATA),
        PinnedFile("matgl/pretrained_models/TensorNet-MatPES-r2SCAN-v2025.1-PES/state.pt",
                   "b1f87297bac09ada6f0e2f41d362d784f894ff0f1f031478187c55ec661b71ba", 3403519, _MATGL_DATA),
    ),
}
# fmt: on

_FILE_HASHES: dict[tuple, str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of one file's bytes (cached by path, size and modification time)."""
    st = path.stat()
    sig = (str(path), st.st_size, st.st_mtime_ns)
    if sig not in _FILE_HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _FILE_HASHES[sig] = h.hexdigest()
    return _FILE_HASHES[sig]


def _verify(name: str, path: Path, pin: PinnedFile, remedy: str) -> None:
    """Refuse ``path`` unless its sha256 is the pinned one; the message names the file, both hashes and the fix."""
    actual = file_sha256(path)
    if actual != pin.sha256:
        raise WeightsChecksumError(
            f"{name}: checksum mismatch for {path}: sha256 {actual} ({path.stat().st_size} bytes), expected "
            f"{pin.sha256} ({pin.bytes} bytes; {pin.source}). The file was not loaded. {remedy} If it is your own "
            f"file on purpose, pass it explicitly as model_path (its sha256 then goes into the provenance)."
        )


#: every weights lookup of this process: model name -> files with their sha256 and origin (pinned / user)
_RESOLVED: dict[str, dict] = {}


def _record(name: str, files: list[Path], origin: str, pins: tuple[PinnedFile, ...] = ()) -> None:
    _RESOLVED[name] = {
        "origin": origin,
        "files": {(pin.path if pin else f.name): file_sha256(f) for f, pin in zip(files, pins or [None] * len(files))},
    }


def weights_provenance() -> dict:
    """The weight files this process resolved, by model: ``origin`` (``pinned``, or ``user`` for an explicit
    ``model_path``) and the sha256 of each file; every metrics file records it (:func:`uipbench.figures.provenance`).
    """
    return {k: dict(v) for k, v in sorted(_RESOLVED.items())}


# ----------------------------------------------------------------------------------------------------------------
# torch.load safety

_UNSAFE_VAR = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


@contextmanager
def _restore_unsafe_flag():
    """Restore ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` to its value before the block: mace sets it to 1 for the whole
    process when it is imported (mace/__init__.py, mace/calculators/mace.py), which would make every later
    ``torch.load`` without an explicit ``weights_only`` unpickle arbitrary objects."""
    old = os.environ.get(_UNSAFE_VAR)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(_UNSAFE_VAR, None)
        else:
            os.environ[_UNSAFE_VAR] = old


@contextmanager
def _safe_torch_load():
    """torch.load under torch's safe default (``weights_only=True``) for the block: the variable is unset inside
    and restored afterwards."""
    with _restore_unsafe_flag():
        os.environ.pop(_UNSAFE_VAR, None)
        yield


@contextmanager
def _unsafe_torch_load():
    """The one place where ``torch.load`` may unpickle arbitrary objects, for a third-party loader that cannot do
    otherwise (MACE: a ``.model`` file is a whole pickled ``torch.nn.Module``; no weights-only format exists). Only
    entered for a file whose sha256 matched its pin, or for the user's own file passed explicitly as model_path;
    the variable is restored when the block ends (and torch's default dtype by the surrounding guard)."""
    with _restore_unsafe_flag():
        os.environ[_UNSAFE_VAR] = "1"
        yield


def _import(module: str):
    """Import a model package without leaking the unsafe-load variable into the process.

    e3nn (imported by mace and sevenn) reads its packaged ``constants.pt`` at import time; that file holds Python
    ``slice`` objects, so it is read under the weights-only unpickler with ``slice`` allowlisted (no unsafe mode).
    mace's own import sets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``: restored afterwards.
    """
    import importlib

    import torch

    with _restore_unsafe_flag(), torch.serialization.safe_globals([slice]):
        return importlib.import_module(module)


def _sevenn_safe_globals() -> list:
    """Non-tensor types in a SevenNet checkpoint's config (numpy scalars/arrays, slices): allowlisted for the
    weights-only unpickler (the same numpy types matgl allowlists), so no code runs while reading it."""
    from numpy._core.multiarray import _reconstruct

    return [
        (_reconstruct, "numpy.core.multiarray._reconstruct"),
        _reconstruct,
        np.ndarray,
        np.dtype,
        np.dtypes.Float32DType,
        np.dtypes.Float64DType,
        np.dtypes.Int32DType,
        np.dtypes.Int64DType,
        slice,
    ]


# ----------------------------------------------------------------------------------------------------------------
# where the weights are


def mace_cache_dir() -> Path:
    """MACE's download cache (``$XDG_CACHE_HOME/mace``, default ``~/.cache/mace``), as mace computes it."""
    return Path(_import("mace.tools.utils").get_cache_dir())


def mace_url(size: str) -> str:
    return _import("mace.calculators.foundations_models").mace_mp_urls[size]


def mace_cached_path(size: str) -> Path:
    """Where mace's downloader stores ``size``: URL file name with all but letters, digits and '_' removed."""
    url = mace_url(size)
    name = "".join(c for c in os.path.basename(url) if c.isalnum() or c in "_")
    return mace_cache_dir() / name


def matgl_data_dir(variant: str) -> Path:
    """The matgl model directory in the data directory (``UIPBENCH_DATA``): ``matgl/pretrained_models/<variant>``."""
    from . import paths

    return paths.data_dir() / "matgl" / "pretrained_models" / variant


def _download_verified(url: str, dest: Path, pin: PinnedFile, name: str) -> Path:
    """Download ``url`` to a temporary file, verify its sha256 against ``pin``, only then move it to ``dest``."""
    import shutil
    import tempfile
    import urllib.request

    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, prefix=".part-", delete=False) as tmp:
        part = Path(tmp.name)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
            shutil.copyfileobj(response, out)
        _verify(name, part, pin, f"The download of {url} does not match its pin; it was deleted.")
        part.replace(dest)
    finally:
        part.unlink(missing_ok=True)
    return dest


def weights_files(name: str, model_path: str | Path | None = None, allow_download: bool | None = None) -> list[Path]:
    """The weight files of ``name``, verified against their pinned sha256 (downloading only when allowed).

    ``model_path`` is the user's own file (or matgl directory): accepted as given, its sha256 recorded
    (:func:`weights_provenance`). Raise :class:`ModelNotAvailableError` (:class:`WeightsChecksumError` for a file
    whose hash is not the pinned one).
    """
    spec = get_spec(name)
    pins = PINNED[name]
    if model_path is not None:  # the user's own files: the registry's validity record is about the pinned ones
        files = _user_files(name, spec, Path(model_path))
        _record(name, files, "user")
        return files
    if spec.unavailable:
        raise ModelNotAvailableError(f"{name}: {spec.variant} is unavailable: {spec.unavailable}")
    check_runtime(spec)
    if spec.family in ("chgnet", "sevennet"):
        package = "chgnet" if spec.family == "chgnet" else "sevenn"
        root = Path(_import(package).__file__).resolve().parent.parent  # site-packages
        p = root / pins[0].path
        if not p.is_file():
            raise ModelNotAvailableError(
                f"{name}: weights file {p} does not exist (it ships in the {package} wheel; reinstall it with "
                f"constraints.txt, or pass model_path=<checkpoint>)"
            )
        _verify(
            name,
            p,
            pins[0],
            f"Reinstall the {package} wheel (pip install --force-reinstall -c constraints.txt {package}).",
        )
        files = [p]
    elif spec.family == "mace":
        files = [_mace_file(name, spec, pins[0], allow_download)]
    else:
        files = _matgl_files(name, spec, pins, allow_download)
    _record(name, files, "pinned", pins)
    return files


def check_runtime(spec: ModelSpec) -> None:
    """Refuse pinned weights whose declared runtime (``spec.runtime``, e.g. ``matgl==4.1.2``) is not the installed
    one: their validation (and the loader adapter, which replaces one method of matgl's layer) holds for that
    version only."""
    if not spec.runtime:
        return
    from importlib import metadata

    package, _, version = spec.runtime.partition("==")
    try:
        installed = metadata.version(package)
    except metadata.PackageNotFoundError:
        installed = "not installed"
    if installed != version:
        raise ModelNotAvailableError(
            f"{spec.name}: the pinned weights {spec.variant} were validated under {spec.runtime}, but {package} "
            f"{installed} is installed; they are not loaded (install {spec.runtime} with constraints.txt, or "
            f"validate them again under {installed}: tests/test_matgl_models.py)."
        )


def _user_files(name: str, spec: ModelSpec, p: Path) -> list[Path]:
    if spec.family == "matgl":
        names = ("model.json", "model.pt", "state.pt")
        missing = [f for f in names if not (p / f).is_file()]
        if missing:
            raise ModelNotAvailableError(
                f"{name}: model directory {p} lacks {missing} (a matgl model directory holds {', '.join(names)}; "
                f"save one with matgl's Potential.save)"
            )
        return [p / f for f in names]
    what = {"chgnet": "a CHGNet checkpoint (.pth.tar)", "sevennet": "a SevenNet checkpoint (.pth)"}
    return [_existing(p, name, what.get(spec.family, "a MACE .model file"))]


def _mace_file(name: str, spec: ModelSpec, pin: PinnedFile, allow_download: bool | None) -> Path:
    cached = mace_cached_path(spec.variant)
    url = mace_url(spec.variant)
    if url != pin.path:  # a mace-torch release that moved the file: its pin does not apply
        raise WeightsChecksumError(
            f"{name}: mace-torch now downloads {url}, but the pinned file is {pin.path}; no sha256 is pinned for "
            f"the new URL, so it is not loaded. Pass the file explicitly as model_path=<path> (your own file)."
        )
    remedy = f"Delete it and download {url} to {cached} again (or set UIPBENCH_ALLOW_DOWNLOAD=1)."
    if cached.is_file():
        _verify(name, cached, pin, remedy)
        return cached
    if not _allow_download(allow_download):
        raise ModelNotAvailableError(
            f"{name}: weights file {cached.name} not found in the MACE cache {shown(cached.parent)} (downloads "
            f"disabled: set UIPBENCH_ALLOW_DOWNLOAD=1 or allow_download=True to fetch it; it is verified against "
            f"its pinned sha256 before it is moved into the cache). Supply it by downloading {url} to "
            f"{shown(cached)} (the cache follows $XDG_CACHE_HOME), or pass model_path=<path to the .model file>."
        )
    try:
        return _download_verified(url, cached, pin, name)
    except WeightsChecksumError:
        raise
    except Exception as exc:
        raise ModelNotAvailableError(
            f"{name}: download of {url} failed ({type(exc).__name__}: {exc}); looked for {cached}. Download "
            f"the file elsewhere and put it at {cached}, or pass model_path=<path to the .model file>."
        ) from exc


def _matgl_files(name: str, spec: ModelSpec, pins: tuple[PinnedFile, ...], allow_download: bool | None) -> list[Path]:
    from . import paths

    d = matgl_data_dir(spec.variant)
    files = []
    for pin in pins:
        p = paths.data_dir() / pin.path
        if not p.is_file():
            if not _allow_download(allow_download):
                raise ModelNotAvailableError(
                    f"{name}: weights file {p} not found (the data directory {paths.data_dir()}, UIPBENCH_DATA, holds "
                    f"a byte-exact copy of materialyzeai/matgl@e9cde229 pretrained_models/{spec.variant}/; downloads "
                    f"disabled: set UIPBENCH_ALLOW_DOWNLOAD=1 to fetch {_MATGL_RAW}{pin.path.removeprefix('matgl/')}"
                    f"). The matgl >= 3 models on the Hugging Face hub (materialyze/{spec.variant}) have no pinned "
                    f"sha256 here: download one with `huggingface-cli download materialyze/{spec.variant} "
                    f"--local-dir DIR` and pass model_path=DIR (your own directory, its sha256 recorded)."
                )
            _download_verified(_MATGL_RAW + pin.path.removeprefix("matgl/"), p, pin, name)
        _verify(name, p, pin, f"Restore the file from {_MATGL_RAW}{pin.path.removeprefix('matgl/')} into {d}.")
        files.append(p)
    return files


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
