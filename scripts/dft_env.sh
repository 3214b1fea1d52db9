# Shared preamble of the DFT production scripts (sourced): repository root, one BLAS thread per GPAW process,
# the interpreter (PYTHON, default .venv/bin/python) and the engine arguments (DFT_ARGS).
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
PY="${PYTHON:-$ROOT/.venv/bin/python}"
N_PER_PROTOTYPE="${N_PER_PROTOTYPE:-5}"
