"""Registry of every dataset the project reads: where it comes from, how to verify it, how to parse it.

Each :class:`Dataset` names its upstream files (URLs pinned to a commit or DOI, with sha256), its licence and
citation, and a parser. :func:`fetch` returns verified local paths below the data directory
(``UIPBENCH_DATA``, see :mod:`uipbench.paths`); :func:`load` parses them.

A file that is present is verified before use and a checksum mismatch is an error (never silently used). A file
that is absent is downloaded (real code: ``urllib``), verified, and only then moved into place; when the download
is impossible (no network, or a source that is not downloadable on this machine) the error names the file, the URL
and the environment variable to point elsewhere.

The per-file table lives in ``registry/files.tsv`` beside this module (dataset, path, bytes, sha256, url).
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import paths
from .parsers import (
    DataFormatError,
    parse_extxyz,
    parse_matpes_refs,
    parse_mp_element_refs,
    parse_rxnnet,
    parse_surfaces,
)

ENV_VAR = "UIPBENCH_DATA"


class DataError(RuntimeError):
    """Base class of the registry's errors."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A registered file is missing locally and could not be downloaded."""


class ChecksumError(DataError):
    """A local (or freshly downloaded) file does not have the registered sha256."""


@dataclass(frozen=True)
class RemoteFile:
    path: str  #: relative to the data directory
    url: str
    sha256: str | None  #: None only for sources whose upstream publishes no fixed file (see ``Dataset.note``)
    bytes: int | None = None


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    licence: str
    citation: str
    files: tuple[RemoteFile, ...] = ()
    parser: Callable[[list[Path]], object] | None = None
    #: False for sources that exist upstream but that this project cannot fetch on a machine without internet
    #: (large figshare records, model weights on GitHub releases / Hugging Face); they are listed so the book can
    #: say what is missing and how to supply it.
    offline: bool = True
    #: True for the project's own data, committed under ``data/`` (paths.PROJECT_DATA) and versioned by git:
    #: read from there whatever ``UIPBENCH_DATA`` says, never downloaded, no pinned sha256 (it grows over time)
    in_repository: bool = False
    homepage: str = ""
    note: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)


# ----------------------------------------------------------------------------------------------------------------
# verification and download


