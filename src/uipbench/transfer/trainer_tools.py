"""Building blocks of :mod:`.training` (chgnet 0.4.2): start models, layer names, freezing, the seeded epoch
sampler, loaders, guards for all-masked batches, and the evaluation on the test split.

Units of :func:`evaluate`: energies eV/atom, forces eV/Å, stresses GPa in the sign of chgnet's prediction (the ASE
sign); labels enter as VASP-sign kBar (see :mod:`.training_data`).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io

import numpy as np
from torch import nn

from .training_data import TrainingSet

# ----------------------------------------------------------------------------------------------------------------
# models


def start_model(start="chgnet-0.3.0"):
    """A fresh, independent CHGNet to train: a registry name (weights through :func:`uipbench.models.weights_files`)
    or a CHGNet instance (deep-copied, e.g. a tiny one in tests)."""
    if not isinstance(start, str):
        return copy.deepcopy(start)
    from chgnet.model import CHGNet

    from ..models import get_spec, weights_files

    if get_spec(start).family != "chgnet":
        raise ValueError(f"{start!r} is not a CHGNet model")
    with contextlib.redirect_stdout(io.StringIO()):  # "CHGNet initialized with ... parameters", once per run
        return CHGNet.from_file(str(weights_files(start)[0]), verbose=False)


def scratch_model(like, seed: int):
    """A randomly initialised CHGNet (``torch.manual_seed(seed)``) with the architecture of ``like``."""
    import torch
    from chgnet.model import CHGNet

    args = dict(like.model_args)
    args.pop("version", None)
    torch.manual_seed(seed)
    with contextlib.redirect_stdout(io.StringIO()):
        return CHGNet(**args)


def gradient_parameter_names(model) -> dict[str, str]:
    """Label -> parameter name of the layers whose gradient norms are recorded (Fig. 3a of the paper): atom, bond,
    angle embeddings; first and last atom and bond convolution (first core linear layer); first readout MLP layer.
    Which layers the paper's "W0"/"W3" labels mean is not stated; these are the names in chgnet 0.4.2."""
    names = {n for n, _ in model.named_parameters()}
    n_atom = len(model.atom_conv_layers)
    n_bond = len(model.bond_conv_layers) if model.bond_conv_layers is not None else 0
    want = {
        "atom_embedding": "atom_embedding.embedding.weight",
        "bond_embedding": "bond_embedding.weight",
        "angle_embedding": "angle_embedding.weight",
        "atom_conv_first": "atom_conv_layers.0.twoBody_atom.mlp_core.layers.0.weight",
        "atom_conv_last": f"atom_conv_layers.{n_atom - 1}.twoBody_atom.mlp_core.layers.0.weight",
        "bond_conv_first": "bond_conv_layers.0.twoBody_bond.mlp_core.layers.0.weight",
        "bond_conv_last": f"bond_conv_layers.{max(n_bond - 1, 0)}.twoBody_bond.mlp_core.layers.0.weight",
        "mlp_first": "mlp.layers.0.weight",
    }
    return {k: v for k, v in want.items() if v in names}


def apply_freeze(model, prefixes, freeze_atomref: bool) -> list[str]:
    """Set ``requires_grad=False`` on parameters whose names start with a prefix (and the AtomRef when asked)."""
    frozen = []
    for name, p in model.named_parameters():
        if any(name.startswith(pre) for pre in prefixes) or (freeze_atomref and name.startswith("composition_model")):
            p.requires_grad = False
            frozen.append(name)
    return frozen


def parameters_sha256(model) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------------------------
# data loaders


class EpochPermutation:
    """Sampler: a permutation of ``indices`` seeded by ``(seed, epoch)``; set ``epoch`` before each epoch."""

    def __init__(self, indices, seed: int):
        self.indices = np.asarray(indices, dtype=int)
        self.seed = int(seed)
        self.epoch = 0

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        return iter(self.indices[rng.permutation(len(self.indices))].tolist())

    def __len__(self) -> int:
        return len(self.indices)


