#!/usr/bin/env bash
# Grow the project's GPAW datasets in priority order (every stage resumes; each finished calculation is stored
# at once in data/dft/store.sqlite, which is committed so that any machine resumes), re-exporting data/dft/
# after the main stages.
#
#   nohup nice -n 19 scripts/dft_production.sh > results/dft-production.log 2>&1 &
#
# One single-threaded GPAW process (the machine is shared); on a free multi-core machine set
# DFT_ARGS="--backend process --workers N".
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
PY="${PYTHON:-$ROOT/.venv/bin/python}"
ARGS="${DFT_ARGS:-}"
N_PER_PROTOTYPE="${N_PER_PROTOTYPE:-5}"
echo "dft production started $(date -u +%FT%TZ) pid $$"
run() { echo "== $(date -u +%T) $*"; "$PY" -m uipbench.dft "$@"; echo "== $(date -u +%T) exit $?"; }
run run convergence --elements Cu --facets 111 --variants "k 5.5/Å⁻¹" $ARGS   # is k 4.5 converged?
run run surfaces --elements Cu Ag Au Pt Pd Ni Al Rh $ARGS  # dataset 2: E-V fits, then 24 slabs + oriented bulks
run run eos --elements Cu Al Si $ARGS                      # lattice-constant validation
run export
run run pairs --max-atoms 1 --n-per-prototype 1 $ARGS      # dataset 1, first slice: one-atom cells
run export
run run pairs-convergence $ARGS                            # dataset-1 settings check (5 cells, 2 variants)
run run pairs --max-atoms 2 --n-per-prototype "$N_PER_PROTOTYPE" $ARGS
run export
run run convergence --elements Cu $ARGS                    # the remaining surface convergence variants
run run pairs --max-atoms 8 --n-per-prototype "$N_PER_PROTOTYPE" $ARGS
run export
echo "dft production finished $(date -u +%FT%TZ)"
