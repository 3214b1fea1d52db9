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
``training_data``          frames -> chgnet units (eV/atom, eV/Å, kBar VASP sign, NaN-masked stresses), group split
``atomref_refit``          a CHGNet model's AtomRef refitted to target data (method 4) or to its residuals (method 5)
``training``               methods 1-5 on chgnet's Trainer: freezing, per-epoch checkpoint and resume, gradient norms
``trainer_tools``          start models, layer names, freezing, seeded epoch sampler, loaders, masked-batch guards
``training_runs``          training runs as resumable tasks of the engine and records of the result store
``mp_r2scan``              the MP-r2SCAN training set (figshare 28245650 v2): API file list, verified download, parser
``scaling``                the scaling-law sweep (Fig. 5): nested group subsets, budget rule, power-law fits, ratio
``scaling_report``         chapter 13 (Fig. 5a-b) figures, fit and data-efficiency tables, numbers
=========================  =========================================================================================
"""
