"""The book: built from the executed notebooks with every image, its own MathJax, rendered in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from uipbench import book, paths

ROOT = paths.ROOT


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
    index = book.build(
        "quick", output_root=tmp_path / "out", stage_dir=tmp_path / "stage", executed_dir=tmp_path / "none"
    )
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
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(built_book.parent)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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
    _run_chromium([*_chromium_cmd(exe, profile), f"--screenshot={shot}", url], timeout_s)
    return shot.exists()


def _chromium_cmd(exe: str, profile: Path) -> list[str]:
    return [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
        # without these two, headless Chromium 156 here stalls on about half of the runs before it draws
        "--run-all-compositor-stages-before-draw",
        "--virtual-time-budget=5000",
    ]


def _run_chromium(cmd: list[str], timeout_s: float, stdout=subprocess.DEVNULL) -> None:
    """Run Chromium in its own process group, killed whole if it stalls."""
    import os
    import signal

    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _dump_dom(exe: str, url: str, out: Path, profile: Path, timeout_s: float = 60) -> str:
    """The DOM of ``url`` after its scripts ran, with every host but localhost unresolvable (an offline reader)."""
    with out.open("wb") as fh:
        _run_chromium(
            [
                *_chromium_cmd(exe, profile),
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                "--dump-dom",
                url,
            ],
            timeout_s,
            stdout=fh,
        )
    return out.read_text(errors="replace")


@pytest.mark.book
def test_index_page_renders_in_headless_chromium(served_book, tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip("Chromium is not installed (Debian package `chromium`; `make test` installs it where it can)")
    shot = tmp_path / "index.png"
    # a stalled start is Chromium's, not the book's: allow two more attempts with fresh profiles
    assert any(_screenshot(exe, served_book, shot, tmp_path / f"profile{i}") for i in range(3)), (
        "Chromium wrote no screenshot in three attempts"
    )
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


@pytest.mark.book
def test_pages_show_no_progress_bars_machine_paths_or_stray_warnings(built_book):
    """Issue 12: progress to the terminal, paths relative to the repository, known warnings filtered at the source."""
    import nbformat

    executed = sorted((paths.build_dir() / "quick").glob("*.ipynb"))
    assert executed
    machine = [str(ROOT), str(Path.home()), "site-packages"]
    for nb_path in executed:
        for i, cell in enumerate(nbformat.read(nb_path, as_version=4).cells):
            for out in cell.get("outputs", []):
                text = out.get("text", "") + str(out.get("data", {}).get("text/plain", ""))
                assert not re.search(r"\d+(\.\d+)?(it/s|s/it)\]", text), f"{nb_path.name} cell {i}: a progress bar"
                leaked = [m for m in machine if m in text]
                assert not leaked, f"{nb_path.name} cell {i}: {leaked} in {text[:300]!r}"
                assert "Warning" not in text, f"{nb_path.name} cell {i}: {text[:300]!r}"


@pytest.mark.book
def test_every_chapter_opens_with_a_banner_of_its_profile_and_hardware(built_book):
    import nbformat

    staged = sorted((built_book.parents[2] / "stage" / "notebooks").glob("*.ipynb"))
    assert staged, built_book
    for nb_path in staged:
        cells = nbformat.read(nb_path, as_version=4).cells
        assert "run-banner" in cells[1].metadata.get("tags", []), nb_path.name
        assert "profile `quick`" in cells[1].source and "cores" in cells[1].source, (nb_path.name, cells[1].source)


def test_banner_states_profile_hardware_and_packages(tmp_path, monkeypatch):
    import json

    import nbformat

    figs = tmp_path / "figs"
    figs.mkdir()
    prov = {"cpu": "Test CPU", "cpu_cores": 2, "gpu": None, "profile": "quick", "packages": {"torch": "2.13.0"}}
    (figs / "05_x_metrics.json").write_text(json.dumps({"provenance": prov}))
    monkeypatch.setenv("UIPBENCH_FIGURES", str(figs))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"), nbformat.v4.new_markdown_cell("x")])
    nbformat.write(nb, tmp_path / "05_x.ipynb")
    book._stage_with_banner(tmp_path / "05_x.ipynb", tmp_path / "out.ipynb", "quick")
    cell = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[1]
    assert "run-banner" in cell.metadata["tags"]
    assert "profile `quick` on Test CPU (2 cores), no GPU; torch 2.13.0" in cell.source
    assert "hardware is not recorded" in book.banner("06_none", "quick")
