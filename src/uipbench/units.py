"""Unit conversions, from CODATA values in :mod:`scipy.constants` (one place for every conversion factor).

Quantities carry their unit in their name (``gamma_j_per_m2``, ``energy_ev_per_atom``); these factors convert
between the units the codes speak (eV, Å: ASE, GPAW, the models) and the units the papers report (J/m², GPa).
"""

from __future__ import annotations

from scipy import constants

#: 1 eV/Å² in J/m² (16.02176634: the elementary charge in C times 1e20). Divided by 1e-20 m² per Å² rather than by
#: ``constants.angstrom**2``, whose square carries one rounding (1.0000000000000002e-20): the value is then exactly
#: the decimal 16.02176634, as the committed tables were computed with
EV_PER_A2_TO_J_PER_M2 = constants.electron_volt / 1e-20
#: 1 eV/Å³ in GPa (160.2176634)
EV_PER_A3_TO_GPA = constants.electron_volt / 1e-30 / constants.giga
#: meV per eV
MEV_PER_EV = 1.0 / constants.milli
