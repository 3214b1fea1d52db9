"""The model registry: every universal interatomic potential the benchmark knows by name (:data:`REGISTRY`,
:func:`get_spec`) with its family, variant, description, citation and training data.

Imported by :mod:`uipbench.weights` (where each name's weight files are) and :mod:`uipbench.models` (how each is
loaded); it imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass


class ModelNotAvailableError(RuntimeError):
    """The weights of a model cannot be had here; the message says which file, where, and how to supply it."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  #: chgnet | sevennet | mace | matgl
    variant: str  #: chgnet version, mace size, matgl model name
    description: str
    citation: str
    #: the functional / data the model was trained on (the benchmark's DFT is PBE)
    training: str = "MPtrj (PBE/PBE+U)"


_CHGNET_CITE = "B. Deng et al., Nat. Mach. Intell. 5, 1031 (2023)."
_MACE_CITE = "I. Batatia et al., A foundation model for atomistic materials chemistry, arXiv:2401.00096."
_MATGL_CITE = "C. Chen, S. P. Ong, Nat. Comput. Sci. 2, 718 (2022); MatPES: A. D. Kaplan et al., arXiv:2503.04070."

# fmt: off
REGISTRY: dict[str, ModelSpec] = {s.name: s for s in [
    ModelSpec("chgnet-0.3.0", "chgnet", "0.3.0", "CHGNet 0.3.0 (MPtrj)", _CHGNET_CITE),
    ModelSpec("chgnet-0.2.0", "chgnet", "0.2.0", "CHGNet 0.2.0 (MPtrj; the surfaces paper's version)",
              _CHGNET_CITE),
    ModelSpec("chgnet-r2scan", "chgnet", "r2scan", "CHGNet fine-tuned on MP-r2SCAN (transfer paper)",
              "X. Huang et al., arXiv:2504.05565 (2025).", training="MP-r2SCAN (transfer from MPtrj)"),
    ModelSpec("sevennet-0", "sevennet", "7net-0", "SevenNet-0 (11 Jul 2024)",
              "Y. Park et al., J. Chem. Theory Comput. 20, 4857 (2024)."),
    ModelSpec("mace-mp-0-small", "mace", "small", "MACE-MP-0 small", _MACE_CITE),
    ModelSpec("mace-mp-0-medium", "mace", "medium", "MACE-MP-0 medium", _MACE_CITE),
    ModelSpec("mace-mp-0-large", "mace", "large", "MACE-MP-0 large", _MACE_CITE),
    ModelSpec("m3gnet", "matgl", "M3GNet-MatPES-PBE-v2025.1-PES",
              "M3GNet (MatPES PBE; pre-matgl-3.0 weights run by matgl 4: not validated, see NOTES)", _MATGL_CITE,
              training="MatPES (PBE)"),
    ModelSpec("tensornet", "matgl", "TensorNet-MatPES-PBE-v2025.1-PES",
              "TensorNet (MatPES PBE; pre-matgl-3.0 weights run by matgl 4: valid for single-element cells only)",
              _MATGL_CITE, training="MatPES (PBE)"),
]}
# fmt: on


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered: {sorted(REGISTRY)}") from None
