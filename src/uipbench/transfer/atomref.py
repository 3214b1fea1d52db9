"""Per-element reference energies ("AtomRef") fitted by least squares on composition, and CHGNet's own.

CHGNet predicts ``E/N = sum_i x_i mu_i + E_GNN/N``: a linear *composition model* (``AtomRef``) carries the bulk
of the energy scale and the network only the rest. Huang et al. (2025) show that GGA/GGA+U and r2SCAN energies
differ mostly by such a per-element shift, so refitting the AtomRef to the target functional is what makes
GGA -> r2SCAN transfer learning work. This module

* fits AtomRefs exactly as CHGNet does (:meth:`chgnet.model.composition_model.AtomRef.fit`): intensive energies
  per atom on element fractions, solved with the Moore-Penrose pseudo-inverse; and the extensive variant
  (total energy on element counts);
* cross-validates them with seeded k folds: an element that is absent from a training fold has no reference,
  so held-out compounds containing it are predicted as NaN and *counted* (never silently dropped);
* loads CHGNet's built-in AtomRefs (``"MPtrj"``: GGA/GGA+U, the one CHGNet 0.3.0 uses; ``"MP-r2SCAN"``: the
  one of the r2SCAN model shipped with chgnet 0.4.2) as element -> eV/atom.

Energies in eV/atom (intensive) or eV (extensive, per cell).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .compositions import composition_matrix, element_order, to_composition, unseen_elements

#: CHGNet's built-in AtomRef datasets (argument of ``AtomRef.initialize_from``)
CHGNET_ATOMREFS = ("MPtrj", "MP-r2SCAN")
#: CHGNet stores 94 weights (H..Pu); elements its dataset lacks keep a weight of numerically zero
_UNFITTED_ABS_EV = 1e-8


@dataclass
class AtomRefFit:
    """A fitted AtomRef: one reference energy per element (eV/atom)."""

    references: pd.Series  #: element -> mu (eV/atom), elements in atomic-number order
    intensive: bool = True
    n_train: int = 0
    counts: pd.Series = field(default_factory=lambda: pd.Series(dtype=int))  #: training compounds per element

    @property
    def elements(self) -> list[str]:
        return list(self.references.index)

    def predict(self, compositions: Sequence) -> np.ndarray:
        """Composition-weighted reference energy: eV/atom (intensive) or eV per given composition (extensive).

        NaN for a composition with an element this fit has no reference for (see :func:`unseen_elements`).
        """
        known = [e for e, v in self.references.items() if np.isfinite(v)]
        unseen = unseen_elements(compositions, known)
        ok = np.array([len(u) == 0 for u in unseen])
        out = np.full(len(compositions), np.nan)
        if ok.any():
            comps = [c for c, good in zip(compositions, ok) if good]
            X, _ = composition_matrix(comps, known, kind="fraction" if self.intensive else "count")
            out[ok] = X @ self.references[known].to_numpy()
        return out

    def scaled(self, compositions: Sequence, energies) -> np.ndarray:
        """``energies`` minus the AtomRef prediction (CHGNet's target for the graph network)."""
        return np.asarray(energies, dtype=float) - self.predict(compositions)


def fit_atomref(
    compositions: Sequence, energies, intensive: bool = True, elements: Sequence[str] | None = None
) -> AtomRefFit:
    """Least-squares per-element references, CHGNet's way (pseudo-inverse of the feature matrix).

    ``intensive=True``: ``energies`` are eV/atom and features are element fractions (CHGNet's convention).
    ``intensive=False``: ``energies`` are eV per composition (e.g. per cell) and features are element counts.
    Elements that occur in no training composition get NaN (CHGNet leaves them at zero, which would silently
    predict them as zero-energy atoms).
    """
    energies = np.asarray(energies, dtype=float)
    if len(energies) != len(compositions):
        raise ValueError(f"{len(compositions)} compositions but {len(energies)} energies")
    if not np.all(np.isfinite(energies)):
        raise ValueError("energies must be finite (pair the data first, see uipbench.transfer.pairing.pair_columns)")
    X, els = composition_matrix(compositions, kind="fraction" if intensive else "count")
    # CHGNet: pinv(X^T X) X^T y, which equals pinv(X) y (the minimum-norm least-squares solution)
    mu = np.linalg.pinv(X) @ energies
    refs = pd.Series(mu, index=els, name="mu_ev_per_atom")
    counts = pd.Series((X > 0).sum(0), index=els, name="n_compounds")
    if elements is not None:  # report on a fixed element list, NaN where not fitted
        order = element_order(set(elements) | set(els))
        refs, counts = refs.reindex(order), counts.reindex(order, fill_value=0)
    return AtomRefFit(references=refs, intensive=intensive, n_train=len(energies), counts=counts)


@dataclass
class CVResult:
    """Out-of-fold AtomRef predictions and what could not be predicted."""

    predictions: pd.DataFrame  #: per compound: fold, reference energy (NaN if unseen elements), unseen elements
    fits: list[AtomRefFit]
    missing_by_fold: dict[int, list[str]]  #: elements of each test fold absent from its training folds

    @property
    def n_unpredictable(self) -> int:
        return int(self.predictions["reference_energy"].isna().sum())

    @property
    def unseen_element_counts(self) -> pd.Series:
        s = self.predictions["unseen_elements"].str.split().explode().dropna()
        s = s[s != ""]
        return s.value_counts().sort_index()


def cross_validate_atomref(
    compositions: Sequence, energies, n_splits: int = 5, seed: int = 0, intensive: bool = True, index=None
) -> CVResult:
    """k-fold (shuffled, seeded) out-of-fold AtomRef references for every compound.

    Each compound's reference energy comes from a fit that never saw it. A compound whose elements include one
    absent from its training folds gets NaN, and the element is listed in ``unseen_elements`` and
    ``missing_by_fold``.
    """
    from sklearn.model_selection import KFold

    energies = np.asarray(energies, dtype=float)
    comps = [to_composition(c) for c in compositions]
    n = len(comps)
    if n_splits < 2 or n_splits > n:
        raise ValueError(f"n_splits must be between 2 and the number of compounds ({n}), got {n_splits}")
    fold = np.full(n, -1)
    ref = np.full(n, np.nan)
    unseen_col = [""] * n
    fits, missing = [], {}
    for k, (tr, te) in enumerate(KFold(n_splits=n_splits, shuffle=True, random_state=seed).split(np.arange(n))):
        fit = fit_atomref([comps[i] for i in tr], energies[tr], intensive=intensive)
        fits.append(fit)
        test = [comps[i] for i in te]
        fold[te] = k
        ref[te] = fit.predict(test)
        unseen = unseen_elements(test, fit.elements)
        for i, u in zip(te, unseen):
            unseen_col[i] = " ".join(u)
        missing[k] = element_order({e for u in unseen for e in u})
    pred = pd.DataFrame(
        {"fold": fold, "reference_energy": ref, "unseen_elements": unseen_col},
        index=index if index is not None else pd.RangeIndex(n),
    )
    return CVResult(predictions=pred, fits=fits, missing_by_fold=missing)


# ----------------------------------------------------------------------------------------------------------------
# CHGNet's built-in references


def _symbols_by_z(n: int) -> list[str]:
    from pymatgen.core import Element

    return [Element.from_Z(z).symbol for z in range(1, n + 1)]


def chgnet_atomref(dataset: str) -> pd.Series:
    """CHGNet's built-in AtomRef ``dataset`` ("MPtrj" or "MP-r2SCAN") as element -> eV/atom (intensive).

    Read from ``chgnet.model.composition_model.AtomRef.initialize_from`` (weights hard-coded in chgnet 0.4.2).
    Elements the dataset does not contain (weight numerically zero) are NaN.
    """
    import torch
    from chgnet.model.composition_model import AtomRef

    if dataset not in CHGNET_ATOMREFS:
        raise ValueError(f"unknown CHGNet AtomRef {dataset!r}; choose one of {CHGNET_ATOMREFS}")
    model = AtomRef(is_intensive=True)
    model.initialize_from(dataset)
    if not model.is_intensive:
        raise RuntimeError(f"CHGNet AtomRef {dataset!r} is not intensive")
    with torch.no_grad():
        w = model.fc.weight.detach().cpu().numpy().astype(float).ravel()
    w[np.abs(w) < _UNFITTED_ABS_EV] = np.nan
    return pd.Series(w, index=_symbols_by_z(len(w)), name=f"chgnet_{dataset}_ev_per_atom")


def chgnet_checkpoint_atomref(model: str) -> pd.Series:
    """The composition-model weights stored in a pretrained CHGNet checkpoint (registry name: "chgnet-0.3.0",
    "chgnet-r2scan"; the file comes from :func:`uipbench.models.weights_files`).

    Lets the chapter show which built-in AtomRef each pretrained model really carries (the r2SCAN model was
    fine-tuned with its composition model frozen at ``"MP-r2SCAN"``, see its README in the chgnet package).
    """
    import torch

    from ..models import get_spec, weights_files

    if get_spec(model).family != "chgnet":
        raise ValueError(f"{model!r} is not a CHGNet model")
    # trusted file shipped inside the installed chgnet wheel (it pickles more than tensors)
    state = torch.load(weights_files(model)[0], map_location="cpu", weights_only=False)
    w = state["model"]["state_dict"]["composition_model.fc.weight"].numpy().astype(float).ravel()
    w[np.abs(w) < _UNFITTED_ABS_EV] = np.nan
    return pd.Series(w, index=_symbols_by_z(len(w)), name=f"{model}_checkpoint_ev_per_atom")
