"""The spine: dataset registry, pinned environment, clean notebooks, runner failures, figures, the book."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

from uipbench import book, datasets, figures, paths, pipeline

ROOT = paths.ROOT


# ------------------------------------------------------------------------------------------------ registry


def _one_file_dataset(tmp_path: Path, content: bytes) -> datasets.RemoteFile:
    src = tmp_path / "upstream" / "table.csv"
    src.parent.mkdir(parents=True)
    src.write_bytes(content)
    return datasets.RemoteFile(path="demo/table.csv", url=src.as_uri(), sha256=hashlib.sha256(content).hexdigest())


def test_fetch_downloads_verifies_and_reuses(tmp_path):
    rf = _one_file_dataset(tmp_path, b"a,b\n1,2\n")
    data = tmp_path / "data"
    local = datasets.fetch_file(rf, data_dir=data)  # real download code (urllib) on a file:// URL
    assert local == data / "demo" / "table.csv" and local.read_bytes() == b"a,b\n1,2\n"
    (tmp_path / "upstream" / "table.csv").unlink()  # present and verified: no second download
    assert datasets.fetch_file(rf, data_dir=data) == local


def test_checksum_mismatch_is_an_error(tmp_path):
    rf = _one_file_dataset(tmp_path, b"a,b\n1,2\n")
    data = tmp_path / "data"
    (data / "demo").mkdir(parents=True)
    (data / "demo" / "table.csv").write_bytes(b"a,b\n1,3\n")  # corrupted local copy
    with pytest.raises(datasets.ChecksumError, match="checksum mismatch.*table.csv"):
        datasets.fetch_file(rf, data_dir=data)


def test_download_with_wrong_checksum_is_removed(tmp_path):
    rf = _one_file_dataset(tmp_path, b"x")
    bad = datasets.RemoteFile(path=rf.path, url=rf.url, sha256="0" * 64)
    with pytest.raises(datasets.ChecksumError):
        datasets.fetch_file(bad, data_dir=tmp_path / "data")
    assert not (tmp_path / "data" / rf.path).exists(), "an unverified download must not stay in place"


def test_missing_file_message_names_file_url_and_variable(tmp_path):
    rf = datasets.get("rxnnet-gga-r2scan").files[0]
    with pytest.raises(datasets.DataNotFoundError) as err:
        datasets.fetch_file(rf, data_dir=tmp_path, download=False)
    msg = str(err.value)
    assert "rxnnet/main.pkl.gz" in msg and rf.url in msg and "UIPBENCH_DATA" in msg and str(tmp_path) in msg


def test_failed_download_message(tmp_path):
    rf = datasets.RemoteFile(path="x/nothing.bin", url=(tmp_path / "absent.bin").as_uri(), sha256="0" * 64)
    with pytest.raises(datasets.DataNotFoundError, match="download failed.*absent.bin"):
        datasets.fetch_file(rf, data_dir=tmp_path / "data")


def test_not_downloadable_sources_say_how_to_supply_them():
    with pytest.raises(datasets.DataNotFoundError, match="figshare"):
        datasets.fetch("mp-r2scan")
    for name in ("mace-mp-0-weights", "matgl-weights"):
        assert not datasets.get(name).offline and datasets.get(name).homepage


def test_registry_entries_are_complete():
    for ds in datasets.REGISTRY.values():
        assert ds.licence and ds.citation and ds.description
        if ds.in_repository:  # the project's own data: committed under data/, versioned by git
            assert ds.files and ds.parser is not None
            for f in ds.files:
                assert (paths.PROJECT_DATA / f.path).exists(), f.path
        elif ds.offline:
            assert ds.files and ds.parser is not None
            for f in ds.files:
                assert re.fullmatch(r"[0-9a-f]{64}", f.sha256), f.path
                # pinned upstream: a commit hash in the URL, never a branch name
                assert re.search(r"/[0-9a-f]{40}/", f.url), f.url


def test_shared_data_verifies(data_dir):
    for ds in datasets.REGISTRY.values():
        if ds.offline and not ds.in_repository:
            ok, why = datasets.available(ds.name, data_dir=data_dir)
            assert ok, why


def test_surfaces_parser(data_dir):
    s = datasets.load("mp-surfaces", data_dir=data_dir)
    assert len(s) == 801 and s["id"].is_unique and s.element.nunique() == 42
    # units: J/m^2 = eV/A^2 * 16.0218; the Materials Project elemental surface energies lie within (0, 4) J/m^2
    assert ((s.gamma_j_per_m2 / s.gamma_ev_per_a2 - 16.02176634).abs() < 1e-9).all()
    assert s.gamma_j_per_m2.between(0, 4).all() and s.work_function_ev.between(1, 7).all()
    row = s.set_index("id").loc["100Ag11-20"]
    assert row.element == "Ag" and row.hkl == (1, 1, -2, 0)


# ------------------------------------------------------------------------------------------------ environment


def _pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.split("#")[0].strip()
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;]+)", line)
        if m:
            out[m[1].lower().replace("_", "-")] = m[2]
    return out


def test_environment_yml_agrees_with_constraints():
    lock = _pins((ROOT / "constraints.txt").read_text().splitlines())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_block = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda_pins = _pins(pip_block)
    assert conda_pins, "environment.yml has no pip pins"
    disagree = {k: (v, lock.get(k)) for k, v in conda_pins.items() if lock.get(k) != v}
    assert not disagree, f"environment.yml vs constraints.txt: {disagree}"
    assert "python=3.11" in env["dependencies"]
    # every direct dependency of the package is pinned in both files
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[\[<>=;]", d)[0].strip().lower().replace("_", "-") for d in deps}
    names = {"dask" if n == "dask" else n for n in names}
    assert names <= set(lock), f"unpinned in constraints.txt: {names - set(lock)}"
    assert names <= set(conda_pins), f"missing in environment.yml: {names - set(conda_pins)}"
    assert lock["torch"] == "2.13.0"


# ------------------------------------------------------------------------------------------------ notebooks


def _sources() -> list[Path]:
    return pipeline.discover()


def test_source_notebooks_are_clean_and_follow_the_skeleton():
    assert _sources(), "no notebooks found"
    for path in _sources():
        nb = nbformat.read(path, as_version=4)
        dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
        assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"
        first = nb.cells[0]
        assert first.cell_type == "markdown" and first.source.startswith("# "), f"{path.name}: no title cell"
        assert "Overview" in first.source or "Overview" in nb.cells[1].source, f"{path.name}: no overview"
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), f"{path.name}: first code cell is not `parameters`"
        assert any(c.cell_type == "markdown" and "## Summary" in c.source for c in nb.cells), \
            f"{path.name}: no '## Summary' section"


def test_profiles_name_existing_notebooks():
    names = {p.stem for p in _sources()}
    profiles = pipeline.load_profiles()
    assert {"quick", "full"} <= set(profiles)
    for prof in profiles.values():
        assert set(prof.get("notebooks") or {}) <= names


def test_every_notebook_is_a_book_chapter():
    chapters = {Path(c).name for c in book.toc_chapters() if c.startswith("notebooks/")}
    assert chapters == {p.stem for p in _sources()}


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


# ------------------------------------------------------------------------------------------------ figures


def test_figures_are_byte_stable(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

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
        digests.append([hashlib.sha256(p.read_bytes()).hexdigest() for p in
                        written + [tmp_path / "demo.csv", tmp_path / "demo_metrics.json"]])
    assert digests[0] == digests[1]
    written_metrics = json.loads((tmp_path / "demo_metrics.json").read_text())
    assert written_metrics.pop("provenance")["cpu_cores"] >= 1
    assert written_metrics == {"mae": 0.123457, "n": 3, "nan": None}
    assert (tmp_path / "demo.csv").read_text().splitlines()[1] == "0.333333,x"


# ------------------------------------------------------------------------------------------------ quick outputs


def test_datasets_chapter_numbers(quick_outputs, data_dir):
    quick = figures.load_metrics("00_datasets", quick_outputs("00_datasets"))
    # physical/known values of the upstream files
    assert quick["surfaces"]["n_slabs"] == 801 and quick["surfaces"]["n_elements"] == 42
    assert 0 < quick["surfaces"]["gamma_j_per_m2"]["min"] < quick["surfaces"]["gamma_j_per_m2"]["median"] < 3.5
    assert quick["rxnnet"]["n_gga_r2scan_pairs"] == 974
    assert quick["matpes"]["n_identical_structure_pairs"] == 63
    # the same data give the same numbers as the committed full run
    committed = ROOT / "figures" / "00_datasets_metrics.json"
    if committed.exists():
        full = figures.load_metrics("00_datasets", committed.parent)
        full.pop("provenance"), quick.pop("provenance")
        assert full == quick


# ------------------------------------------------------------------------------------------------ the book


@pytest.fixture(scope="session")
def built_book(tmp_path_factory, quick_outputs):
    for chapter in book.toc_chapters():
        if chapter.startswith("notebooks/"):
            quick_outputs(Path(chapter).name)
    out = tmp_path_factory.mktemp("book")
    index = book.build("quick", output_root=out, stage_dir=out / "stage", strict=True)
    return index


@pytest.mark.book
def test_book_builds_with_every_image(built_book):
    html = built_book.parent
    assert built_book.exists()
    for chapter in book.toc_chapters():
        assert (html / f"{chapter}.html").exists(), chapter
    images = [s for srcs in book.referenced_images(html).values() for s in srcs]
    assert len(images) >= 3, "the datasets chapter alone shows three figures"
    assert book.missing_images(html) == []


def _script_sources(page: Path) -> list[str]:
    return re.findall(r"<script\b[^>]*\bsrc=\"([^\"]+)\"", page.read_text(errors="replace"))


@pytest.mark.book
def test_book_serves_its_own_mathjax(built_book):
    """Every page with maths loads MathJax from the book's _static (the file exists), none from another host."""
    html = built_book.parent
    mathjax_path = book.configured_mathjax_path()
    assert mathjax_path and "://" not in mathjax_path, "_config.yml must point mathjax_path into _static"
    entry = html / "_static" / mathjax_path
    assert entry.is_file() and entry.stat().st_size > 100_000, entry
    assert (entry.parent / "output" / "chtml" / "fonts" / "woff-v2" / "MathJax_Main-Regular.woff").is_file()
    pages_with_maths = 0
    for page in sorted(html.rglob("*.html")):
        if "_static" in page.parts:
            continue
        sources = _script_sources(page)
        remote = [s for s in sources if re.match(r"^([a-z]+:)?//", s)]
        assert not remote, f"{page.relative_to(html)} loads scripts from other hosts: {remote}"
        if 'class="math' in page.read_text(errors="replace"):
            pages_with_maths += 1
            mathjax = [s for s in sources if s.endswith(Path(mathjax_path).name)]
            assert len(mathjax) == 1, f"{page.relative_to(html)}: MathJax scripts {mathjax}"
            assert (page.parent / mathjax[0]).resolve() == entry.resolve()
    assert pages_with_maths >= 2, "intro.md and the surface-energy chapter have maths"


