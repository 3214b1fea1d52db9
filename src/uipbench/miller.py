"""Miller indices and the record ids of the Materials Project surface data set (``100Ag11-20``).

Shared by the data-set parser (:func:`uipbench.datasets.parse_surfaces`) and the surfaces wing
(:mod:`uipbench.surfaces`); it imports nothing of the package, so neither depends on the other through it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ID = re.compile(r"^(?P<index>\d+)(?P<element>[A-Z][a-z]?)(?P<miller>(?:-?\d)+)$")


@dataclass(frozen=True)
class SurfaceId:
    index: int
    element: str
    miller: str  #: as written in the id, e.g. "11-20"
    hkl: tuple[int, ...]  #: three or four (hexagonal Miller-Bravais) signed integers

    @property
    def hkl3(self) -> tuple[int, int, int]:
        """Three-index Miller index (for four-index (h k i l), i = -(h + k) is dropped)."""
        return miller_bravais_to_miller(self.hkl) if len(self.hkl) == 4 else self.hkl  # type: ignore[return-value]


def parse_miller(text: str) -> tuple[int, ...]:
    """Parse a Miller string of signed single digits: ``"111"``, ``"11-20"``, ``"2-1-12"`` -> tuples.

    Four-index strings must satisfy the Miller-Bravais condition i = -(h + k).
    """
    digits = re.findall(r"-?\d", text)
    if "".join(digits) != text or len(digits) not in (3, 4):
        raise ValueError(f"not a three- or four-index Miller string: {text!r}")
    hkl = tuple(int(d) for d in digits)
    if len(hkl) == 4 and hkl[2] != -(hkl[0] + hkl[1]):
        raise ValueError(f"four-index Miller string {text!r} violates i = -(h + k)")
    if not any(hkl):
        raise ValueError(f"Miller index of all zeros: {text!r}")
    return hkl


def miller_bravais_to_miller(hkil: tuple[int, ...]) -> tuple[int, int, int]:
    """(h k i l) -> (h k l) for plane normals in hexagonal axes (the i index is redundant)."""
    h, k, _i, l = hkil
    return (h, k, l)


def parse_surface_id(record_id: str) -> SurfaceId:
    """Split a record id ``<running index><element><Miller>`` such as ``"100Ag11-20"``."""
    m = _ID.match(record_id)
    if not m:
        raise ValueError(f"unparsable surface id: {record_id!r}")
    return SurfaceId(int(m["index"]), m["element"], m["miller"], parse_miller(m["miller"]))
