"""MP-r2SCAN, the transfer paper's training set (figshare doi 10.6084/m9.figshare.28245650.v2): fetch and parse.

The record's file list and checksums come from the figshare API (``GET {api}/articles/28245650/versions/2``:
``files[]`` with ``name``, ``size``, ``download_url``, ``supplied_md5``, ``computed_md5``). Each file is downloaded
with a progress bar into ``<data dir>/mp-r2scan/v2/`` (a partial download resumes with an HTTP ``Range``
request), its size and md5 are checked against the record, and only then is it moved into place; a mismatch is
refused with the file, both checksums and what to do. The record JSON is cached beside the files, and a verified
file carries a small ``.verified`` stamp (md5, size, mtime), so a second call neither downloads nor re-hashes.

The API base is ``https://api.figshare.com/v2``; ``api_base=`` or ``UIPBENCH_FIGSHARE_API`` point elsewhere (a
mirror, or the local server of the tests).

Layout parsed (:func:`parse_mp_r2scan`): the one the same group used for MPtrj (figshare 23713842, CHGNet's
training set), a JSON object ``{mp_id: {frame_id: {"structure": pymatgen dict, "energy_per_atom" [eV/atom] or
"uncorrected_total_energy"/"corrected_total_energy" [eV], "force" [eV/Å], "stress" [kBar, VASP sign],
"magmom" [μB] | null, ...}}}``, plain or gzipped; the searches for this work found no stored copy of the r2SCAN
record's own description, so the parser checks that layout and refuses anything else with the keys it found.
Frames come out in the project's form (:mod:`.training_data`): ``info["energy_r2scan_ev"]`` (total, eV),
``info["stress_r2scan_ev_per_a3"]`` (Voigt, ASE sign), ``arrays["forces_r2scan_ev_per_a"]``,
``arrays["magmoms_r2scan_bohr"]`` when present, ``info["id"]`` (frame id) and ``info["group"]`` (the mp id, so a
material's frames never straddle splits).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import paths
from ..datasets import ChecksumError, DataNotFoundError
from ..engine import progress_stream
from ..parsers import DataFormatError

ARTICLE_ID = 28245650
VERSION = 2
DOI = "10.6084/m9.figshare.28245650.v2"
DEFAULT_API = "https://api.figshare.com/v2"
ENV_API = "UIPBENCH_FIGSHARE_API"
FUNCTIONAL = "r2scan"


@dataclass(frozen=True)
class RecordFile:
    name: str
    size: int
    download_url: str
    md5: str  #: computed_md5 (figshare's own) or, when absent, supplied_md5


def api_base(api: str | None = None) -> str:
    return (api or os.environ.get(ENV_API) or DEFAULT_API).rstrip("/")


def record_url(api: str | None = None) -> str:
    return f"{api_base(api)}/articles/{ARTICLE_ID}/versions/{VERSION}"


def cache_dir(data_dir: str | Path | None = None) -> Path:
    return (Path(data_dir) if data_dir is not None else paths.data_dir()) / "mp-r2scan" / f"v{VERSION}"


def record_files(record: dict) -> list[RecordFile]:
    """The downloadable files of a figshare article record (API v2 JSON)."""
    out = []
    for f in record.get("files", []):
        md5 = f.get("computed_md5") or f.get("supplied_md5") or ""
        if f.get("supplied_md5") and f.get("computed_md5") and f["supplied_md5"] != f["computed_md5"]:
            raise ChecksumError(
                f"figshare record {ARTICLE_ID} v{VERSION}: file {f['name']} has supplied md5 {f['supplied_md5']} but "
                f"computed md5 {f['computed_md5']}: the upload itself is inconsistent; not downloading it"
            )
        if not md5:
            raise ChecksumError(f"figshare record {ARTICLE_ID}: file {f.get('name')} has no md5 to verify against")
        out.append(RecordFile(name=f["name"], size=int(f["size"]), download_url=f["download_url"], md5=md5))
    if not out:
        raise DataFormatError(f"figshare record {ARTICLE_ID} v{VERSION} lists no files")
    return out


def fetch_record(data_dir=None, api: str | None = None, timeout: float = 30.0, refresh: bool = False) -> dict:
    """The record JSON: from the cache (``record.json``) unless ``refresh``, else from the API (then cached)."""
    cached = cache_dir(data_dir) / "record.json"
    if cached.exists() and not refresh:
        return json.loads(cached.read_text())
    url = record_url(api)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            record = json.loads(r.read().decode())
    except Exception as exc:
        raise DataNotFoundError(
            f"MP-r2SCAN: cannot read the figshare record {url} ({type(exc).__name__}: {exc}). On a machine with "
            f"internet this needs no setting; otherwise point {ENV_API} (or api_base=) to a mirror of the API, or "
            f"place record.json and the files in {cached.parent}."
        ) from exc
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    tmp.replace(cached)
    return record


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _is_verified(path: Path, f: RecordFile) -> bool:
    st = _stamp(path)
    if not (path.exists() and st.exists()):
        return False
    s = path.stat()
    return json.loads(st.read_text()) == {"md5": f.md5, "size": s.st_size, "mtime_ns": s.st_mtime_ns}


def download_file(f: RecordFile, dest_dir: Path, timeout: float = 60.0, progress: bool = True) -> Path:
    """Download one record file (resuming a ``.part``), verify size and md5, move into place; return its path."""
    from tqdm import tqdm

    dest = dest_dir / f.name
    if _is_verified(dest, f):
        return dest
    dest_dir.mkdir(parents=True, exist_ok=True)
    if dest.exists():  # present but not stamped: verify it instead of downloading again
        part = dest
    else:
        part = dest.with_name(dest.name + ".part")
        have = part.stat().st_size if part.exists() else 0
        req = urllib.request.Request(f.download_url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                resumed = have and getattr(r, "status", 200) == 206
                mode = "ab" if resumed else "wb"
                with (
                    open(part, mode) as out,
                    tqdm(total=f.size, initial=have if resumed else 0, unit="B", unit_scale=True, desc=f.name,
                         disable=not progress, mininterval=2.0, file=progress_stream()) as bar,
                ):  # fmt: skip
                    for block in iter(lambda: r.read(1 << 20), b""):
                        out.write(block)
                        bar.update(len(block))
        except Exception as exc:
            raise DataNotFoundError(
                f"MP-r2SCAN: download of {f.name} from {f.download_url} failed ({type(exc).__name__}: {exc}); the "
                f"partial file {part} is kept and the next call resumes it"
            ) from exc
    size = part.stat().st_size
    digest = md5sum(part)
    if size != f.size or digest != f.md5:
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"MP-r2SCAN: {f.name} does not match figshare record {ARTICLE_ID} v{VERSION}: md5 {digest} "
            f"({size} bytes), the record says md5 {f.md5} ({f.size} bytes). The download is corrupt or the record "
            f"changed; the file was removed, call again to download it afresh (refresh=True re-reads the record)."
        )
    if part != dest:
        part.replace(dest)
    s = dest.stat()
    _stamp(dest).write_text(json.dumps({"md5": f.md5, "size": s.st_size, "mtime_ns": s.st_mtime_ns}))
    return dest


def fetch_mp_r2scan(data_dir=None, api: str | None = None, download: bool = True, progress: bool = True,
                    refresh: bool = False) -> list[Path]:  # fmt: skip
    """Verified local paths of every file of the record (downloading what is absent when ``download``)."""
    record = fetch_record(data_dir, api, refresh=refresh)
    d = cache_dir(data_dir)
    out = []
    for f in record_files(record):
        if not download and not _is_verified(d / f.name, f):
            raise DataNotFoundError(f"MP-r2SCAN: {d / f.name} is absent or unverified and download=False")
        out.append(download_file(f, d, progress=progress))
    return out


# ----------------------------------------------------------------------------------------------------------------
# parsing

_ENERGY_KEYS = ("energy_per_atom", "uncorrected_total_energy", "corrected_total_energy")


def _open_json(path: Path):
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt") as fh:
        return json.load(fh)


def frame_from_doc(mp_id: str, frame_id: str, doc: dict):
    """One MPtrj-layout frame document -> ``ase.Atoms`` in the project's labelled form."""
    from ase.stress import full_3x3_to_voigt_6_stress
    from pymatgen.core import Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    from .training_data import chgnet_kbar_to_ase_stress

    missing = [k for k in ("structure", "force") if k not in doc]
    if missing or not any(k in doc for k in _ENERGY_KEYS):
        raise DataFormatError(
            f"MP-r2SCAN frame {mp_id}/{frame_id}: keys {sorted(doc)} lack {missing or list(_ENERGY_KEYS)} "
            "(expected the MPtrj layout: structure, energy_per_atom or a total energy, force, stress, magmom)"
        )
    structure = Structure.from_dict(doc["structure"])
    atoms = AseAtomsAdaptor.get_atoms(structure)
    n = len(atoms)
    if "energy_per_atom" in doc:
        e_total = float(doc["energy_per_atom"]) * n
    else:
        e_total = float(doc.get("uncorrected_total_energy", doc.get("corrected_total_energy")))
    forces = np.asarray(doc["force"], dtype=float)
    if forces.shape != (n, 3):
        raise DataFormatError(f"MP-r2SCAN frame {mp_id}/{frame_id}: force shape {forces.shape}, {n} atoms")
    atoms.info.update({"id": str(frame_id), "group": str(mp_id), "mp_id": str(mp_id), "source": f"figshare:{DOI}",
                       f"energy_{FUNCTIONAL}_ev": e_total})  # fmt: skip
    atoms.arrays[f"forces_{FUNCTIONAL}_ev_per_a"] = forces
    if doc.get("stress") is not None:
        ase_stress = chgnet_kbar_to_ase_stress(np.asarray(doc["stress"], dtype=float).reshape(3, 3))
        atoms.info[f"stress_{FUNCTIONAL}_ev_per_a3"] = full_3x3_to_voigt_6_stress(ase_stress)
    if doc.get("magmom") is not None:
        atoms.arrays[f"magmoms_{FUNCTIONAL}_bohr"] = np.asarray(doc["magmom"], dtype=float).reshape(n)
    for k in ("bandgap", "energy_per_atom", "ef_per_atom"):
        if doc.get(k) is not None:
            atoms.info[f"mp_{k}"] = float(doc[k])
    return atoms


