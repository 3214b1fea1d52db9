"""Every path the project uses, in one place (showyourwork style).

Directories that a user may want elsewhere come from environment variables:

``UIPBENCH_DATA``     where registered datasets live (default: a user cache dir). CI points it to ``../shared/data``.
``UIPBENCH_RESULTS``  the result store and other expensive, resumable outputs (default: ``<repo>/results``).
``UIPBENCH_FIGURES``  where notebooks write figures, tidy CSVs and metrics JSON (default: ``<repo>/figures``).
``UIPBENCH_BUILD``    executed notebooks (default: ``<repo>/_build/notebooks``).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

PACKAGE = Path(__file__).resolve().parent
#: repository root (src layout: <root>/src/uipbench); for a non-editable install this is site-packages' parent
ROOT = PACKAGE.parent.parent
NOTEBOOKS = ROOT / "notebooks"
PROFILES = ROOT / "profiles.yaml"
REGISTRY_DIR = PACKAGE / "registry"
PROJECT_DATA = ROOT / "data"  # the project's own (committed) data, e.g. the GPAW datasets


def _env_path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


#: the shared data directory beside a checkout (``../shared/data`` with its MANIFEST.tsv), as the Makefile uses it
SHARED_DATA = ROOT.parent / "shared" / "data"


def data_dir() -> Path:
    """Directory with the registered datasets, read at call time so tests can change it: ``UIPBENCH_DATA`` if set,
    else ``../shared/data`` beside the repository when it holds a ``MANIFEST.tsv`` (the same rule as the
    Makefile's), else the user cache directory (where downloads go)."""
    default = (
        SHARED_DATA
        if (SHARED_DATA / "MANIFEST.tsv").is_file()
        else Path(platformdirs.user_cache_dir("uipbench")) / "data"
    )
    return _env_path("UIPBENCH_DATA", default)


def results_dir() -> Path:
    """Directory of the result store and other resumable outputs (``UIPBENCH_RESULTS``)."""
    return _env_path("UIPBENCH_RESULTS", ROOT / "results")


#: where a notebook run outside the runner (papermill directly, an IDE) writes: never over the committed figures/
DIRECT_FIGURES = ROOT / "_build" / "direct" / "figures"


def figures_dir() -> Path:
    """Directory where notebooks write figures, tidy data and metrics: ``UIPBENCH_FIGURES``, which the runner
    (:mod:`uipbench.pipeline`) sets to the profile's directory (``figures/`` for the full profile); without it
    (papermill directly) :data:`DIRECT_FIGURES`, so only a profile run replaces the committed figures."""
    return _env_path("UIPBENCH_FIGURES", DIRECT_FIGURES)


def build_dir() -> Path:
    """Directory of executed notebooks (``UIPBENCH_BUILD``)."""
    return _env_path("UIPBENCH_BUILD", ROOT / "_build" / "notebooks")


def shown(path) -> str:
    """``path`` as a page may print it: relative to the repository (``figures/x.csv``), to the data directory
    (``$UIPBENCH_DATA/x``) or to the home directory (``~/x``): the machine-specific prefixes are replaced, the
    location stays readable (an error message must still say where a file goes)."""
    p = Path(path).expanduser().resolve()
    for base, label in ((ROOT, ""), (data_dir().resolve(), "$UIPBENCH_DATA/"), (Path.home().resolve(), "~/")):
        try:
            rel = p.relative_to(base)
        except ValueError:
            continue
        return f"{label}{rel}" if label or str(rel) != "." else "."
    return str(p)  # elsewhere (a scratch directory): the full path, which the reader needs to find it
