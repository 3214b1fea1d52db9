"""Training data for CHGNet's ``Trainer``: labelled frames in chgnet's units, and the grouped, seeded split.

The project's frames (``data/dft/*.extxyz``, and the MP-r2SCAN loader's output, :mod:`.mp_r2scan`) carry per
functional ``fn``: ``info["energy_<fn>_ev"]`` (total energy, eV), ``arrays["forces_<fn>_ev_per_a"]`` (eV/Å) and
``info["stress_<fn>_ev_per_a3"]`` (Voigt xx yy zz yz xz xy, eV/Å³, ASE sign: negative under compression).
chgnet's :class:`~chgnet.data.dataset.StructureData` wants energies per atom (eV/atom), forces in eV/Å and
stresses as 3x3 in VASP's convention (kBar, positive under compression); it multiplies them by -0.1 to get GPa in
the sign of its own prediction (``1/V dE/dε``, the ASE sign). Hence :func:`ase_stress_to_chgnet_kbar`:
``-10 * stress / ase.units.GPa`` as 3x3. A missing or masked stress is NaN: chgnet's loss drops NaN labels
(``allow_missing_labels=True``).

:func:`group_split` splits 8:1:1 by *structure group* (a strained/rattled family of one cell never straddles two
splits), seeded, and returns ids, so the split can be stored with the results.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

#: elements whose GPAW stress labels are masked until their cells are recomputed at training grade (legacy set:
#: 400 eV is not converged for the B/C/N/O/F setups, see NOTES "DFT labels for training")
FIRST_ROW_UNCONVERGED = ("B", "C", "N", "O", "F")
SPLITS = ("train", "val", "test")


def ase_stress_to_chgnet_kbar(stress) -> np.ndarray:
    """ASE stress (Voigt 6 or 3x3, eV/Å³, ASE sign) -> the 3x3 kBar, VASP-sign label that StructureData expects."""
    from ase.stress import voigt_6_to_full_3x3_stress
    from ase.units import GPa

    s = np.asarray(stress, dtype=float)
    if s.shape == (6,):
        s = voigt_6_to_full_3x3_stress(s)
    if s.shape != (3, 3):
        raise ValueError(f"stress must be Voigt (6,) or (3, 3), got shape {s.shape}")
    return -10.0 * s / GPa


def chgnet_kbar_to_ase_stress(kbar) -> np.ndarray:
    """Inverse of :func:`ase_stress_to_chgnet_kbar`: VASP-sign kBar 3x3 -> ASE-sign eV/Å³ 3x3."""
    from ase.units import GPa

    return -np.asarray(kbar, dtype=float) * GPa / 10.0


def frame_group(atoms) -> str:
    """The structure group of a frame: ``info["group"]`` (training-grade pairs, MP-r2SCAN: the material id), else
    the frame id without its running index (legacy pairs: ``Ag-ref-s0-003`` -> ``Ag-ref-s0``)."""
    if "group" in atoms.info:
        return str(atoms.info["group"])
    fid = str(atoms.info["id"])
    head, _, tail = fid.rpartition("-")
    return head if head and tail.isdigit() else fid


@dataclass
class TrainingSet:
    """Structures and labels in chgnet's units, one entry per frame, addressed by ``ids``."""

    ids: list[str]
    groups: list[str]
    structures: list  #: pymatgen Structures
    energies: np.ndarray  #: eV/atom
    forces: list[np.ndarray]  #: eV/Å, (n_atoms, 3)
    stresses: list[np.ndarray]  #: kBar, VASP sign, 3x3; NaN where masked or missing
    magmoms: list | None = None  #: μB per atom (absolute), or None
    functional: str = ""
    source: str = ""
    masked_stress_ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, ids: Iterable[str]) -> list[int]:
        pos = {i: k for k, i in enumerate(self.ids)}
        return [pos[i] for i in ids]

    def subset(self, ids: Sequence[str]) -> TrainingSet:
        idx = self.index(ids)
        return TrainingSet(
            ids=[self.ids[i] for i in idx],
            groups=[self.groups[i] for i in idx],
            structures=[self.structures[i] for i in idx],
            energies=self.energies[idx],
            forces=[self.forces[i] for i in idx],
            stresses=[self.stresses[i] for i in idx],
            magmoms=None if self.magmoms is None else [self.magmoms[i] for i in idx],
            functional=self.functional,
            source=self.source,
            masked_stress_ids=[i for i in self.masked_stress_ids if i in set(ids)],
        )

    def checksum(self) -> str:
        """sha256 over ids, species, positions, cells and labels (rounded): part of every training run's key."""
        h = hashlib.sha256()
        for k, s in enumerate(self.structures):
            h.update(self.ids[k].encode())
            h.update(np.asarray(s.atomic_numbers, dtype=np.int64).tobytes())
            h.update(np.round(s.cart_coords, 6).tobytes())
            h.update(np.round(s.lattice.matrix, 6).tobytes())
            h.update(np.round([self.energies[k]], 8).tobytes())
            h.update(np.round(self.forces[k], 6).tobytes())
            h.update(np.round(np.nan_to_num(self.stresses[k], nan=1e30), 5).tobytes())
        return h.hexdigest()