def parse_mp_r2scan(files: list[Path], limit: int | None = None) -> list:
    """Frames (``ase.Atoms``) of every JSON file of the record, in file-name, mp-id and frame-id order."""
    frames = []
    jsons = sorted((p for p in files if p.name.endswith((".json", ".json.gz"))), key=lambda p: p.name)
    if not jsons:
        raise DataFormatError(f"MP-r2SCAN: no .json / .json.gz among {[p.name for p in files]}")
    for p in jsons:
        raw = _open_json(p)
        if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
            raise DataFormatError(f"MP-r2SCAN {p.name}: expected {{mp_id: {{frame_id: frame}}}}, got {type(raw)}")
        for mp_id in sorted(raw):
            for frame_id in sorted(raw[mp_id]):
                frames.append(frame_from_doc(mp_id, frame_id, raw[mp_id][frame_id]))
                if limit is not None and len(frames) >= limit:
                    return frames
    return frames


def load_mp_r2scan(data_dir=None, api: str | None = None, download: bool = True, limit: int | None = None,
                   progress: bool = True) -> list:  # fmt: skip
    """Fetch (verified, cached) and parse MP-r2SCAN into the project's frames."""
    return parse_mp_r2scan(fetch_mp_r2scan(data_dir, api, download=download, progress=progress), limit=limit)
