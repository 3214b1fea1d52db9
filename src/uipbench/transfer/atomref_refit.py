"""Refitting a CHGNet model's AtomRef (composition model) on target data: methods 4 and 5 of the transfer study.

* :func:`refit_atomref` (method 4, the paper's recipe): chgnet's own ``AtomRef.fit`` on the target training
  energies (eV/atom on element fractions, pseudo-inverse). It sets every element absent from the data to **zero**,
  which erases the pretrained reference of those elements; the function reports which ones it zeroed.
* :func:`refit_atomref_residual` (method 5): least squares of the residual ``E_target - E_model`` (eV/atom) on
  element fractions, *added* to the existing AtomRef; elements absent from the data keep their weights (what
  MACE's ``E0s="estimated"`` does for a fine-tune). The pretrained network's prediction is the baseline, so the
  correction is only the functional's per-element shift that the network does not already carry.

Both act in place on ``model.composition_model`` and leave ``is_intensive`` as it was. Energies per atom.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

N_ELEMENTS = 94  #: CHGNet's AtomRef covers H..Pu


def composition_fractions(structures: Sequence, n_elements: int = N_ELEMENTS) -> np.ndarray:
    """(n_structures, 94) element fractions, column z-1 for atomic number z (CHGNet's composition feature)."""
    X = np.zeros((len(structures), n_elements))
    for i, s in enumerate(structures):
        z = np.asarray(s.atomic_numbers, dtype=int)
        if z.min() < 1 or z.max() > n_elements:
            raise ValueError(f"structure {i}: atomic numbers outside 1..{n_elements}")
        X[i] = np.bincount(z - 1, minlength=n_elements) / len(z)
    return X


def _symbol(z: int) -> str:
    from pymatgen.core import Element

    return Element.from_Z(z).symbol


def atomref_weights(model) -> np.ndarray:
    """The model's AtomRef weights (eV/atom per element, 94 values, float64 copy)."""
    return model.composition_model.fc.weight.detach().cpu().numpy().astype(float).ravel().copy()


def set_atomref_weights(model, weights) -> None:
    import torch

    fc = model.composition_model.fc
    w = torch.as_tensor(np.asarray(weights, dtype=float).reshape(fc.weight.shape), dtype=fc.weight.dtype)
    with torch.no_grad():
        fc.weight.copy_(w)
    model.composition_model.fitted = True


def refit_atomref(model, structures: Sequence, energies_per_atom) -> dict:
    """Method 4: chgnet's ``AtomRef.fit`` on (structures, eV/atom); elements absent from the data become 0."""
    before = atomref_weights(model)
    present = composition_fractions(structures).sum(0) > 0
    model.composition_model.fit(list(structures), [float(e) for e in energies_per_atom])
    after = atomref_weights(model)
    zeroed = [_symbol(z + 1) for z in np.flatnonzero(~present & (np.abs(before) > 1e-8))]
    return {
        "atomref_variant": "refit",
        "elements_fitted": [_symbol(z + 1) for z in np.flatnonzero(present)],
        "elements_zeroed": zeroed,
        "weights": {_symbol(z + 1): float(after[z]) for z in np.flatnonzero(present)},
    }


def residual_delta(fractions: np.ndarray, residual) -> np.ndarray:
    """Minimum-norm least-squares per-element shift δ with ``fractions @ δ ≈ residual``; δ = 0 where absent."""
    X = np.asarray(fractions, dtype=float)
    r = np.asarray(residual, dtype=float)
    if X.shape[0] != r.shape[0]:
        raise ValueError(f"{X.shape[0]} compositions but {r.shape[0]} residuals")
    if not np.all(np.isfinite(r)):
        raise ValueError("residuals must be finite")
    present = np.flatnonzero(X.sum(0) > 0)
    delta = np.zeros(X.shape[1])
    delta[present] = np.linalg.pinv(X[:, present]) @ r
    return delta


def predict_energy_per_atom(model, structures: Sequence) -> np.ndarray:
    """The model's energy per atom (eV/atom) of each structure, one at a time (the fast way on CPU, see NOTES)."""
    import torch

    model.eval()
    out = np.empty(len(structures))
    with torch.no_grad():
        for i, s in enumerate(structures):
            graph = model.graph_converter(s)
            e = model([graph], task="e")["e"]
            out[i] = float(e.reshape(-1)[0])  # CHGNet is intensive: eV/atom
    return out


def refit_atomref_residual(model, structures: Sequence, energies_per_atom, baseline=None) -> dict:
    """Method 5: AtomRef += least squares of (E_target - E_model) on element fractions; absent elements unchanged.

    ``baseline``: the model's own predictions (eV/atom) when already computed, else they are computed here.
    """
    target = np.asarray(energies_per_atom, dtype=float)
    pred = predict_energy_per_atom(model, structures) if baseline is None else np.asarray(baseline, dtype=float)
    X = composition_fractions(structures)
    residual = target - pred
    delta = residual_delta(X, residual)
    before = atomref_weights(model)
    set_atomref_weights(model, before + delta)
    left = residual - X @ delta
    present = np.flatnonzero(X.sum(0) > 0)
    return {
        "atomref_variant": "residual",
        "elements_fitted": [_symbol(z + 1) for z in present],
        "elements_zeroed": [],
        "delta": {_symbol(z + 1): float(delta[z]) for z in present},
        "residual_mae_before_ev_per_atom": float(np.mean(np.abs(residual))),
        "residual_mae_after_ev_per_atom": float(np.mean(np.abs(left))),
    }
