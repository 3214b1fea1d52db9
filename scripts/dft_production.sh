#!/usr/bin/env bash
# Grow the project's GPAW datasets in priority order (every stage resumes; each finished calculation is stored
# at once in data/dft/store.sqlite, which is committed so that any machine resumes), re-exporting data/dft/
# after the main stages.
#
#   nohup nice -n 19 scripts/dft_production.sh > results/dft-production.log 2>&1 &
#
# One single-threaded GPAW process (the machine is shared); on a free multi-core machine set
# DFT_ARGS="--backend process --workers N".
# shellcheck source=scripts/dft_env.sh
source "$(dirname "${BASH_SOURCE[0]}")/dft_env.sh"
ARGS="${DFT_ARGS:-}"
echo "dft production started $(date -u +%FT%TZ) pid $$"
run() { echo "== $(date -u +%T) $*"; "$PY" -m uipbench.dft "$@"; echo "== $(date -u +%T) exit $?"; }
run run surfaces --elements Cu Ag Au Pt Pd Ni Al Rh $ARGS  # dataset 2: E-V fits, then 24 slabs + oriented bulks
run run eos --elements Cu Al Si $ARGS                      # lattice-constant validation
run export
run run pairs-convergence $ARGS                            # dataset-1 k-mesh check (2.0 vs 3.5 per Å⁻¹)
run run pairs --n-per-prototype "$N_PER_PROTOTYPE" $ARGS   # dataset 1, breadth first (sample 0 of all, then 1, ...)
run export
run run convergence --elements Cu $ARGS                    # surface convergence variants (Cu: all facets)
run run convergence --elements Al --facets 111 --variants default "k 4.5/Å⁻¹" "k 5.5/Å⁻¹" "+2 layers" \
    "+2 layers, k 4.5/Å⁻¹" "k 6.5/Å⁻¹" "k 7.5/Å⁻¹" $ARGS  # Al(111), the largest difference to the MP γ
run run relax $ARGS                                        # static vs relaxed γ of 7 slabs (BFGS, checkpointed)
run export
echo "dft production finished $(date -u +%FT%TZ)"