class EmptySafeLoss(nn.Module):
    """chgnet's loss criterion, but 0 (with a gradient path) on an empty selection.

    chgnet drops NaN labels elementwise; a batch whose stresses are *all* masked leaves empty tensors, and torch's
    mean-reduced losses of empty tensors are NaN, which stops chgnet's run ("Exit due to NaN"). Non-empty inputs go
    to the wrapped criterion unchanged (bit-identical results)."""

    def __init__(self, criterion):
        super().__init__()
        self.criterion = criterion

    def forward(self, target, prediction):
        if target.numel() == 0:
            return prediction.sum() * 0.0
        return self.criterion(target, prediction)


@contextlib.contextmanager
def empty_safe_mae():
    """Inside the block chgnet's trainer reports MAE 0 (with batch size 0) for an all-masked batch instead of NaN,
    which would poison its running average; non-empty batches are unchanged. Restored on exit."""
    import chgnet.trainer.trainer as tr

    original = tr.mae

    def mae(prediction, target):
        return prediction.sum() * 0.0 if prediction.numel() == 0 else original(prediction, target)

    tr.mae = mae
    try:
        yield
    finally:
        tr.mae = original


def graphable_ids(model, data: TrainingSet) -> tuple[list[str], dict[str, str]]:
    """Ids whose crystal graph builds; the others with the reason (chgnet would silently swap in a random one)."""
    ok, failed = [], {}
    for i, s in zip(data.ids, data.structures, strict=True):
        try:
            model.graph_converter(s)
            ok.append(i)
        except Exception as exc:  # isolated atom beyond the cutoff, ...
            failed[i] = f"{type(exc).__name__}: {exc}"
    return ok, failed


def structure_loader(model, data: TrainingSet, targets: str, batch_size: int, sampler=None):
    from chgnet.data.dataset import StructureData, collate_graphs
    from torch.utils.data import DataLoader

    if "m" in targets and data.magmoms is None:
        raise ValueError("targets include magnetic moments ('m') but the data carry none")
    with contextlib.redirect_stdout(io.StringIO()):
        ds = StructureData(
            structures=data.structures,
            energies=list(data.energies),
            forces=data.forces,
            stresses=data.stresses if "s" in targets else None,
            magmoms=data.magmoms if "m" in targets else None,
            structure_ids=data.ids,
            graph_converter=model.graph_converter,
            shuffle=False,
        )
    kw = {"sampler": sampler} if sampler is not None else {"shuffle": False}
    return DataLoader(ds, batch_size=batch_size, collate_fn=collate_graphs, num_workers=0, **kw)


def evaluate(model, data: TrainingSet, targets: str = "efs") -> dict:
    """Per-structure predictions of ``model`` on ``data`` (one structure at a time) and MAEs.

    Energies eV/atom, forces eV/Å, stresses GPa (ASE sign, chgnet's prediction convention); NaN labels are left
    out of the MAEs.
    """
    model.eval()
    rows, e_err, f_err, s_err = [], [], [], []
    for k, s in enumerate(data.structures):
        graph = model.graph_converter(s, graph_id=k, mp_id=data.ids[k])
        graph.atom_frac_coord.requires_grad = "f" in targets or "s" in targets
        pred = model([graph], task=targets.replace("m", ""))
        e = float(pred["e"].detach().reshape(-1)[0])
        row = {"id": data.ids[k], "group": data.groups[k], "n_atoms": len(s), "e_true": float(data.energies[k]),
               "e_pred": e}  # fmt: skip
        e_err.append(abs(e - data.energies[k]))
        if "f" in targets:
            f = pred["f"][0].detach().cpu().numpy().astype(float)
            row.update(f_true=data.forces[k].tolist(), f_pred=f.tolist())
            f_err.extend(np.abs(f - data.forces[k]).ravel())
        if "s" in targets:
            sp = pred["s"][0].detach().cpu().numpy().astype(float)
            st = -0.1 * np.asarray(data.stresses[k], dtype=float)  # kBar VASP sign -> GPa, prediction sign
            row.update(s_true_gpa=st.tolist(), s_pred_gpa=sp.tolist())
            good = np.isfinite(st)
            s_err.extend(np.abs(sp - st)[good].ravel())
        rows.append(row)
    out = {"test_predictions": rows, "test_mae_e_ev_per_atom": float(np.mean(e_err))}
    if "f" in targets:
        out["test_mae_f_ev_per_a"] = float(np.mean(f_err))
    if "s" in targets:
        out["test_mae_s_gpa"] = float(np.mean(s_err)) if s_err else float("nan")
    return out