def frames_to_training_set(
    frames: Sequence,
    functional: str = "r2scan",
    mask_stress: Callable[[object], bool] | Sequence[str] | None = None,
    source: str = "",
) -> TrainingSet:
    """Convert ASE frames to chgnet's units for ``functional`` ("r2scan", "pbe", ...).

    ``mask_stress``: a predicate on the frame, or a list of elements (a frame containing any of them gets a NaN
    stress label, e.g. :data:`FIRST_ROW_UNCONVERGED` for the legacy pairs). Frames without a stress label get NaN
    too. Energies must be finite (a frame without an energy label is an error, not a silent drop).
    """
    from pymatgen.io.ase import AseAtomsAdaptor

    if mask_stress is not None and not callable(mask_stress):
        masked_elements = set(mask_stress)

        def mask_stress(a) -> bool:
            return bool(masked_elements & set(a.get_chemical_symbols()))

    ids, groups, structures, energies, forces, stresses, magmoms, masked = [], [], [], [], [], [], [], []
    have_magmoms = True
    e_key, f_key, s_key = f"energy_{functional}_ev", f"forces_{functional}_ev_per_a", f"stress_{functional}_ev_per_a3"
    m_key = f"magmoms_{functional}_bohr"
    for a in frames:
        fid = str(a.info.get("id", len(ids)))
        if e_key not in a.info or f_key not in a.arrays:
            raise KeyError(f"frame {fid}: no {e_key!r} / {f_key!r} labels (functional {functional!r})")
        n = len(a)
        e = float(a.info[e_key]) / n
        if not np.isfinite(e):
            raise ValueError(f"frame {fid}: energy label is not finite")
        s = a.info.get(s_key)
        if s is None or (mask_stress is not None and mask_stress(a)):
            kbar = np.full((3, 3), np.nan)
            masked.append(fid)
        else:
            kbar = ase_stress_to_chgnet_kbar(s)
        ids.append(fid)
        groups.append(frame_group(a))
        structures.append(AseAtomsAdaptor.get_structure(a))
        energies.append(e)
        forces.append(np.asarray(a.arrays[f_key], dtype=float))
        stresses.append(kbar)
        if m_key in a.arrays:
            magmoms.append(np.abs(np.asarray(a.arrays[m_key], dtype=float)))
        else:
            have_magmoms = False
    if len(set(ids)) != len(ids):
        raise ValueError("frame ids are not unique")
    return TrainingSet(
        ids=ids,
        groups=groups,
        structures=structures,
        energies=np.asarray(energies, dtype=float),
        forces=forces,
        stresses=stresses,
        magmoms=magmoms if have_magmoms and magmoms else None,
        functional=functional,
        source=source,
        masked_stress_ids=masked,
    )


