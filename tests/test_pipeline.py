"""The runner: papermill in order, profile parameters injected, a failure named with its notebook and cell."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from uipbench import paths, pipeline


def _write_nb(path: Path, sources: list[str]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# t")] + [nbformat.v4.new_code_cell(s) for s in sources]
    nb.cells[1].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.mark.slow
def test_runner_names_failing_notebook_and_cell(tmp_path, monkeypatch, capsys):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _write_nb(nbs / "00_ok.ipynb", ["x = 1", "print(x)"])
    _write_nb(nbs / "01_broken.ipynb", ["x = 1", "y = x + 1", "raise ValueError('boom at purpose')"])
    _write_nb(nbs / "02_never.ipynb", ["x = 1"])
    (tmp_path / "profiles.yaml").write_text("quick:\n  notebooks:\n    01_broken: {x: 5}\n")
    monkeypatch.setattr(paths, "NOTEBOOKS", nbs)
    monkeypatch.setattr(paths, "PROFILES", tmp_path / "profiles.yaml")
    monkeypatch.setenv("UIPBENCH_BUILD", str(tmp_path / "build"))
    monkeypatch.setenv("UIPBENCH_FIGURES", str(tmp_path / "figs"))
    monkeypatch.setenv("UIPBENCH_RESULTS", str(tmp_path / "res"))
    code = pipeline.main(["--profile", "quick", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "01_broken" in err and "cell 4" in err and "boom at purpose" in err
    partial = tmp_path / "build" / "quick" / "01_broken.ipynb"
    assert partial.exists() and str(partial) in err  # kept for reading
    executed = nbformat.read(partial, as_version=4)
    assert any("x = 5" in c.source for c in executed.cells)  # parameters were injected
    assert not (tmp_path / "build" / "quick" / "02_never.ipynb").exists()  # the run stopped there
