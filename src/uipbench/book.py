"""Build the Jupyter Book from the executed notebooks of a profile.

    python -m uipbench.book --profile full       # -> _build/html/index.html

The book's sources (``_config.yml``, ``_toc.yml``, ``intro.md``) live at the repository root and name the
chapters as ``notebooks/<stem>``. Jupyter Book must not execute anything (``execute_notebooks: off``), so this
module stages a copy of those files with the *executed* notebooks of the profile (``<build>/<profile>/``) in place
of the sources, and runs ``jupyter-book build`` on the stage with warnings as errors.

Maths is rendered by MathJax 3 served with the book (no CDN), so an offline reader sees typeset formulas:
``_config.yml`` sets ``mathjax_path`` to ``mathjax/tex-mml-chtml.js`` (relative to ``_static``) and :func:`build`
copies the files MathJax needs from the installed PyPI package ``sphinx-mathjax-offline`` (pinned in
``constraints.txt``) into ``<html>/_static/mathjax``. Without that package the build still succeeds, with a warning,
and the pages load MathJax from Sphinx's default CDN address.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import yaml

from . import paths

BOOK_FILES = ("_config.yml", "_toc.yml", "intro.md")

MATHJAX_DIST = "sphinx-mathjax-offline"  # PyPI package that ships MathJax 3.2.2 (Apache-2.0)
MATHJAX_DIST_DIR = "sphinx-mathjax-offline/static/mathjax"  # where the files are, relative to site-packages
# what tex-mml-chtml.js uses: the combined component itself (TeX + MathML input, CommonHTML output, menu,
# assistive MathML), the TeX extensions that \require and autoload fetch, and the CommonHTML web fonts. Left out
# (~22 MB): the SVG output, the other combined components, and the speech-rule engine of the menu's explorer.
MATHJAX_SUBSET = ("tex-mml-chtml.js", "input/tex/extensions", "output/chtml/fonts/woff-v2")


def toc_chapters(toc_path: Path | None = None) -> list[str]:
    """Every ``file:`` entry of ``_toc.yml`` (in order)."""
    toc = yaml.safe_load((toc_path or paths.ROOT / "_toc.yml").read_text())
    found: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                found.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    return found


def stage(profile: str, stage_dir: Path | None = None, executed_dir: Path | None = None) -> Path:
    """Copy the book sources and the executed notebooks of ``profile`` into ``stage_dir``."""
    executed_dir = executed_dir or paths.build_dir() / profile
    stage_dir = stage_dir or paths.ROOT / "_build" / "book"
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    (stage_dir / "notebooks").mkdir(parents=True)
    for name in BOOK_FILES:
        shutil.copy2(paths.ROOT / name, stage_dir / name)
    missing = []
    for chapter in toc_chapters():
        if not chapter.startswith("notebooks/"):
            continue
        src = executed_dir / (Path(chapter).name + ".ipynb")
        if not src.exists():
            missing.append(str(src))
            continue
        _stage_with_banner(src, stage_dir / "notebooks" / src.name, profile)
    if missing:
        raise FileNotFoundError(
            f"executed notebooks missing for the book: {missing}; run "
            f"`python -m uipbench.pipeline --profile {profile}` first"
        )
    return stage_dir


def banner(stem: str, profile: str) -> str:
    """The line a chapter opens with: its profile and the hardware and packages its metrics file records."""
    import json

    prof = (yaml.safe_load(paths.PROFILES.read_text()) or {}).get(profile) or {}
    fig_dir = os.environ.get("UIPBENCH_FIGURES") or prof.get("figures_dir") or "figures"
    metrics = Path(fig_dir) if Path(fig_dir).is_absolute() else paths.ROOT / fig_dir
    metrics = metrics / f"{stem}_metrics.json"
    if not metrics.exists():
        return f"**Run:** profile `{profile}`; this chapter wrote no metrics file, so its hardware is not recorded."
    prov = json.loads(metrics.read_text()).get("provenance", {})
    gpu = prov.get("gpu") or "no GPU"
    pk = prov.get("packages", {})
    models = ", ".join(f"{k} {pk[k]}" for k in ("torch", "chgnet", "sevenn", "matgl", "gpaw") if k in pk)
    return (f"**Run:** profile `{prov.get('profile', profile)}` on {prov.get('cpu', '?')} "
            f"({prov.get('cpu_cores', '?')} cores), {gpu}; {models}.")  # fmt: skip


def _stage_with_banner(src: Path, dest: Path, profile: str) -> None:
    import nbformat

    nb = nbformat.read(src, as_version=4)
    cell = nbformat.v4.new_markdown_cell(f"```{{note}}\n{banner(src.stem, profile)}\n```")
    cell.metadata["tags"] = ["run-banner"]
    nb.cells.insert(1, cell)  # after the title, before the overview
    nbformat.write(nb, dest)


def mathjax_source() -> Path | None:
    """The MathJax directory of the installed :data:`MATHJAX_DIST`, or None when it is not installed (or lacks
    a file of :data:`MATHJAX_SUBSET`)."""
    try:
        dist = importlib.metadata.distribution(MATHJAX_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    src = Path(dist.locate_file(MATHJAX_DIST_DIR))
    return src if all((src / part).exists() for part in MATHJAX_SUBSET) else None


def configured_mathjax_path(config_path: Path | None = None) -> str | None:
    """``sphinx.config.mathjax_path`` of the book's ``_config.yml`` (None: Sphinx's CDN default)."""
    cfg = yaml.safe_load((config_path or paths.ROOT / "_config.yml").read_text()) or {}
    return ((cfg.get("sphinx") or {}).get("config") or {}).get("mathjax_path")


def _is_url(path: str) -> bool:
    return bool(re.match(r"^([a-z]+:)?//", path))


def copy_mathjax(src: Path, html_dir: Path, mathjax_path: str) -> Path:
    """Copy :data:`MATHJAX_SUBSET` of ``src`` into ``html_dir/_static/<dir of mathjax_path>``; return the
    entry script, which must be one of the copied files."""
    dest = html_dir / "_static" / Path(mathjax_path).parent
    if dest.exists():
        shutil.rmtree(dest)
    for part in MATHJAX_SUBSET:
        if (src / part).is_dir():
            shutil.copytree(src / part, dest / part)
        else:
            (dest / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / part, dest / part)
    version = importlib.metadata.version(MATHJAX_DIST)
    (dest / "SOURCE.txt").write_text(
        f"MathJax 3.2.2 (Apache License 2.0, https://www.mathjax.org), subset copied by uipbench.book from the\n"
        f"PyPI package {MATHJAX_DIST}=={version}: {', '.join(MATHJAX_SUBSET)}\n"
    )
    entry = html_dir / "_static" / mathjax_path
    if not entry.is_file():
        raise RuntimeError(
            f"_config.yml mathjax_path {mathjax_path!r} names no file of the copied MathJax "
            f"({', '.join(MATHJAX_SUBSET)} under {dest})"
        )
    return entry


def _use_cdn_mathjax(config_path: Path) -> None:
    """Drop ``mathjax_path`` from a (staged) ``_config.yml``: Sphinx then loads MathJax from its CDN default."""
    cfg = yaml.safe_load(config_path.read_text())
    cfg["sphinx"]["config"].pop("mathjax_path", None)
    config_path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))


def build(
    profile: str = "full",
    output_root: Path | None = None,
    stage_dir: Path | None = None,
    executed_dir: Path | None = None,
    strict: bool = True,
) -> Path:
    """Stage and build the HTML book; return the path of ``index.html``. ``strict``: warnings are errors."""
    output_root = output_root or paths.ROOT
    staged = stage(profile, stage_dir=stage_dir, executed_dir=executed_dir)
    mathjax_path = configured_mathjax_path(staged / "_config.yml")
    local_mathjax = bool(mathjax_path) and not _is_url(mathjax_path)
    mathjax_src = mathjax_source() if local_mathjax else None
    if local_mathjax and mathjax_src is None:
        print(
            f"WARNING: MathJax not found (the PyPI package {MATHJAX_DIST} is not installed; "
            f"`pip install -c constraints.txt {MATHJAX_DIST}`): the book loads MathJax from a CDN and "
            f"shows raw TeX to a reader without network",
            file=sys.stderr,
        )
        _use_cdn_mathjax(staged / "_config.yml")
    html = output_root / "_build" / "html"
    if html.exists():
        shutil.rmtree(html)
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [
        str(jb) if jb.exists() else "jupyter-book",
        "build",
        str(staged),
        "--path-output",
        str(output_root),
        "--builder",
        "html",
    ]
    if strict:
        cmd += ["--warningiserror", "--keep-going"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"jupyter-book build failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-4000:]}"
        )
    index = html / "index.html"
    if not index.exists():
        raise RuntimeError(f"jupyter-book finished but {index} does not exist:\n{proc.stdout[-3000:]}")
    if mathjax_src is not None:
        copy_mathjax(mathjax_src, html, mathjax_path)
    return index


class _ImgParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            src = dict(attrs).get("src")
            if src:
                self.sources.append(src)


def referenced_images(html_dir: Path) -> dict[Path, list[str]]:
    """page -> image ``src`` attributes of every HTML page of the built book (data: URIs excluded)."""
    out = {}
    for page in sorted(html_dir.rglob("*.html")):
        if "_static" in page.parts:
            continue
        p = _ImgParser()
        p.feed(page.read_text(errors="replace"))
        out[page] = [s for s in p.sources if not s.startswith("data:") and not re.match(r"^[a-z]+://", s)]
    return out


def missing_images(html_dir: Path) -> list[str]:
    """Image references of the built book that point to no file."""
    missing = []
    for page, sources in referenced_images(html_dir).items():
        for src in sources:
            target = (page.parent / src.split("#")[0].split("?")[0]).resolve()
            if not target.exists():
                missing.append(f"{page.relative_to(html_dir)} -> {src}")
    return missing


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="full")
    ap.add_argument("--no-strict", action="store_true", help="do not turn Sphinx warnings into errors")
    args = ap.parse_args(argv)
    index = build(args.profile, strict=not args.no_strict)
    missing = missing_images(index.parent)
    if missing:
        print("images referenced but missing:\n  " + "\n  ".join(missing), file=sys.stderr)
        return 1
    print(f"book written to {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
