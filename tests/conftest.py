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


@pytest.fixture
def put_bm_eos():
    """Write the E-V points of dataset 2's tasks for an exact Birch-Murnaghan curve (B' = 4) of fcc ``element``
    into ``store``: put(store, settings, a0_a, b_gpa, e0_ev=0, element="Cu")."""
    from ase.units import GPa

    from uipbench.dft.surfaces import eos_tasks

    def put(store, settings, a0_a: float, b_gpa: float, e0_ev: float = 0.0, element: str = "Cu"):
        v0 = a0_a**3 / 4
        for task in eos_tasks([element], settings):
            at = task.args.atoms
            eta = (v0 / at.get_volume()) ** (2 / 3)
            e = e0_ev + 9 * v0 * b_gpa * GPa / 16 * ((eta - 1) ** 3 * 4 + (eta - 1) ** 2 * (6 - 4 * eta))
            payload = {"energy_ev": e, "n_atoms": 1, "cell_a": at.cell[:].tolist(), "settings": settings.as_dict()}
            store.put(task.key, kind=task.kind, model=task.model, item=task.item, payload=payload)

    return put
