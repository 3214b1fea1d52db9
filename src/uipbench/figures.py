"""Writing figures, tidy data and metrics so that reruns are byte-stable.

Every chapter writes, under :func:`uipbench.paths.figures_dir`, files that share the figure's stem:

* ``<stem>.png`` and ``<stem>.svg`` (fixed metadata and SVG hash salt: identical inputs give identical bytes),
* ``<stem>.csv``: the tidy data behind the figure (rows sorted, floats to :data:`SIG_DIGITS` significant digits),
* ``<chapter>_metrics.json``: the numbers the chapter reports (sorted keys, rounded floats).

**Tolerance.** A cold result store recomputes every model evaluation, and float32 models, BLAS and Sinkhorn
iterations reproduce their numbers only to about 1e-6 relative (measured: a bootstrap bound 0.615178 vs 0.615179,
a kernel eigenvalue of 1e-15 vs 3e-15). Rounding cannot hide that (a value next to a rounding boundary flips), so
the writers compare instead: a file that exists is rewritten only when its content moves by more than the stated
tolerance, else its bytes are kept:

* CSV and JSON: every number within :data:`REL_TOL` of its magnitude (in a CSV: of its column's largest magnitude)
  plus :data:`ABS_TOL`, every text, integer and missing value equal (a metrics file's ``provenance`` aside: a kept
  file keeps the provenance of the run that made its numbers);
* PNG: every pixel within :data:`PIXEL_TOL` of 255 levels (the SVG is kept or rewritten with its PNG).

So a rerun from a cold store leaves ``git status`` clean, and a change beyond the noise (a new point, a moved
label, another number) is written. ``UIPBENCH_EXACT_OUTPUTS=1`` writes every file regardless.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd

from . import paths

#: significant digits kept in metrics JSON and CSV floats: enough for any reported number, few enough that
#: last-bit noise of BLAS/threads does not change the committed bytes
SIG_DIGITS = 6
#: a committed number is kept when it moves by less than REL_TOL of its size (CSV: of its column's largest value)
#: plus ABS_TOL; the noise of a cold result store is about 1e-6 relative
REL_TOL = 1e-4
ABS_TOL = 1e-6
#: a committed figure is kept when no pixel of its PNG moves by more than this many of 255 levels (sub-pixel shifts
#: of antialiased marks from 1e-6 relative noise move pixels by at most one level; a moved mark or label by far more)
PIXEL_TOL = 3

mpl.rcParams["svg.hashsalt"] = "uipbench"  # deterministic SVG element ids
mpl.rcParams["svg.fonttype"] = "none"  # text stays text in the SVG (smaller, diffable)
mpl.rcParams["savefig.dpi"] = 150
mpl.rcParams["figure.dpi"] = 100

_PNG_METADATA = {"Software": None}
_SVG_METADATA = {"Date": None, "Creator": None}


class SavedPath(type(Path())):
    """A written file's path that shows itself as ``saved figures/x.csv`` (cells that end with a save call print it
    on the page: relative, not the machine's absolute path)."""

    def __repr__(self) -> str:
        return f"saved {paths.shown(self)}"


def out_dir() -> Path:
    d = SavedPath(paths.figures_dir())  # every file path under it shows itself relative (SavedPath)
    d.mkdir(parents=True, exist_ok=True)
    return d


def _exact() -> bool:
    return os.environ.get("UIPBENCH_EXACT_OUTPUTS", "") == "1"


def same_image(png_a: bytes, png_b: bytes, pixel_tol: int = PIXEL_TOL) -> bool:
    """True when two PNGs have the same size and no pixel differs by more than ``pixel_tol`` of 255 levels."""
    import matplotlib.image as mpimg

    if png_a == png_b:
        return True
    a, b = mpimg.imread(io.BytesIO(png_a), format="png"), mpimg.imread(io.BytesIO(png_b), format="png")
    return a.shape == b.shape and float(np.abs(a - b).max()) * 255 <= pixel_tol + 1e-9


def save_figure(fig, stem: str) -> list[Path]:
    """Write ``fig`` as ``<stem>.png`` and ``<stem>.svg`` (vector copy) with fixed metadata; an existing pair is kept
    when the new PNG is within :data:`PIXEL_TOL` of it (see the module docstring)."""
    d = out_dir()
    png, svg = d / f"{stem}.png", d / f"{stem}.svg"
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata=_PNG_METADATA, bbox_inches="tight")
    new = buf.getvalue()
    if not _exact() and png.exists() and svg.exists() and same_image(png.read_bytes(), new):
        return [png, svg]
    png.write_bytes(new)
    fig.savefig(svg, metadata=_SVG_METADATA, bbox_inches="tight")
    return [png, svg]


