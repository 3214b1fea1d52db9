"""The model registry: every universal interatomic potential the benchmark knows by name (:data:`REGISTRY`,
:func:`get_spec`) with its family, variant, description, citation and training data.

**matgl weights written before matgl 3.0** (``shared/data/matgl``, materialyzeai/matgl@e9cde229, matgl 2.0.4).
matgl 3.0 moved the aggregation of edge messages from the destination to the source node and declared older weights
"no longer numerically valid"; matgl 4.1.2 still loads them silently. Each such entry therefore says under which
matgl it was validated (``runtime``), on which structures (``domain``: ``"single-element"``, or ``""`` for any),
against what (``validation``), whether the loader restores the old convention (``adapter``), and, when it could not be
validated, why (``unavailable``: the measured reason; the model then raises :class:`ModelNotAvailableError`). The
measurements: tests/test_matgl_models.py and the ``_VALID_*`` texts below.

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
    #: the package version the pinned weights were validated under (``"matgl==4.1.2"``); "" when not declared
    runtime: str = ""
    #: the structures the pinned weights are validated for: ``"single-element"`` or "" (any)
    domain: str = ""
    #: what the pinned weights were checked against (reference values, their source, measured differences)
    validation: str = ""
    #: a loader adapter the pinned weights need (``"matgl-legacy-m3gnet"``: pre-3.0 message-passing convention)
    adapter: str = ""
    #: why the pinned weights cannot be used (measured); a model with a reason here is unavailable by name
    unavailable: str = ""


_CHGNET_CITE = "B. Deng et al., Nat. Mach. Intell. 5, 1031 (2023)."
_MACE_CITE = "I. Batatia et al., A foundation model for atomistic materials chemistry, arXiv:2401.00096."
_MATGL_CITE = "C. Chen, S. P. Ong, Nat. Comput. Sci. 2, 718 (2022); MatPES: A. D. Kaplan et al., arXiv:2503.04070."
_TENSORNET_CITE = "G. Simeon, G. De Fabritiis, NeurIPS 36 (2023) (TensorNet); " + _MATGL_CITE
_MATGL_4 = "matgl==4.1.2"
_MATGL_SRC = "materialyzeai/matgl@e9cde2291acd0b4c4a342428e7dd5e4d596b7bf9 (matgl 2.0.4)"
_VALID_M3GNET_MP = (
    "matgl 4.1.2 + the pre-3.0 aggregation (adapter) reproduces matgl's own test values: MoS (cubic 4.0 A) "
    "-10.824361 eV vs -10.824362 and AcAla3NHMe -250.16827 eV vs -250.16803 (" + _MATGL_SRC + " tests/ext/"
    "test_ase_dgl.py), and the README's cubic-crystal benchmark (pretrained_models/M3GNet-MP-2021.2.8-PES/README.md, "
    "written with these weights at matgl@8ddd066a): 32 elemental a within 0.0042 A (median 0.0002 A; Cs excluded: "
    "flat, isolated-atom energy above a = 5.8 A) and its compounds too (GaAs, NbN, TiN, MgO, NaCl, CsCl, SrTiO3 within "
    "0.001 A; stock 4.1.2: 0.016-0.57 A off). Stock matgl 4.1.2 gets MoS -7.4539 eV, AcAla3NHMe -187.29 eV and a "
    "16-atom Cu(111) slab 21 meV lower: without the adapter these weights are wrong even for single-element slabs."
)
_VALID_TENSORNET = (
    "matgl's own test value AcAla3NHMe -247.286789 eV (" + _MATGL_SRC + " tests/ext/test_ase_pyg.py, PBE model) is "
    "reproduced by the matgl 2.0.4 code (-247.286774 eV, torch 2.13) but not by matgl 4.1.2 (-160.307 eV). On "
    "single-element cells and slabs (fcc Cu, bcc Mo, rattled Cu8, Cu(111), Mo(110), Pt(100)) matgl 4.1.2 equals "
    "the 2.0.4 code: energies within 2e-5 eV per cell, forces 1.3e-6 eV/A, stress 2e-8 eV/A^3 (PBE and r2SCAN); "
    "multi-element cells differ (MgO 7.1 eV per cell). References: the 2.0.4 values in tests/test_matgl_models.py."
)
_UNAVAILABLE_M3GNET_MATPES = (
    "pre-matgl-3.0 M3GNet weights without any published reference value (README: MAEs only; matgl's tests use none) "
    "and the runtime that wrote them (matgl 2.x, DGL backend) cannot run here (DGL does not import with torch 2.13). "
    "Measured: stock matgl 4.1.2 is not valid for them even on single-element slabs (it differs from the pre-3.0 "
    "convention by 0.58 eV (PBE) and 0.73 eV (r2SCAN) on a 16-atom Cu(111) slab); the pre-3.0 adapter is validated "
    "for M3GNet-MP-2021.2.8 only. Use m3gnet-mp-2021.2.8, or matgl >= 3 weights via model_path=DIR."
)

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
    ModelSpec("m3gnet-mp-2021.2.8", "matgl", "M3GNet-MP-2021.2.8-PES",
              "M3GNet (MP-2021.2.8; the surfaces paper's M3GNet; pre-matgl-3.0 weights run by matgl 4.1.2 with the "
              "pre-3.0 message-passing convention restored)", _MATGL_CITE,
              training="MP-2021.2.8 relaxations (PBE/PBE+U)", runtime=_MATGL_4, validation=_VALID_M3GNET_MP,
              adapter="matgl-legacy-m3gnet"),
    ModelSpec("m3gnet", "matgl", "M3GNet-MatPES-PBE-v2025.1-PES",
              "M3GNet (MatPES PBE; pre-matgl-3.0 weights: unavailable, not validated)", _MATGL_CITE,
              training="MatPES (PBE)", unavailable=_UNAVAILABLE_M3GNET_MATPES),
    ModelSpec("m3gnet-r2scan", "matgl", "M3GNet-MatPES-r2SCAN-v2025.1-PES",
              "M3GNet (MatPES r2SCAN; pre-matgl-3.0 weights: unavailable, not validated)", _MATGL_CITE,
              training="MatPES (r2SCAN)", unavailable=_UNAVAILABLE_M3GNET_MATPES),
    ModelSpec("tensornet", "matgl", "TensorNet-MatPES-PBE-v2025.1-PES",
              "TensorNet (MatPES PBE; pre-matgl-3.0 weights run by matgl 4.1.2: valid for single-element structures "
              "only)", _TENSORNET_CITE, training="MatPES (PBE)", runtime=_MATGL_4, domain="single-element",
              validation=_VALID_TENSORNET),
    ModelSpec("tensornet-r2scan", "matgl", "TensorNet-MatPES-r2SCAN-v2025.1-PES",
              "TensorNet (MatPES r2SCAN; pre-matgl-3.0 weights run by matgl 4.1.2: valid for single-element "
              "structures only)", _TENSORNET_CITE, training="MatPES (r2SCAN)", runtime=_MATGL_4,
              domain="single-element", validation=_VALID_TENSORNET),
]}
# fmt: on


def domain_violation(spec: ModelSpec, symbols) -> str:
    """Why a structure with chemical ``symbols`` lies outside ``spec.domain`` ("" when it is inside)."""
    if spec.domain == "single-element":
        elements = sorted(set(symbols))
        if len(elements) != 1:
            return f"it has {len(elements)} elements ({', '.join(elements)})"
    elif spec.domain:
        raise ValueError(f"{spec.name}: unknown validated domain {spec.domain!r}")
    return ""


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered: {sorted(REGISTRY)}") from None
