"""Run the notebooks in order with papermill, parameters from ``profiles.yaml``.

    python -m uipbench.pipeline --profile quick            # what CI runs
    python -m uipbench.pipeline --profile full             # what the book shows
    python -m uipbench.pipeline --profile full --only 01_surface_energies
    python -m uipbench.pipeline --profile quick -p 01_surface_energies.models='["chgnet-0.3.0"]'

**Parameters are checked before any notebook starts** (:func:`validate`): every name against the notebook's
``parameters`` cell, every value's type against that cell's default, model and descriptor names (and the other
fixed choices) against the registries, with the valid values in the message; a chapter asked only for models
whose weights are not here stops before it starts. An error is one line on stderr and exit code 2.

Executed copies go to ``<build>/<profile>/<name>.ipynb`` (``UIPBENCH_BUILD``, default ``_build/notebooks``).
Figures go to the profile's ``figures_dir`` (``UIPBENCH_FIGURES`` overrides it), which the notebooks read through
:func:`uipbench.paths.figures_dir`. A run whose parameters differ from the profile's (``-p``) writes both to its
own directory ``<build>/custom/<profile>-<hash of the differences>/`` (``figures/`` inside), never over the
profile's figures, unless asked explicitly (``--figures-dir DIR``, ``--overwrite-figures`` or
``UIPBENCH_FIGURES``). Every notebook gets its complete parameters in ``UIPBENCH_PARAMETERS`` (JSON), which the
metrics files record (:func:`uipbench.figures.provenance`). On failure the runner names the notebook and the cell,
keeps the partial executed notebook for reading, and exits non-zero.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import hashlib
import json
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


@dataclass
class Interrupted(Exception):
    """Ctrl-C (SIGINT) during a notebook: which one, and where its partial output is."""

    notebook: str
    partial: Path

    def __str__(self) -> str:
        return f"interrupted in notebook {self.notebook}; partial output kept at {self.partial}"


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


# ----------------------------------------------------------------------------------------------------------------
# parameters: checked before any notebook starts


class ParameterError(Exception):
    """A run's parameters are not valid: one line naming the notebook, the parameter, the valid values."""


class _NoDefault:
    """A parameter whose default is not a literal (its type cannot be checked)."""

    def __repr__(self) -> str:
        return "<expression>"


_NO_DEFAULT = _NoDefault()


