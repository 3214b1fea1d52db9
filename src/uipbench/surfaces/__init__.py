"""The surfaces wing (Focassio, Freitas & Schleder, arXiv:2403.04217): surface energies and the kernel-PCA map.

=========================  =========================================================================================
module                     holds
=========================  =========================================================================================
``slabs``                  the 801 Materials Project slabs as ASE Atoms, slab area, the surface-energy formula
``bulk_references``        each slab's oriented bulk cell (from its interior) and its Materials Project match
``protocols``              static / relaxed model evaluations as engine tasks in the result store; gamma errors
``surface_energy_report``  chapter 01 (Fig. 1): metrics with bootstrap intervals, coverage, figures, chapter numbers
``descriptors``            per-atom descriptors (SOAP, CHGNet, SevenNet, MACE), stored in the result store
``rematch``                REMatch kernels in stored blocks
``kpca``                   kernel PCA of a precomputed kernel
``lattices``               spglib lattice of each slab's bulk; the bulk cells the slabs are compared with
``bootstrap``              seeded bootstrap intervals (parity metrics, Spearman's rho)
``out_of_domain``          chapter 02's analysis: one descriptor end to end, distances from bulk, the verdict
``kpca_report``            chapter 02 (Fig. 2): maps, correlation figure, tidy table, chapter numbers
=========================  =========================================================================================
"""
