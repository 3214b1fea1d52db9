"""The runner: papermill in order, profile parameters injected, a failure named with its notebook and cell."""

from __future__ import annotations

import json
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


# ----------------------------------------------------------------------------------------------------------------
# parameters are checked before any notebook starts (issue 12)


@pytest.fixture
def no_notebook_runs(monkeypatch, tmp_path):
    """The real notebooks and profiles; any attempt to execute a notebook fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a notebook was started although the parameters are invalid")

    monkeypatch.setattr(pipeline, "run_notebook", refuse)
    monkeypatch.setenv("UIPBENCH_BUILD", str(tmp_path / "build"))
    monkeypatch.setenv("UIPBENCH_FIGURES", str(tmp_path / "figs"))
    monkeypatch.setenv("UIPBENCH_RESULTS", str(tmp_path / "res"))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # a model list given as a string (was KeyError: 'c'), and chgnet-9.9 that way (was KeyError: 'chgnet-9.9')
        (["-p", "01_surface_energies.models=chgnet-9.9"], "01_surface_energies.models: expected a list of str"),
        (["-p", "01_surface_energies.models=chgnet-0.3.0"], "-p '01_surface_energies.models=[chgnet-0.3.0]'"),
        (["-p", "01_surface_energies.models=[chgnet-9.9]"], "unknown model 'chgnet-9.9'; valid: chgnet-0.3.0, "),
        (["-p", "01_surface_energies.model_paths={chgnet-9.9: /x}"], "unknown model 'chgnet-9.9'"),
        (["-p", "01_surface_energies.per_element=two"], "per_element: expected an int (default 2), got str 'two'"),
        (["-p", "01_surface_energies.per_elemnt=3"], "unknown parameter 'per_elemnt' (did you mean 'per_element'?)"),
        (["-p", "01_surface_energie.per_element=3"], "unknown notebook '01_surface_energie' (did you mean"),
        (["--only", "01_surface_energie"], "--only: unknown notebook '01_surface_energie'"),
        (["-p", "02_kpca_map.descriptors=[soap, chgnet]"], "unknown descriptor 'chgnet'; valid: "),
        (["-p", "02_kpca_map.backend=threads"], "unknown backend 'threads'; valid: serial, process, dask"),
        (["-p", "10_energy_shift.n_estimators=1.5"], "n_estimators: expected an int"),
        (["-p", "11_atomref.zero_shot=yes please"], "zero_shot: expected true or false"),
        (["-p", "11_atomref.zero_shot_elements=Cu"], "zero_shot_elements: expected a list of element symbols or null"),
        (["-p", "01_surface_energies.relaxed_limit=six"], "relaxed_limit: expected an int or null"),
    ],
)
def test_invalid_parameters_stop_before_any_notebook(no_notebook_runs, capsys, args, expected):
    code = pipeline.main(["--profile", "quick", "--quiet", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert expected in err and err.startswith("error: ")
    assert "\n" not in err  # one clear line, no traceback


def test_valid_lists_of_models_pass_and_name_the_valid_values(no_notebook_runs, capsys):
    profiles = pipeline.load_profiles()
    for name in ("quick", "full"):  # the profiles themselves are valid
        plan = pipeline.validate(name, pipeline.discover(), profiles[name], {}, check_availability=False)
        assert (
            plan["01_surface_energies"]["all"]["n_bootstrap"]
            == profiles[name]["notebooks"]["01_surface_energies"]["n_bootstrap"]
        )
        assert set(plan["01_surface_energies"]["all"]) == set(
            pipeline.notebook_parameters(paths.NOTEBOOKS / "01_surface_energies.ipynb")
        )


def test_chapter_with_only_unavailable_models_says_so_and_stops(no_notebook_runs, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no MACE weights there
    monkeypatch.delenv("UIPBENCH_ALLOW_DOWNLOAD", raising=False)
    code = pipeline.main(["--profile", "quick", "--quiet", "-p", "01_surface_energies.models=[mace-mp-0-small]"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "01_surface_energies: none of the requested models is available here (mace-mp-0-small: " in err
    assert str(tmp_path / "cache" / "mace") in err and "available: chgnet-0.3.0" in err


def _metrics_nb(path: Path) -> None:
    _write_nb(path, ["x = 1\nlabel = 'a'", "from uipbench import figures\nfigures.save_metrics('00_m', {'x': x})"])


@pytest.mark.slow
def test_custom_parameters_write_to_their_own_directory(tmp_path, monkeypatch, capsys):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _metrics_nb(nbs / "00_m.ipynb")
    figs = tmp_path / "figs"
    (tmp_path / "profiles.yaml").write_text(f"quick:\n  figures_dir: {figs}\n  notebooks:\n    00_m: {{x: 2}}\n")
    monkeypatch.setattr(paths, "NOTEBOOKS", nbs)
    monkeypatch.setattr(paths, "PROFILES", tmp_path / "profiles.yaml")
    monkeypatch.setenv("UIPBENCH_BUILD", str(tmp_path / "build"))
    monkeypatch.setenv("UIPBENCH_RESULTS", str(tmp_path / "res"))
    monkeypatch.delenv("UIPBENCH_FIGURES", raising=False)

    assert pipeline.main(["--profile", "quick", "--quiet", "-p", "00_m.x=3"]) == 0
    out = capsys.readouterr().out
    custom = list((tmp_path / "build" / "custom").glob("quick-*/figures/00_m_metrics.json"))
    assert len(custom) == 1 and str(custom[0].parent.parent) in out
    assert not (figs / "00_m_metrics.json").exists()  # the profile's figures were not touched
    metrics = json.loads(custom[0].read_text())
    assert metrics["x"] == 3
    assert metrics["provenance"]["parameters"] == {"x": 3, "label": "a"}  # complete: default included
    assert metrics["provenance"]["parameters_differ_from_profile"] is True

    monkeypatch.delenv("UIPBENCH_FIGURES", raising=False)
    assert pipeline.main(["--profile", "quick", "--quiet", "-p", "00_m.x=2"]) == 0  # the profile's own value
    metrics = json.loads((figs / "00_m_metrics.json").read_text())
    assert metrics["x"] == 2 and metrics["provenance"]["parameters_differ_from_profile"] is False

    monkeypatch.delenv("UIPBENCH_FIGURES", raising=False)
    assert pipeline.main(["--profile", "quick", "--quiet", "-p", "00_m.x=5", "--overwrite-figures"]) == 0
    assert json.loads((figs / "00_m_metrics.json").read_text())["x"] == 5  # asked explicitly
    monkeypatch.delenv("UIPBENCH_FIGURES", raising=False)
    elsewhere = tmp_path / "mine"
    assert pipeline.main(["--profile", "quick", "--quiet", "-p", "00_m.x=7", "--figures-dir", str(elsewhere)]) == 0
    assert json.loads((elsewhere / "00_m_metrics.json").read_text())["x"] == 7


@pytest.mark.slow
def test_ctrl_c_ends_with_the_runners_message_and_exit_code_130(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    marker = tmp_path / "started"
    _write_nb(
        nbs / "00_slow.ipynb",
        ["x = 1", f"import pathlib, time\npathlib.Path({str(marker)!r}).touch()\ntime.sleep(120)"],
    )
    (tmp_path / "profiles.yaml").write_text("quick:\n  notebooks: {}\n")
    code = (f"from pathlib import Path; from uipbench import paths, pipeline; paths.NOTEBOOKS = Path({str(nbs)!r}); "
            f"paths.PROFILES = Path({str(tmp_path / 'profiles.yaml')!r}); "
            "raise SystemExit(pipeline.main(['--quiet']))")  # fmt: skip
    env = {**os.environ, "UIPBENCH_BUILD": str(tmp_path / "build"), "UIPBENCH_FIGURES": str(tmp_path / "f"),
           "UIPBENCH_RESULTS": str(tmp_path / "r")}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
    partial = tmp_path / "build" / "quick" / "00_slow.ipynb"
    deadline = time.time() + 90
    while time.time() < deadline and not marker.exists():  # the kernel is inside the notebook's cell
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted in notebook 00_slow" in err and str(partial) in err
    assert "KeyboardInterrupt" not in err and "asyncio" not in err, err  # no traceback of the runner itself
    assert err.strip().splitlines()[-1].startswith("interrupted in notebook 00_slow")  # its message comes last


def test_only_a_profile_run_writes_the_committed_figures(monkeypatch):
    """Papermill directly (no runner) writes to _build/direct/figures; the runner sets the profile's directory."""
    monkeypatch.delenv("UIPBENCH_FIGURES", raising=False)
    assert paths.figures_dir() == paths.DIRECT_FIGURES != paths.ROOT / "figures"
    prof = pipeline.load_profiles()["full"]
    assert (paths.ROOT / prof["figures_dir"]).resolve() == (paths.ROOT / "figures").resolve()