def notebook_parameters(source: Path) -> dict:
    """The parameters of a notebook: ``{name: default}`` from its cell tagged ``parameters`` (top-level assignments,
    defaults read with :func:`ast.literal_eval`, as papermill reads that cell)."""
    import nbformat

    nb = nbformat.read(source, as_version=4)
    cell = next((c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])), None)
    if cell is None:
        return {}
    out = {}
    for node in ast.parse(cell.source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, value = node.target.id, node.value
        else:
            continue
        try:
            out[name] = ast.literal_eval(value)
        except ValueError:
            out[name] = _NO_DEFAULT
    return out


def _choices() -> dict[tuple[str, str], tuple[str, list[str]]]:
    """Parameters whose values (list elements, dict keys) come from a fixed set: (notebook, name) -> (what, valid)."""
    from . import engine, models
    from .surfaces import descriptors, protocols

    registry = list(models.REGISTRY)
    descriptor_names = list(descriptors.DESCRIPTORS)
    protocol_names = list(protocols.PROTOCOLS)
    backends = list(engine.BACKENDS)
    return {
        ("01_surface_energies", "models"): ("model", registry),
        ("01_surface_energies", "model_paths"): ("model", registry),
        ("01_surface_energies", "protocols"): ("protocol", protocol_names),
        ("01_surface_energies", "subset"): ("subset", ["full", "quick"]),
        ("01_surface_energies", "backend"): ("backend", backends),
        ("02_kpca_map", "descriptors"): ("descriptor", descriptor_names),
        ("02_kpca_map", "map_descriptor"): ("descriptor", descriptor_names),
        ("02_kpca_map", "error_model"): ("model", registry),
        ("02_kpca_map", "error_protocol"): ("protocol", protocol_names),
        ("02_kpca_map", "kernel_metric"): ("kernel metric", ["linear", "rbf"]),
        ("02_kpca_map", "backend"): ("backend", backends),
    }


#: parameters whose default is None (which says nothing about the type): the type a value must have instead
_NONE_DEFAULT_TYPES: dict[tuple[str, str], tuple[str, tuple[type, ...]]] = {
    ("00_datasets", "data_dir"): ("a path (string)", (str,)),
    ("01_surface_energies", "relaxed_limit"): ("an int", (int,)),
    ("01_surface_energies", "scheduler"): ("an address (string)", (str,)),
    ("11_atomref", "zero_shot_elements"): ("a list of element symbols", (list,)),
}


def _kind(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return "null" if value is None else type(value).__name__


def _fits(value, default) -> bool:
    """Does ``value`` have the type of ``default`` (an int where a float is expected is fine; None only where the
    default is None, which says nothing about the type and accepts any value)?"""
    want, got = _kind(default), _kind(value)
    if want == "null" or default is _NO_DEFAULT:
        return True
    if want == "float":
        return got in ("int", "float")
    if want == "list":
        if got != "list":
            return False
        element_kinds = {_kind(v) for v in default}
        return len(element_kinds) != 1 or all(_fits(v, next(iter(default))) for v in value)
    return want == got


def _expected(default) -> str:
    kind = _kind(default)
    if kind == "list" and default:
        return f"a list of {_kind(default[0])}"
    return {"int": "an int", "float": "a number", "bool": "true or false", "str": "a string", "dict": "a mapping"}.get(
        kind, kind
    )


def validate(
    profile: str, sources: list[Path], prof: dict, overrides: dict, check_availability: bool = True
) -> dict[str, dict]:
    """The complete parameters of each notebook in ``sources`` (defaults, then the profile's, then ``overrides``),
    checked; raise :class:`ParameterError` (one line) on the first problem."""
    names = [s.stem for s in sources]
    profile_params = prof.get("notebooks") or {}
    for nb in overrides:
        if nb not in names:
            close = difflib.get_close_matches(nb, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ParameterError(f"-p {nb}.…: unknown notebook {nb!r}{hint}; notebooks of this run: {', '.join(names)}")
    choices = _choices()
    plan = {}
    for src in sources:
        nb = src.stem
        defaults = notebook_parameters(src)
        given = dict(profile_params.get(nb) or {})
        given.update(overrides.get(nb, {}))
        for name, value in given.items():
            where = f"{nb}.{name}"
            if name not in defaults:
                close = difflib.get_close_matches(name, list(defaults), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ParameterError(
                    f"{where}: unknown parameter {name!r}{hint}; {nb} has: {', '.join(defaults) or 'no parameters'}"
                )
            default = defaults[name]
            if not _fits(value, default):
                hint = ""
                if _kind(default) == "list" and _kind(value) == "str":
                    hint = f"; a list is written -p '{where}=[{value}]'"
                raise ParameterError(
                    f"{where}: expected {_expected(default)} (default {default!r}), got {_kind(value)} {value!r}{hint}"
                )
            if default is None and value is not None and (nb, name) in _NONE_DEFAULT_TYPES:
                expected, types = _NONE_DEFAULT_TYPES[(nb, name)]
                if not isinstance(value, types) or isinstance(value, bool):
                    raise ParameterError(
                        f"{where}: expected {expected} or null (default None), got {_kind(value)} {value!r}"
                    )
            if (nb, name) in choices and value is not None:
                what, valid = choices[(nb, name)]
                values = list(value) if isinstance(value, list | tuple | dict) else [value]
                bad = [v for v in values if v not in valid]
                if bad:
                    raise ParameterError(f"{where}: unknown {what} {bad[0]!r}; valid: {', '.join(valid)}")
        params = {k: v for k, v in defaults.items() if v is not _NO_DEFAULT}
        params.update(given)
        plan[nb] = {"given": given, "all": params, "defaults": defaults}
    if check_availability and "01_surface_energies" in plan:
        _check_models_available("01_surface_energies", plan["01_surface_energies"]["all"])
    return plan


def _check_models_available(nb: str, params: dict) -> None:
    """Stop before the chapter starts when none of its requested models has its weights here."""
    from . import models

    requested = list(params.get("models") or [])
    if not requested:
        raise ParameterError(f"{nb}.models: no model requested; valid: {', '.join(models.REGISTRY)}")
    table = models.availability(requested, model_paths=params.get("model_paths") or {})
    if bool(table["available"].any()):
        for _, row in table[~table["available"]].iterrows():
            why = _short(row["reason"], row["model"])
            print(f"note: {nb}: {row['model']} is not available here and is skipped ({why})")
        return
    everything = models.availability()
    here = [m for m, ok in zip(everything["model"], everything["available"], strict=True) if ok]
    why = "; ".join(f"{r['model']}: {_short(r['reason'], r['model'])}" for _, r in table.iterrows())
    raise ParameterError(
        f"{nb}: none of the requested models is available here ({why}); available: {', '.join(here) or 'none'}"
    )


def _short(reason: str, model: str) -> str:
    """The gist of an availability reason: without the exception name and model prefix, up to the first aside."""
    text = reason.split(": ", 1)[1] if reason.startswith(("ModelNotAvailableError", "checksum mismatch")) else reason
    text = text.removeprefix(f"{model}: ")
    return text.split(" (")[0].split(". ")[0][:200]


def _differences(plan: dict, prof: dict, overrides: dict) -> dict[str, dict]:
    """Per notebook, the overrides whose value differs from the profile's (or, where the profile says nothing, from
    the notebook's default)."""
    out = {}
    for nb, given in overrides.items():
        profile_given = (prof.get("notebooks") or {}).get(nb) or {}
        defaults = plan[nb]["defaults"]
        diff = {k: v for k, v in given.items() if profile_given.get(k, defaults.get(k)) != v}
        if diff:
            out[nb] = diff
    return out


# ----------------------------------------------------------------------------------------------------------------
# running


def run(
    profile: str = "quick",
    only: list[str] | None = None,
    overrides: dict | None = None,
    profiles_path: Path | None = None,
    notebooks_dir: Path | None = None,
    log_output: bool = True,
    figures_dir: str | Path | None = None,
    overwrite_figures: bool = False,
) -> list[Path]:
    """Run every notebook (or ``only`` those) of ``profile`` in order; return the executed copies.

    Parameters are validated first (:func:`validate`); nothing runs when one is invalid. A run whose parameters
    differ from the profile's writes to ``<build>/custom/<profile>-<hash>/`` unless ``figures_dir`` or
    ``overwrite_figures`` (or ``UIPBENCH_FIGURES``) says where.
    """
    profiles = load_profiles(profiles_path)
    if profile not in profiles:
        raise ParameterError(f"unknown profile {profile!r}; profiles.yaml has {', '.join(sorted(profiles))}")
    prof = profiles[profile] or {}
    sources = discover(notebooks_dir)
    names = [s.stem for s in sources]
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            close = difflib.get_close_matches(unknown[0], names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ParameterError(f"--only: unknown notebook {unknown[0]!r}{hint}; notebooks: {', '.join(names)}")
        sources = [s for s in sources if s.stem in only]
    overrides = overrides or {}
    not_run = [nb for nb in overrides if nb in names and nb not in [s.stem for s in sources]]
    if not_run:
        raise ParameterError(f"-p {not_run[0]}.…: {not_run[0]} is not part of this run (--only {' '.join(only or [])})")
    plan = validate(profile, sources, prof, overrides)
    custom = _differences(plan, prof, overrides)
    out_dir = paths.build_dir() / profile
    # The notebooks (separate kernel processes) read these through uipbench.paths.
    if figures_dir is not None:
        os.environ["UIPBENCH_FIGURES"] = str(_resolve(str(figures_dir), paths.ROOT / "figures"))
    elif custom and not overwrite_figures and "UIPBENCH_FIGURES" not in os.environ:
        digest = hashlib.sha256(json.dumps(custom, sort_keys=True, default=str).encode()).hexdigest()[:10]
        out_dir = paths.build_dir() / "custom" / f"{profile}-{digest}"
        os.environ["UIPBENCH_FIGURES"] = str(out_dir / "figures")
        changed = ", ".join(f"{nb}.{k}={v!r}" for nb, d in custom.items() for k, v in d.items())
        print(
            f"parameters differ from profile {profile} ({changed}): outputs go to {out_dir} (not over the profile's "
            f"figures; --figures-dir DIR or --overwrite-figures to write elsewhere)",
            flush=True,
        )
    os.environ.setdefault("UIPBENCH_FIGURES", str(_resolve(prof.get("figures_dir"), paths.ROOT / "figures")))
    os.environ.setdefault("UIPBENCH_RESULTS", str(_resolve(prof.get("results_dir"), paths.results_dir())))
    os.environ["UIPBENCH_PROFILE"] = profile
    executed = []
    try:
        for i, src in enumerate(sources, 1):
            params = plan[src.stem]["given"]
            os.environ["UIPBENCH_PARAMETERS"] = json.dumps(plan[src.stem]["all"], sort_keys=True, default=str)
            os.environ["UIPBENCH_PARAMETERS_CUSTOM"] = "1" if src.stem in custom else "0"
            print(f"[{i}/{len(sources)}] {src.stem} (profile {profile}) parameters={params}", flush=True)
            t0 = time.perf_counter()
            try:
                executed.append(run_notebook(src, out_dir / src.name, params, log_output=log_output))
            except KeyboardInterrupt:
                raise Interrupted(src.stem, out_dir / src.name) from None
            took = time.perf_counter() - t0
            print(f"[{i}/{len(sources)}] {src.stem} done in {took:.1f} s -> {executed[-1]}", flush=True)
    finally:
        os.environ.pop("UIPBENCH_PARAMETERS", None)
        os.environ.pop("UIPBENCH_PARAMETERS_CUSTOM", None)
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
    ap.add_argument(
        "--figures-dir",
        metavar="DIR",
        help="write figures, tables and metrics here (default: the profile's; a run "
        "with parameters that differ from the profile's: its own directory under <build>/custom/)",
    )
    ap.add_argument(
        "--overwrite-figures",
        action="store_true",
        help="write a run with changed parameters over the profile's figures_dir anyway",
    )
    args = ap.parse_args(argv)
    overrides: dict[str, dict] = {}
    for nb, param, value in args.param:
        overrides.setdefault(nb, {})[param] = value
    try:
        run(
            args.profile,
            only=args.only,
            overrides=overrides,
            log_output=not args.quiet,
            figures_dir=args.figures_dir,
            overwrite_figures=args.overwrite_figures,
        )
    except ParameterError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    except NotebookFailure as failure:
        print(f"FAILED: {failure}", file=sys.stderr, flush=True)
        return 1
    except (Interrupted, KeyboardInterrupt) as stop:
        print(f"{stop or 'interrupted before any notebook started'}", file=sys.stderr, flush=True)
        return 130  # 128 + SIGINT, as a shell reports it
    return 0


if __name__ == "__main__":
    sys.exit(main())