def sha256sum(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _download(url: str, dest: Path, timeout: float = 30.0) -> None:
    """Download ``url`` to ``dest`` atomically (temporary file in the same directory, then rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, prefix=f".{dest.name}.", delete=False) as tmp:
        tmp_path = Path(tmp.name)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                shutil.copyfileobj(response, tmp)
        except BaseException:
            tmp.close()
            tmp_path.unlink(missing_ok=True)
            raise
    tmp_path.replace(dest)


def _verify(file: RemoteFile, local: Path) -> None:
    if file.sha256 is None:
        return
    digest = sha256sum(local)
    if digest != file.sha256:
        raise ChecksumError(
            f"checksum mismatch for {local}: sha256 {digest}, registered {file.sha256} (upstream {file.url}). "
            f"The file is corrupt or a different version; delete it to download it again, or point {ENV_VAR} "
            "to a directory with the registered files."
        )


def fetch_file(file: RemoteFile, data_dir: Path | None = None, download: bool = True) -> Path:
    """Return the verified local path of one registered file, downloading it when absent."""
    root = Path(data_dir) if data_dir is not None else paths.data_dir()
    local = root / file.path
    if local.exists():
        _verify(file, local)
        return local
    if not download:
        raise DataNotFoundError(_missing_message(file, local, "downloads are disabled (download=False)"))
    try:
        _download(file.url, local)
    except Exception as exc:  # network refused, DNS failure, HTTP error, ...
        raise DataNotFoundError(_missing_message(file, local, f"download failed: {exc!r}")) from exc
    try:
        _verify(file, local)
    except ChecksumError:
        local.unlink(missing_ok=True)  # never leave an unverified download in place
        raise
    return local


def _missing_message(file: RemoteFile, local: Path, why: str) -> str:
    return (
        f"missing data file {file.path!r}: looked for {local}; {why}. Download it from {file.url} "
        f"(sha256 {file.sha256 or 'not pinned'}) into that place, or set {ENV_VAR} to a directory that holds "
        f"{file.path}."
    )


def fetch(name: str, data_dir: Path | None = None, download: bool = True) -> list[Path]:
    """Verified local paths of every file of dataset ``name`` (downloading what is absent)."""
    ds = get(name)
    if ds.in_repository:
        data_dir, download = paths.PROJECT_DATA, False
    if not ds.offline:
        raise DataNotFoundError(
            f"dataset {name!r} is not available offline: {ds.note} Source: {ds.homepage}. Place its files under "
            f"{Path(data_dir) if data_dir else paths.data_dir()} (set {ENV_VAR} to change that directory)."
        )
    return [fetch_file(f, data_dir=data_dir, download=download) for f in ds.files]


#: dataset name -> sha256 of its files, for every dataset this process loaded (the metrics' provenance)
_LOADED: dict[str, dict[str, str]] = {}


def loaded_provenance() -> dict[str, dict[str, str]]:
    """The data checksums behind a chapter's numbers: per dataset loaded in this process, each file's sha256
    (the pinned value for registered downloads, verified on fetch; computed for project-generated files)."""
    return {k: dict(v) for k, v in sorted(_LOADED.items())}


def _record_loaded(ds: Dataset, local: list[Path]) -> None:
    sums = {}
    for f, p in zip(ds.files, local, strict=True):
        sums[f.path] = f.sha256 or sha256sum(Path(p))
    _LOADED[ds.name] = sums


def load(name: str, data_dir: Path | None = None, download: bool = True):
    """Fetch and parse dataset ``name`` with its registered parser."""
    ds = get(name)
    local = fetch(name, data_dir=data_dir, download=download)
    _record_loaded(ds, local)
    if ds.parser is None:
        return local
    try:
        return ds.parser(local)
    except DataFormatError as exc:
        raise DataError(f"dataset {name!r}: {exc}") from exc


def available(name: str, data_dir: Path | None = None) -> tuple[bool, str]:
    """(True, '') when every file of ``name`` is present and verified locally, else (False, reason)."""
    try:
        fetch(name, data_dir=data_dir, download=False)
    except DataError as exc:
        return False, str(exc)
    return True, ""


# ----------------------------------------------------------------------------------------------------------------
# the registry


def _files_of(name: str) -> tuple[RemoteFile, ...]:
    table = paths.REGISTRY_DIR / "files.tsv"
    rows = []
    with open(table) as f:
        for row in csv.reader((line for line in f if not line.startswith("#")), delimiter="\t"):
            if row and row[0] == name:
                rows.append(RemoteFile(path=row[1], bytes=int(row[2]), sha256=row[3], url=row[4]))
    return tuple(rows)


# fmt: off
_MATCALC = "materialsvirtuallab/matcalc @ aa76b41e, src/matcalc/elemental_refs/"
_MATCALC_CITE = (
    "S. P. Ong et al., matcalc (github.com/materialsvirtuallab/matcalc); MatPES: A. D. Kaplan et al., "
    "arXiv:2503.04070 (2025); Materials Project: A. Jain et al., APL Mater. 1, 011002 (2013)."
)

REGISTRY: dict[str, Dataset] = {}


def register(ds: Dataset) -> Dataset:
    REGISTRY[ds.name] = ds
    return ds


register(Dataset(
    name="mp-surfaces",
    description="801 relaxed slabs of elemental crystals from the Materials Project surface database, with their "
                "PBE surface energies and work functions (SE-CGCNN copy).",
    licence="MIT (SE-CGCNN repository); underlying data CC-BY 4.0 (Materials Project)",
    citation="R. Tran et al., Surface energies of elemental crystals, Sci. Data 3, 160080 (2016); SE-CGCNN: "
             "GNscSHI/SE-CGCNN @ 68ca723c.",
    files=_files_of("mp-surfaces"),
    parser=parse_surfaces,
    homepage="https://github.com/GNscSHI/SE-CGCNN/tree/68ca723c604c49d5b6c83c6354b258970c997a15/data/surface_property2",
    tags=("surfaces",),
))
register(Dataset(
    name="mp-pbe-element-refs",
    description="Materials Project GGA (PBE) polymorphs of 88 elements with their energies per atom.",
    licence="BSD-3-Clause (matcalc); underlying data CC-BY 4.0 (Materials Project)",
    citation=_MATCALC_CITE,
    files=_files_of("mp-pbe-element-refs"),
    parser=parse_mp_element_refs,
    homepage=f"https://github.com/{_MATCALC}",
    tags=("surfaces", "transfer"),
))
register(Dataset(
    name="matpes-pbe-element-refs",
    description="MatPES PBE documents of the elemental reference solids (89 elements).",
    licence="BSD-3-Clause (matcalc); MatPES data CC-BY 4.0",
    citation=_MATCALC_CITE,
    files=_files_of("matpes-pbe-element-refs"),
    parser=parse_matpes_refs,
    homepage=f"https://github.com/{_MATCALC}",
    tags=("transfer",),
))
register(Dataset(
    name="matpes-r2scan-element-refs",
    description="MatPES r2SCAN documents of the elemental reference solids (89 elements; 63 on the same "
                "structures as the PBE file).",
    licence="BSD-3-Clause (matcalc); MatPES data CC-BY 4.0",
    citation=_MATCALC_CITE,
    files=_files_of("matpes-r2scan-element-refs"),
    parser=parse_matpes_refs,
    homepage=f"https://github.com/{_MATCALC}",
    tags=("transfer",),
))
register(Dataset(
    name="rxnnet-gga-r2scan",
    description="1,555 Materials Project compounds; 974 with both GGA/GGA+U and r2SCAN total energies per atom, "
                "formation energies and compositions (no structures).",
    licence="MIT (RxnNet repository); underlying data CC-BY 4.0 (Materials Project)",
    citation="R. Friis et al., RxnNet (github.com/rasmusfr/RxnNet @ 518a9fb8); Materials Project r2SCAN: "
             "R. Kingsbury et al., npj Comput. Mater. 8, 195 (2022).",
    files=_files_of("rxnnet-gga-r2scan"),
    parser=parse_rxnnet,
    homepage="https://github.com/rasmusfr/RxnNet/tree/518a9fb8d0f781a3e2755b4f2580348910d1de75",
    tags=("transfer",),
))

# Sources that exist upstream but cannot be fetched on a machine without internet. They are listed so that the
# book can say exactly what is missing and how to supply it; the model loaders (uipbench.models) hold the real
# download code for the weights.
register(Dataset(
    name="mp-r2scan",
    description="MP-r2SCAN training set of the transfer paper (238,247 structures with r2SCAN energies, forces, "
                "stresses).",
    licence="CC-BY 4.0",
    citation="X. Huang, B. Deng, P. Zhong, A. D. Kaplan, K. A. Persson, G. Ceder, arXiv:2504.05565 (2025).",
    offline=False,
    homepage="https://doi.org/10.6084/m9.figshare.28245650.v2",
    note="A 238k-structure figshare record (doi 10.6084/m9.figshare.28245650.v2); no network here. Fetched and "
         "parsed by uipbench.transfer.mp_r2scan.load_mp_r2scan (file list and md5 from the figshare API, "
         "cached under <data dir>/mp-r2scan/v2/; UIPBENCH_FIGSHARE_API points to a mirror).",
    tags=("transfer",),
))
register(Dataset(
    name="mace-mp-0-weights",
    description="MACE-MP-0 small/medium/large foundation-model weights.",
    licence="MIT (code), ASL (weights)",
    citation="I. Batatia et al., A foundation model for atomistic materials chemistry, arXiv:2401.00096.",
    offline=False,
    homepage="https://github.com/ACEsuit/mace-mp/releases",
    note="GitHub release files fetched by mace.calculators.mace_mp; no network here. Put a downloaded .model "
         "file in the MACE cache (~/.cache/mace) or pass its path to the loader.",
    tags=("weights",),
))
register(Dataset(
    name="matgl-weights",
    description="matgl >= 3 pretrained models (M3GNet, TensorNet).",
    licence="BSD-3-Clause",
    citation="C. Chen, S. P. Ong, Nat. Comput. Sci. 2, 718 (2022).",
    offline=False,
    homepage="https://huggingface.co/materialyze",
    note="Hugging Face hub models (organisation materialyze); no network here. Pass a local model directory "
         "(model.json, model.pt, state.pt) to the loader.",
    tags=("weights",),
))


# The project's own data, computed with GPAW by uipbench.dft and committed under data/dft/ (versioned by git, so
# no pinned sha256: the files grow as compute allows). Regenerate or extend with `python -m uipbench.dft`.
_GPAW_CITE = ("This repository (uipbench); GPAW: J. J. Mortensen et al., J. Chem. Phys. 160, 092503 (2024); "
              "r2SCAN: J. W. Furness et al., J. Phys. Chem. Lett. 11, 8208 (2020); libxc: S. Lehtola et al., "
              "SoftwareX 7, 1 (2018).")


def _project_files(*rel: str) -> tuple[RemoteFile, ...]:
    return tuple(RemoteFile(path=r, url=f"repository file data/{r} (project-generated)", sha256=None) for r in rel)


for _name, _file, _tags, _description in (
    ("gpaw-pbe-r2scan-pairs", "dft/pairs_pbe_r2scan.extxyz", ("transfer", "project-data"),
     "Project-generated GPAW PBE and r2SCAN energies, forces and stresses of small strained/rattled cells "
     "(elements and binary prototypes) on identical settings (dataset 1, legacy: 400 eV, k-mesh per frame; its "
     "labels fail the consistency checks for B/C/N/O/F and where the mesh switches — not for training)."),
    ("gpaw-pbe-r2scan-pairs-training", "dft/pairs_training_pbe_r2scan.extxyz", ("transfer", "project-data"),
     "Project-generated GPAW PBE and r2SCAN energies, forces and stresses of strained/rattled small cells at "
     "training grade: equilibrium start per group, one k-mesh per group, cutoff per element set, every exported "
     "group passing the label-consistency checks (dataset 1, training grade)."),
    ("gpaw-pbe-surfaces", "dft/surfaces_pbe.extxyz", ("surfaces", "project-data"),
     "Project-generated GPAW PBE static symmetric slabs of fcc metals and their oriented bulk references "
     "(total energies, gamma) (dataset 2)."),
    ("gpaw-pbe-eos", "dft/eos_pbe.extxyz", ("surfaces", "project-data"),
     "Project-generated GPAW PBE energy-volume points (lattice-constant validation and the slabs' lattice "
     "constants)."),
):
    register(Dataset(
        name=_name, description=_description, licence="CC-BY 4.0 (this project)", citation=_GPAW_CITE,
        files=_project_files(_file), parser=parse_extxyz, in_repository=True, homepage="data/dft/", tags=_tags,
        note="Committed in the repository's data/dft/; regenerate or extend with python -m uipbench.dft.",
    ))
# fmt: on


def get(name: str) -> Dataset:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; registered: {sorted(REGISTRY)}") from None


def summary() -> pd.DataFrame:
    """One row per registered dataset: name, files, size, offline availability here, licence."""
    rows = []
    for ds in REGISTRY.values():
        ok, why = available(ds.name) if ds.offline else (False, ds.note)
        rows.append(
            {
                "dataset": ds.name,
                "files": len(ds.files),
                "megabytes": round(sum(f.bytes or 0 for f in ds.files) / 1e6, 2),
                "available_here": ok,
                "licence": ds.licence,
                "source": ds.homepage,
                "why_not": "" if ok else why.split(";")[0],
            }
        )
    return pd.DataFrame(rows)