def round_sig(x: float, digits: int = SIG_DIGITS) -> float:
    """``x`` to ``digits`` significant digits (the precision of every committed number)."""
    if x == 0 or not math.isfinite(x):
        return x
    return float(f"{x:.{digits}g}")


def _clean(obj: Any) -> Any:
    """Make ``obj`` JSON-serialisable with rounded floats (NaN/inf -> None, numpy -> python)."""
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_clean(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        return round_sig(x) if math.isfinite(x) else None
    return obj


_PROVENANCE_PACKAGES = ("torch", "chgnet", "sevenn", "mace-torch", "matgl", "ase", "pymatgen", "dscribe", "gpaw")


def provenance() -> dict:
    """Where the numbers were made: CPU model and cores, GPU if any, profile, the complete parameters, the sha256 of
    the model weights and of the data files used, versions of the model packages.

    Deliberately no date or host name, so that a rerun on the same machine writes identical bytes.
    """
    import os
    import platform
    from importlib.metadata import PackageNotFoundError, version

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    versions = {}
    for pkg in _PROVENANCE_PACKAGES:
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    from .datasets import loaded_provenance
    from .models import weights_provenance

    parameters = os.environ.get("UIPBENCH_PARAMETERS")
    return {
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "gpu": gpu,
        "python": platform.python_version(),
        "profile": os.environ.get("UIPBENCH_PROFILE"),
        #: the notebook's complete parameters (defaults, profile and overrides: set by uipbench.pipeline) and
        #: whether they are the profile's own; None when the notebook ran outside the pipeline
        "parameters": json.loads(parameters) if parameters else None,
        "parameters_differ_from_profile": os.environ.get("UIPBENCH_PARAMETERS_CUSTOM") == "1",
        #: every weights file this process resolved: origin (pinned | user) and sha256
        "model_weights": weights_provenance(),
        #: every dataset this process loaded: sha256 per file (pinned and verified, or computed for project data)
        "data": loaded_provenance(),
        "packages": versions,
    }


def save_metrics(chapter: str, metrics: Mapping[str, Any]) -> Path:
    """Write ``<chapter>_metrics.json`` (sorted keys, floats to :data:`SIG_DIGITS` significant digits).

    A ``provenance`` entry (hardware, profile, package versions: :func:`provenance`) is added unless present.
    """
    path = out_dir() / f"{chapter}_metrics.json"
    metrics = dict(metrics)
    metrics.setdefault("provenance", provenance())
    text = json.dumps(_clean(metrics), indent=2, sort_keys=True) + "\n"
    if not _exact() and path.exists() and same_metrics(path.read_text(), text):
        return path
    path.write_text(text)
    return path


def same_metrics(old_json: str, new_json: str) -> bool:
    """:func:`same_numbers` of two metrics files, their ``provenance`` aside: a file kept within the tolerance keeps
    the provenance of the run that made its numbers (another CPU reproduces them within the tolerance)."""
    old, new = json.loads(old_json), json.loads(new_json)
    old.pop("provenance", None), new.pop("provenance", None)
    return same_numbers(old, new)


def _close(a: float, b: float, scale: float) -> bool:
    return abs(a - b) <= REL_TOL * scale + ABS_TOL


def same_numbers(old: Any, new: Any) -> bool:
    """True when two JSON documents have the same structure, texts, integers and nulls, and floats within
    :data:`REL_TOL` (relative to the old value) plus :data:`ABS_TOL`."""
    if isinstance(old, dict) and isinstance(new, dict):
        return old.keys() == new.keys() and all(same_numbers(old[k], new[k]) for k in old)
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(same_numbers(a, b) for a, b in zip(old, new, strict=True))
    if isinstance(old, float) and isinstance(new, float | int) and not isinstance(new, bool):
        return _close(old, new, abs(old))
    if isinstance(new, float) and isinstance(old, int) and not isinstance(old, bool):
        return _close(old, new, abs(old))
    return type(old) is type(new) and old == new


def load_metrics(chapter: str, directory: Path | None = None) -> dict:
    d = Path(directory) if directory is not None else paths.figures_dir()
    return json.loads((d / f"{chapter}_metrics.json").read_text())


def save_table(df: pd.DataFrame, stem: str, sort_by: list[str] | None = None) -> Path:
    """Write the tidy data behind a figure as ``<stem>.csv``, rows sorted (all columns by default)."""
    out = df.copy()
    keys = sort_by if sort_by is not None else list(out.columns)
    out = out.sort_values(keys, kind="stable").reset_index(drop=True)
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            out[col] = out[col].map(lambda v: round_sig(v) if pd.notna(v) else v)
    path = out_dir() / f"{stem}.csv"
    text = out.to_csv(index=False, lineterminator="\n")
    if not _exact() and path.exists() and same_table(path.read_text(), text):
        return path
    path.write_text(text)
    return path


def same_table(old_csv: str, new_csv: str) -> bool:
    """True when two CSV texts have the same columns, rows, texts and missing values, and numbers within
    :data:`REL_TOL` of their column's largest magnitude plus :data:`ABS_TOL`."""
    if old_csv == new_csv:
        return True
    try:
        a, b = pd.read_csv(io.StringIO(old_csv)), pd.read_csv(io.StringIO(new_csv))
    except (ValueError, pd.errors.ParserError):
        return False
    if list(a.columns) != list(b.columns) or a.shape != b.shape:
        return False
    for col in a.columns:
        x, y = a[col], b[col]
        if pd.api.types.is_float_dtype(x) and pd.api.types.is_numeric_dtype(y):
            xv, yv = x.to_numpy(float), y.to_numpy(float)
            if not np.array_equal(np.isnan(xv), np.isnan(yv)):
                return False
            ok = ~np.isnan(xv)
            scale = float(np.abs(xv[ok]).max()) if ok.any() else 0.0
            if not np.all(np.abs(xv[ok] - yv[ok]) <= REL_TOL * scale + ABS_TOL):
                return False
        elif not x.astype(str).equals(y.astype(str)):
            return False
    return True


# ----------------------------------------------------------------------------------------------------------------
# periodic table heatmap (used by the datasets and the transfer chapters)

_PT_ROWS = [
    "H . . . . . . . . . . . . . . . . He",
    "Li Be . . . . . . . . . . B C N O F Ne",
    "Na Mg . . . . . . . . . . Al Si P S Cl Ar",
    "K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr",
    "Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe",
    "Cs Ba La Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn",
    "Fr Ra Ac Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og",
    ". . . Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb Lu . .",
    ". . . Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No Lr . .",
]


def periodic_table_positions() -> dict[str, tuple[int, int]]:
    """Element -> (row, column) of the 18-column table, lanthanides/actinides in two rows below (gap row 7)."""
    pos = {}
    for r, line in enumerate(_PT_ROWS):
        row = r if r < 7 else r + 0.5
        for c, sym in enumerate(line.split()):
            if sym != ".":
                pos[sym] = (row, c)
    return pos


def periodic_table_heatmap(
    values: Mapping[str, float],
    ax=None,
    cmap: str = "viridis",
    label: str = "",
    fmt: str = "{:.0f}",
    vmin: float | None = None,
    vmax: float | None = None,
    center: float | None = None,
):
    """Draw ``values`` (element -> number) on a periodic table; elements without a value are grey outlines.

    ``center`` makes a diverging colour scale symmetric around that value (e.g. 0 for energy shifts).
    Returns the axes.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize, TwoSlopeNorm
    from matplotlib.patches import Rectangle

    if ax is None:
        _, ax = plt.subplots(figsize=(10, 5.4))
    finite = [v for v in values.values() if v is not None and np.isfinite(v)]
    lo = vmin if vmin is not None else (min(finite) if finite else 0.0)
    hi = vmax if vmax is not None else (max(finite) if finite else 1.0)
    if center is not None:
        span = max(abs(lo - center), abs(hi - center)) or 1.0
        norm = TwoSlopeNorm(vcenter=center, vmin=center - span, vmax=center + span)
    else:
        norm = Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1)
    cm = plt.get_cmap(cmap)
    for sym, (r, c) in periodic_table_positions().items():
        v = values.get(sym)
        has = v is not None and np.isfinite(v)
        face = cm(norm(v)) if has else (0.95, 0.95, 0.95, 1)
        ax.add_patch(Rectangle((c, -r), 0.95, 0.95, facecolor=face, edgecolor="0.6", lw=0.5))
        txt_color = "black"
        if has:
            rgb = np.array(face[:3])
            txt_color = "white" if rgb @ [0.299, 0.587, 0.114] < 0.5 else "black"
        ax.text(c + 0.475, -r + 0.62, sym, ha="center", va="center", fontsize=7, color=txt_color)
        if has:
            ax.text(c + 0.475, -r + 0.25, fmt.format(v), ha="center", va="center", fontsize=5, color=txt_color)
    ax.set_xlim(-0.2, 18.2)
    ax.set_ylim(-9.6, 1.1)
    ax.set_aspect("equal")
    ax.axis("off")
    sm = plt.cm.ScalarMappable(norm=norm, cmap=cm)
    cb = ax.figure.colorbar(sm, ax=ax, orientation="horizontal", fraction=0.04, pad=0.02, shrink=0.6)
    cb.set_label(label)
    return ax
