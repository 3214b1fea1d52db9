"""Figures, tables and metrics: byte-stable reruns, and the stated tolerance against cold-store noise."""

from __future__ import annotations

import hashlib
import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from uipbench import figures, paths


def test_figures_are_byte_stable(tmp_path, monkeypatch):
    monkeypatch.setenv("UIPBENCH_FIGURES", str(tmp_path))
    digests = []
    for _ in range(2):
        fig, ax = plt.subplots()
        ax.plot(np.arange(5), np.arange(5) ** 2, "o-", label="x^2")
        ax.legend()
        written = figures.save_figure(fig, "demo")
        plt.close(fig)
        figures.save_table(pd.DataFrame({"b": [2.0, 1.0 / 3.0], "a": ["y", "x"]}), "demo", sort_by=["a"])
        figures.save_metrics("demo", {"mae": np.float64(0.1234567891), "n": np.int64(3), "nan": float("nan")})
        digests.append(
            [
                hashlib.sha256(p.read_bytes()).hexdigest()
                for p in [*written, tmp_path / "demo.csv", tmp_path / "demo_metrics.json"]
            ]
        )
    assert digests[0] == digests[1]
    written_metrics = json.loads((tmp_path / "demo_metrics.json").read_text())
    assert written_metrics.pop("provenance")["cpu_cores"] >= 1
    assert written_metrics == {"mae": 0.123457, "n": 3, "nan": None}
    assert (tmp_path / "demo.csv").read_text().splitlines()[1] == "0.333333,x"


def _scatter(y):
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.scatter(np.linspace(0, 1, len(y)), y, s=8)
    ax.set_title(f"n = {len(y)}")
    return fig


@pytest.fixture()
def out(tmp_path, monkeypatch):
    monkeypatch.setenv("UIPBENCH_FIGURES", str(tmp_path))
    monkeypatch.delenv("UIPBENCH_EXACT_OUTPUTS", raising=False)
    return tmp_path


def test_noise_below_the_tolerance_keeps_the_committed_bytes(out):
    """A cold store moves numbers by ~1e-6 relative: table, metrics and figure keep their bytes."""
    y = np.sin(np.linspace(0, 7, 300))
    df = pd.DataFrame({"id": [f"s{i}" for i in range(300)], "gamma_j_per_m2": 1.0 + y, "error": 1e-3 * y})
    files = [
        figures.save_table(df, "t"),
        figures.save_metrics("c", {"bound": 0.615178, "eig": 1e-15, "n": 3}),
        *figures.save_figure(_scatter(y), "f"),
    ]
    before = [p.read_bytes() for p in files]
    noisy = df.assign(gamma_j_per_m2=df.gamma_j_per_m2 * (1 + 1e-6), error=df.error + 1e-9)
    figures.save_table(noisy, "t")
    other_cpu = {**figures.provenance(), "cpu": "another CPU"}
    figures.save_metrics("c", {"bound": 0.615179, "eig": 3e-15, "n": 3, "provenance": other_cpu})
    figures.save_figure(_scatter(y * (1 + 1e-6)), "f")
    assert [p.read_bytes() for p in files] == before


@pytest.mark.parametrize("change", ["value", "row", "text", "count", "figure"])
def test_a_change_beyond_the_tolerance_is_written(out, change):
    y = np.sin(np.linspace(0, 7, 300))
    df = pd.DataFrame({"id": [f"s{i}" for i in range(300)], "gamma_j_per_m2": 1.0 + y})
    table, metrics = figures.save_table(df, "t"), figures.save_metrics("c", {"verdict": "supported", "n": 3})
    png = figures.save_figure(_scatter(y), "f")[0]
    before = table.read_bytes(), metrics.read_bytes(), png.read_bytes()
    if change == "value":
        figures.save_table(df.assign(gamma_j_per_m2=df.gamma_j_per_m2 + 1e-3), "t")
    elif change == "row":
        figures.save_table(df.iloc[:-1], "t")
    elif change == "text":
        figures.save_metrics("c", {"verdict": "not supported", "n": 3})
    elif change == "count":
        figures.save_metrics("c", {"verdict": "supported", "n": 4})
    else:
        figures.save_figure(_scatter(y + 0.05), "f")
    after = table.read_bytes(), metrics.read_bytes(), png.read_bytes()
    assert sum(a != b for a, b in zip(before, after, strict=True)) == 1


def test_exact_mode_rewrites(out, monkeypatch):
    df = pd.DataFrame({"x": [1.0, 2.0]})
    path = figures.save_table(df, "t")
    monkeypatch.setenv("UIPBENCH_EXACT_OUTPUTS", "1")
    figures.save_table(df * (1 + 1e-7), "t")
    assert path.read_text().splitlines()[1] == "1.0"  # rounded to 6 digits: the same text, written anew
    assert not figures.same_table("x\n1.0\n", "x\n1.01\n") and figures.same_table("x\n1.0\n", "x\n1.00001\n")


def test_metrics_record_the_checksums_of_the_data_they_were_made_from(tmp_path, monkeypatch, data_dir):
    from uipbench import datasets

    monkeypatch.setenv("UIPBENCH_FIGURES", str(tmp_path))
    datasets.load("mp-pbe-element-refs")
    prov = figures.provenance()["data"]
    pinned = {f.path: f.sha256 for f in datasets.get("mp-pbe-element-refs").files}
    assert prov["mp-pbe-element-refs"] == pinned  # the verified, pinned sha256 of every file
    datasets.load("gpaw-pbe-eos")  # project data: computed from the committed file
    ((path, digest),) = figures.provenance()["data"]["gpaw-pbe-eos"].items()
    assert digest == datasets.sha256sum(paths.PROJECT_DATA / path)
