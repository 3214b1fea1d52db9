"""Write a source notebook from a compact list of cells (used to author the notebooks in notebooks/).

    from nbtools import write_notebook, md, code, params
    write_notebook("notebooks/00_datasets.ipynb", [md("# Title"), params("x = 1"), code("print(x)")])

Source notebooks are committed without outputs: this writes none.
"""

from __future__ import annotations

import sys

import nbformat


def md(text: str):
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text: str):
    return nbformat.v4.new_code_cell(text.strip("\n"))


def params(text: str):
    cell = code(text)
    cell.metadata["tags"] = ["parameters"]
    return cell


def write_notebook(path: str, cells: list) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, c in enumerate(nb.cells):  # stable ids: reruns of the authoring script give identical files
        c["id"] = f"cell-{i:02d}"
    nbformat.validate(nb)
    with open(path, "w") as f:
        nbformat.write(nb, f)
    print(f"wrote {path} ({len(cells)} cells)", file=sys.stderr)
