"""The cross-functional transfer wing (Huang et al., arXiv:2504.05565): GGA/GGA+U vs r2SCAN energies and AtomRef.

=========================  =========================================================================================
module                     holds
=========================  =========================================================================================
``compositions``           pymatgen compositions and element-fraction feature matrices
``pairing``                GGA/r2SCAN pairs of RxnNet compounds and of MatPES elemental solids, drops with reasons
``energy_shift``           MP2020 corrections (reconstructed), regression statistics, element importance
``atomref``                AtomRef fits and cross-validation, CHGNet's built-in and checkpoint AtomRefs
``zero_shot``              registry models against MatPES elemental solids (result store)
``energy_shift_report``    chapter 10 (Figs. 1b-d) figures and numbers; the shared parity plot
``atomref_report``         chapter 11 (Fig. 2) tables, figures and numbers
=========================  =========================================================================================
"""
