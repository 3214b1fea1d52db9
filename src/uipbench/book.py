"""Build the Jupyter Book from the executed notebooks of a profile.

    python -m uipbench.book --profile full       # -> _build/html/index.html

The book's sources (``_config.yml``, ``_toc.yml``, ``intro.md``) live at the repository root and name the
chapters as ``notebooks/<stem>``. Jupyter Book must not execute anything (``execute_notebooks: off``), so this
module stages a copy of those files with the *executed* notebooks of the profile (``<build>/<profile>/``) in place
of the sources, and runs ``jupyter-book build`` on the stage with warnings as errors.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import yaml

from . import paths

BOOK_FILES = ("_config.yml", "_toc.yml", "intro.md")


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
        shutil.copy2(src, stage_dir / "notebooks" / src.name)
    if missing:
        raise FileNotFoundError(
            f"executed notebooks missing for the book: {missing}; run "
            f"`python -m uipbench.pipeline --profile {profile}` first"
        )
    return stage_dir


def build(profile: str = "full", output_root: Path | None = None, stage_dir: Path | None = None,
          executed_dir: Path | None = None, strict: bool = True) -> Path:
    """Stage and build the HTML book; return the path of ``index.html``. ``strict``: warnings are errors."""
    output_root = output_root or paths.ROOT
    staged = stage(profile, stage_dir=stage_dir, executed_dir=executed_dir)
    html = output_root / "_build" / "html"
    if html.exists():
        shutil.rmtree(html)
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(staged), "--path-output", str(output_root),
           "--builder", "html"]
    if strict:
        cmd += ["--warningiserror", "--keep-going"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-4000:]}")
    index = html / "index.html"
    if not index.exists():
        raise RuntimeError(f"jupyter-book finished but {index} does not exist:\n{proc.stdout[-3000:]}")
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
