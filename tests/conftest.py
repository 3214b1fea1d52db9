"""Shared fixtures. Tests read the registered data from UIPBENCH_DATA (CI: ../shared/data)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SHARED = ROOT.parent / "shared" / "data"
if not os.environ.get("UIPBENCH_DATA") and (_SHARED / "MANIFEST.tsv").exists():
    os.environ["UIPBENCH_DATA"] = str(_SHARED)
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

QUICK_FIGURES = ROOT / "_build" / "quick" / "figures"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = os.environ.get("UIPBENCH_DATA")
    if not d or not Path(d).exists():
        pytest.skip("UIPBENCH_DATA is not set to a directory with the registered data (CI sets ../shared/data)")
    return Path(d)


@pytest.fixture(scope="session")
def quick_outputs():
    """Directory of the quick-profile figures and metrics; runs the quick pipeline once when they are absent.

    ``make test`` runs the quick profile before pytest, so this usually only points at its output.
    """

    def get(notebook: str) -> Path:
        if not (QUICK_FIGURES / f"{notebook}_metrics.json").exists():
            from uipbench import pipeline

            env = {"UIPBENCH_FIGURES": os.environ.get("UIPBENCH_FIGURES")}
            os.environ.pop("UIPBENCH_FIGURES", None)  # the quick profile's own figures_dir
            try:
                pipeline.run("quick", only=[notebook], log_output=False)
            finally:
                if env["UIPBENCH_FIGURES"] is not None:
                    os.environ["UIPBENCH_FIGURES"] = env["UIPBENCH_FIGURES"]
        return QUICK_FIGURES

    return get
