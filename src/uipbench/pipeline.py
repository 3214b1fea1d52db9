"""Run the notebooks in order with papermill, parameters from ``profiles.yaml``.

    python -m uipbench.pipeline --profile quick            # what CI runs
    python -m uipbench.pipeline --profile full             # what the book shows
    python -m uipbench.pipeline --profile full --only 01_surface_energies
    python -m uipbench.pipeline --profile quick -p 01_surface_energies.models='["chgnet-0.3.0"]'

Executed copies go to ``<build>/<profile>/<name>.ipynb`` (``UIPBENCH_BUILD``, default ``_build/notebooks``).
Figures go to the profile's ``figures_dir`` (``UIPBENCH_FIGURES`` overrides it), which the notebooks read through
:func:`uipbench.paths.figures_dir`. On failure the runner names the notebook and the cell, keeps the partial
executed notebook for reading, and exits non-zero.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import paths


@dataclass
class NotebookFailure(Exception):
    notebook: str
    cell: int | None
    error: str
    partial: Path

    def __str__(self) -> str:
        where = f"cell {self.cell}" if self.cell is not None else "before any cell ran"
        return f"notebook {self.notebook} failed in {where}: {self.error}\n  partial output kept at {self.partial}"


def load_profiles(path: Path | None = None) -> dict:
    with open(path or paths.PROFILES) as f:
        return yaml.safe_load(f)


def discover(notebooks_dir: Path | None = None) -> list[Path]:
    """Source notebooks in run order (file name order: 00_, 01_, ...)."""
    d = notebooks_dir or paths.NOTEBOOKS
    return sorted(p for p in d.glob("*.ipynb") if not p.name.startswith("_"))


def _resolve(value: str | None, default: Path) -> Path:
    if not value:
        return default
    p = Path(value)
    return p if p.is_absolute() else paths.ROOT / p


def _failed_cell(nb_path: Path) -> tuple[int | None, str]:
    """(index of the first cell with an error output, its error) in an executed notebook."""
    import nbformat

    try:
        nb = nbformat.read(nb_path, as_version=4)
    except Exception:  # the partial notebook may not exist if the kernel never started
        return None, ""
    code_index = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        code_index += 1
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return code_index, f"{out.get('ename')}: {out.get('evalue')}"
    return None, ""


def run_notebook(
    source: Path,
    output: Path,
    parameters: dict,
    cwd: Path | None = None,
    log_output: bool = True,
    kernel_name: str = "python3",
) -> Path:
    """Execute one notebook with papermill; raise :class:`NotebookFailure` naming the failed cell."""
    import papermill as pm

    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        pm.execute_notebook(
            str(source),
            str(output),
            parameters=parameters,
            cwd=str(cwd or source.parent),
            log_output=log_output,
            progress_bar=False,
            kernel_name=kernel_name,
        )
    except Exception as exc:  # papermill's PapermillExecutionError, kernel death, missing kernel, ...
        cell, err = _failed_cell(output)
        if not err:
            err = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
        raise NotebookFailure(source.stem, cell, err, output) from exc
    return output


def run(
    profile: str = "quick",
    only: list[str] | None = None,
    overrides: dict | None = None,
    profiles_path: Path | None = None,
    notebooks_dir: Path | None = None,
    log_output: bool = True,
) -> list[Path]:
    """Run every notebook (or ``only`` those) of ``profile`` in order; return the executed copies."""
    profiles = load_profiles(profiles_path)
    if profile not in profiles:
        raise SystemExit(f"unknown profile {profile!r}; profiles.yaml has {sorted(profiles)}")
    prof = profiles[profile] or {}
    # The notebooks (separate kernel processes) read these through uipbench.paths.
    os.environ.setdefault("UIPBENCH_FIGURES", str(_resolve(prof.get("figures_dir"), paths.figures_dir())))
    os.environ.setdefault("UIPBENCH_RESULTS", str(_resolve(prof.get("results_dir"), paths.results_dir())))
    os.environ["UIPBENCH_PROFILE"] = profile
    out_dir = paths.build_dir() / profile
    sources = discover(notebooks_dir)
    names = [s.stem for s in sources]
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise SystemExit(f"unknown notebook(s) {unknown}; available: {names}")
        sources = [s for s in sources if s.stem in only]
    executed = []
    for i, src in enumerate(sources, 1):
        params = dict((prof.get("notebooks") or {}).get(src.stem) or {})
        params.update((overrides or {}).get(src.stem, {}))
        print(f"[{i}/{len(sources)}] {src.stem} (profile {profile}) parameters={params}", flush=True)
        t0 = time.perf_counter()
        executed.append(run_notebook(src, out_dir / src.name, params, log_output=log_output))
        print(f"[{i}/{len(sources)}] {src.stem} done in {time.perf_counter() - t0:.1f} s -> {executed[-1]}", flush=True)
    return executed


def _parse_override(text: str) -> tuple[str, str, object]:
    """``NOTEBOOK.param=YAML`` -> (notebook, param, value)."""
    key, _, value = text.partition("=")
    nb, _, param = key.partition(".")
    if not nb or not param or not _:
        raise argparse.ArgumentTypeError(f"expected NOTEBOOK.param=value, got {text!r}")
    return nb, param, yaml.safe_load(value)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="quick", help="profile of profiles.yaml (quick | full)")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these notebooks (file stems)")
    ap.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        type=_parse_override,
        metavar="NB.param=value",
        help="override one parameter (value parsed as YAML)",
    )
    ap.add_argument("--quiet", action="store_true", help="do not stream cell outputs")
    args = ap.parse_args(argv)
    overrides: dict[str, dict] = {}
    for nb, param, value in args.param:
        overrides.setdefault(nb, {})[param] = value
    try:
        run(args.profile, only=args.only, overrides=overrides, log_output=not args.quiet)
    except NotebookFailure as failure:
        print(f"FAILED: {failure}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