def group_split(
    ids: Sequence[str],
    groups: Sequence[str],
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    compositions: Mapping[str, Mapping[str, float]] | None = None,
    cover: str = "all",
) -> dict[str, list[str]]:
    """Seeded split of ``ids`` into train/val/test by group (8:1:1 of the groups by default).

    Groups are sorted, permuted with ``numpy.random.default_rng(seed)`` and cut at the cumulative fractions (each
    of val and test gets at least one group when there are three or more). With ``compositions`` (group -> its
    atomic fractions), test and then val groups are taken in that order only among groups whose composition lies
    in the span of the compositions that stay in training, i.e. whose composition-linear reference energy (AtomRef)
    the training data determine. An element seen only in a held-out group, or only in one training compound with
    another otherwise unseen element (Au and Cu only in AuCu3), leaves that reference undetermined, and an energy
    error of eV/atom would measure that, not the model; in a small set of elemental solids and a few compounds it
    would dominate every MAE. ``cover="test"`` requires it of the test groups only (the validation groups then
    only pick the best epoch). Returns ``{"train": ids, "val": ids, "test": ids}``, in the order of ``ids``.
    """
    if len(ids) != len(groups):
        raise ValueError(f"{len(ids)} ids but {len(groups)} groups")
    if abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0:
        raise ValueError(f"fractions must be non-negative and sum to 1, got {fractions}")
    uniq = sorted(set(groups))
    n = len(uniq)
    if n < 3:
        raise ValueError(f"a grouped train/val/test split needs at least 3 groups, got {n}")
    order = [uniq[i] for i in np.random.default_rng(seed).permutation(n)]
    n_val = max(1, int(round(fractions[1] * n)))
    n_test = max(1, int(round(fractions[2] * n)))
    if n - n_val - n_test < 1:
        raise ValueError(f"{n} groups leave no training group at fractions {fractions}")
    held = _held_out(order, n_val, n_test, compositions, cover)
    which = {g: "train" for g in order} | {g: part for part, gs in held.items() for g in gs}
    out: dict[str, list[str]] = {k: [] for k in SPLITS}
    for i, g in zip(ids, groups, strict=True):
        out[which[g]].append(i)
    return out


def _held_out(order: list[str], n_val: int, n_test: int, compositions, cover: str = "all") -> dict[str, list[str]]:
    if compositions is None:
        return {"test": order[len(order) - n_test :], "val": order[len(order) - n_test - n_val : len(order) - n_test]}
    elements = sorted({e for g in order for e in compositions[g]})
    vec = {g: np.array([float(compositions[g].get(e, 0.0)) for e in elements]) for g in order}

    def determined(train: set, groups: list[str]) -> bool:
        rows = np.array([vec[h] for h in order if h in train])
        if not len(rows):
            return False
        r = np.linalg.matrix_rank(rows)
        return all(np.linalg.matrix_rank(np.vstack([rows, vec[x]])) == r for x in groups)

    train = set(order)
    held: dict[str, list[str]] = {"test": [], "val": []}
    for g in reversed(order):  # the same end of the permutation as without ``compositions``
        part = "test" if len(held["test"]) < n_test else "val" if len(held["val"]) < n_val else None
        if part is None:
            break
        # every held-out group must stay determined by what remains in training (val too, unless cover="test")
        must = held["test"] if part == "val" and cover == "test" else [*held["test"], *held["val"], g]
        if determined(train - {g}, must):
            held[part].append(g)
            train.discard(g)
    if not held["test"] or not held["val"]:
        raise ValueError(
            f"{len(held['test'])} test and {len(held['val'])} val groups of {len(order)} have compositions that the "
            f"remaining training groups determine (cover={cover!r}): no composition-covered split (add compounds and "
            "elemental references, or pass compositions=None)"
        )
    return held


def split_checksum(split: dict[str, list[str]]) -> str:
    return hashlib.sha256(json.dumps({k: split[k] for k in SPLITS}, sort_keys=True).encode()).hexdigest()
