"""The pinned environment: constraints.txt, environment.yml and pyproject.toml agree; test and docs tools are extras."""

from __future__ import annotations

import re
import tomllib

import yaml

from uipbench import paths

ROOT = paths.ROOT


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


def test_test_and_docs_tools_are_extras_not_runtime_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {re.split(r"[\[<>=;]", d)[0].strip().lower() for d in project["dependencies"]}
    extras = project["optional-dependencies"]
    assert {"pytest", "ruff", "pre-commit"}.isdisjoint(runtime)
    assert "pytest" in " ".join(extras["test"]) and "ruff" in " ".join(extras["lint"])
    assert "jupyter-book" in " ".join(extras["docs"]) and "jupyter-book" not in runtime
    lock = _pins((ROOT / "constraints.txt").read_text().splitlines())
    for group in ("test", "lint", "docs"):
        for dep in extras[group]:
            name = re.split(r"[\[<>=;]", dep)[0].strip().lower().replace("_", "-")
            assert name in lock, f"extra {group}: {name} is not pinned in constraints.txt"


def test_lint_configuration():
    """ruff covers the notebooks with line length 120; pre-commit runs ruff check and format; make test lints."""
    ruff = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]
    assert ruff["line-length"] == 120 and "*.ipynb" in ruff.get("extend-include", [])
    hooks = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    ids = {h["id"] for repo in hooks["repos"] for h in repo["hooks"]}
    assert {"ruff-check", "ruff-format"} <= ids
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: .*\blint\b", makefile, re.M), "make test does not run the lint first"
