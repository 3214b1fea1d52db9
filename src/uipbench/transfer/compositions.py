"""Compositions and element feature matrices of the transfer chapters (Huang et al. 2025).

* :func:`to_composition`: a pymatgen ``Composition`` from a Composition (also the RxnNet pickle's objects, written
  by an older pymatgen), a dict or a formula;
* :func:`composition_matrix`: the element-fraction (or element-count) feature matrix that AtomRef fits and the
  element-importance models use; :func:`unseen_elements`: which elements a feature set lacks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np


def to_composition(obj):
    """A pymatgen ``Composition`` from a Composition (also one unpickled from an older pymatgen), dict or formula.

    The RxnNet pickle stores ``Composition`` objects whose private attributes predate the installed pymatgen
    (``_natoms`` instead of ``_n_atoms``): some methods fail on them, so they are rebuilt from their element map.
    """
    from pymatgen.core import Composition

    if isinstance(obj, Composition):
        data = getattr(obj, "_data", None)
        if data is None:
            return obj
        return Composition({str(el): float(amt) for el, amt in data.items()})
    if isinstance(obj, Mapping):
        return Composition({str(el): float(amt) for el, amt in obj.items()})
    if isinstance(obj, str):
        return Composition(obj)
    raise TypeError(f"cannot make a Composition from {type(obj).__name__}: {obj!r}")


def _element_amounts(comp) -> dict[str, float]:
    return {str(el): float(amt) for el, amt in comp.get_el_amt_dict().items() if amt != 0}


def element_order(symbols: Iterable[str]) -> list[str]:
    """Element symbols sorted by atomic number (the column order of every feature matrix here)."""
    from pymatgen.core import Element

    return sorted(set(symbols), key=lambda s: Element(s).Z)


def composition_matrix(
    compositions: Sequence, elements: Sequence[str] | None = None, kind: str = "fraction"
) -> tuple[np.ndarray, list[str]]:
    """Feature matrix of ``compositions``: one row per composition, one column per element.

    ``kind="fraction"``: atomic fractions (rows sum to one; CHGNet's intensive AtomRef features).
    ``kind="count"``: number of atoms of each element (the extensive variant).

    ``elements`` fixes the columns (e.g. those of a training set); a composition with an element outside them
    raises ``KeyError`` naming it: callers that expect unseen elements check with :func:`unseen_elements` first.
    Returns ``(X, elements)``.
    """
    if kind not in ("fraction", "count"):
        raise ValueError(f"kind must be 'fraction' or 'count', got {kind!r}")
    comps = [to_composition(c) for c in compositions]
    amounts = [_element_amounts(c) for c in comps]
    if elements is None:
        elements = element_order(s for a in amounts for s in a)
    col = {s: j for j, s in enumerate(elements)}
    X = np.zeros((len(comps), len(elements)))
    for i, a in enumerate(amounts):
        total = sum(a.values())
        for s, n in a.items():
            if s not in col:
                raise KeyError(
                    f"element {s} of composition {comps[i].formula} is not among the {len(elements)} feature columns"
                )
            X[i, col[s]] = n / total if kind == "fraction" else n
    return X, list(elements)


def unseen_elements(compositions: Sequence, known: Iterable[str]) -> list[tuple[str, ...]]:
    """For each composition, the (sorted) tuple of its elements that are not in ``known`` (empty if none)."""
    known = set(known)
    return [tuple(sorted(set(_element_amounts(to_composition(c))) - known)) for c in compositions]