def _mini_book(root: Path, monkeypatch) -> None:
    """A one-page book with inline and display maths and the project's own _config.yml, as paths.ROOT."""
    root.mkdir()
    shutil.copy2(ROOT / "_config.yml", root / "_config.yml")
    (root / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    (root / "intro.md").write_text("# Maths\n\nInline $E = mc^2$ and\n\n$$\\gamma = \\frac{E}{2A}$$\n")
    monkeypatch.setattr(paths, "ROOT", root)


@pytest.mark.book
@pytest.mark.parametrize("installed", [True, False], ids=["mathjax-package", "no-mathjax-package"])
def test_book_mathjax_local_or_cdn_fallback(tmp_path, monkeypatch, capsys, installed):
    """With the MathJax package the book carries MathJax under _static; without it the build still succeeds,
    warns naming the package, and the page loads Sphinx's CDN default instead."""
    from sphinx.ext.mathjax import MATHJAX_URL

    _mini_book(tmp_path / "src", monkeypatch)
    if not installed:
        monkeypatch.setattr(book, "mathjax_source", lambda: None)
    index = book.build("quick", output_root=tmp_path / "out", stage_dir=tmp_path / "stage",
                       executed_dir=tmp_path / "none")
    err = capsys.readouterr().err
    html = index.parent
    sources = _script_sources(html / "intro.html")
    if installed:
        assert "WARNING" not in err
        assert f"_static/{book.configured_mathjax_path()}" in sources
        assert (html / "_static" / book.configured_mathjax_path()).is_file()
    else:
        assert "WARNING" in err and book.MATHJAX_DIST in err
        assert MATHJAX_URL in sources
        assert not (html / "_static" / "mathjax").exists()
        # only the staged copy of _config.yml lost mathjax_path, not the source
        assert book.configured_mathjax_path(tmp_path / "stage" / "_config.yml") is None
        assert book.configured_mathjax_path(tmp_path / "src" / "_config.yml")


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture()
def served_book(built_book):
    """The built book on an HTTP server on localhost, in its own process.

    Chromium stalls on the book's file:// pages, and a server thread inside the pytest process can stall behind
    the other tests' threads; a separate `python -m http.server` does neither.
    """
    import socket
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                               "--directory", str(built_book.parent)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/index.html"
    for _ in range(100):  # wait until it accepts connections
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield url
    server.terminate()
    server.wait(timeout=10)


def _screenshot(exe: str, url: str, shot: Path, profile: Path, timeout_s: float = 60) -> bool:
    """One headless Chromium screenshot; the whole process group is killed if it stalls."""
    _run_chromium(_chromium_cmd(exe, profile) + [f"--screenshot={shot}", url], timeout_s)
    return shot.exists()


def _chromium_cmd(exe: str, profile: Path) -> list[str]:
    return [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1280,900",
            # without these two, headless Chromium 156 here stalls on about half of the runs before it draws
            "--run-all-compositor-stages-before-draw", "--virtual-time-budget=5000"]


def _run_chromium(cmd: list[str], timeout_s: float, stdout=subprocess.DEVNULL) -> None:
    """Run Chromium in its own process group, killed whole if it stalls."""
    import os
    import signal

    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _dump_dom(exe: str, url: str, out: Path, profile: Path, timeout_s: float = 60) -> str:
    """The DOM of ``url`` after its scripts ran, with every host but localhost unresolvable (an offline reader)."""
    with out.open("wb") as fh:
        _run_chromium(_chromium_cmd(exe, profile) + [
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", "--dump-dom", url], timeout_s, stdout=fh)
    return out.read_text(errors="replace")


@pytest.mark.book
def test_index_page_renders_in_headless_chromium(served_book, tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip("Chromium is not installed (Debian package `chromium`; `make test` installs it where it can)")
    shot = tmp_path / "index.png"
    # a stalled start is Chromium's, not the book's: allow two more attempts with fresh profiles
    assert any(_screenshot(exe, served_book, shot, tmp_path / f"profile{i}") for i in range(3)), \
        "Chromium wrote no screenshot in three attempts"
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)[..., :3]
    non_white = (img < 0.95).any(axis=-1).mean()
    assert img.std() > 0.05 and non_white > 0.02, f"blank page? std {img.std():.3f}, non-white {non_white:.3f}"


@pytest.mark.book
def test_maths_render_offline_in_headless_chromium(served_book, built_book, tmp_path):
    """MathJax typesets every formula of a chapter with no host but localhost reachable."""
    exe = _chromium()
    if exe is None:
        pytest.skip("Chromium is not installed (Debian package `chromium`; `make test` installs it where it can)")
    html = built_book.parent
    pages = [c for c in book.toc_chapters() if 'class="math' in (html / f"{c}.html").read_text(errors="replace")]
    assert pages, "no chapter has maths"
    page = max(pages, key=lambda c: (html / f"{c}.html").read_text(errors="replace").count('class="math'))
    n_maths = (html / f"{page}.html").read_text(errors="replace").count('class="math')
    url = served_book.rsplit("/", 1)[0] + f"/{page}.html"
    doms = []
    for i in range(3):  # a stalled start is Chromium's, not the book's: fresh profiles, two more attempts
        dom = _dump_dom(exe, url, tmp_path / f"dom{i}.html", tmp_path / f"profile{i}")
        doms.append(len(dom))
        if "</html>" in dom:
            break
    else:
        pytest.fail(f"Chromium dumped no page in three attempts (sizes {doms})")
    rendered = dom.count("<mjx-container")
    assert rendered == n_maths, f"{page}: MathJax typeset {rendered} of {n_maths} formulas"
    assert 'jax="CHTML"' in dom and "<mjx-merror" not in dom, "MathJax rendered an error"
