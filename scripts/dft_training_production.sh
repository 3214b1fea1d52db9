#!/usr/bin/env bash
# Training-grade dataset 1 (issue 16), resumable: the label-convergence study, then the groups (E-V equilibrium,
# frames and check neighbours, breadth first, whole-group retries), then the export of data/dft/. Every finished
# calculation is stored at once in data/dft/store.sqlite (committed), so any machine resumes.
#
#   nohup nice -n 19 scripts/dft_training_production.sh > results/dft-training.log 2>&1 &
#
# The run uses a copy of src/ frozen at its start (results/dft-src/): editing the package during a run of many
# hours cannot change the code its later stages (new worker processes) import. On a free multi-core machine set
# DFT_ARGS="--backend process --workers N"; the default is two single-threaded GPAW processes.
# shellcheck source=scripts/dft_env.sh
source "$(dirname "${BASH_SOURCE[0]}")/dft_env.sh"
ARGS="${DFT_ARGS:---backend process --workers 2}"
STORE="$ROOT/data/dft/store.sqlite"
SNAP="$ROOT/results/dft-src-$$"  # one copy per run: two runs (say, the two stages) can share the store
rm -rf "$SNAP" && mkdir -p "$SNAP/src" && cp -r "$ROOT/src/uipbench" "$SNAP/src/"
export PYTHONPATH="$SNAP/src"
echo "dft training production started $(date -u +%FT%TZ) pid $$, code frozen at $(git rev-parse --short HEAD)"
run() { echo "== $(date -u +%T) $*"; "$PY" -m uipbench.dft "$@" --store "$STORE"; echo "== $(date -u +%T) exit $?"; }
STAGES="${STAGES:-label-convergence training}"  # e.g. STAGES=training to run one stage
for stage in $STAGES; do
  case "$stage" in
    label-convergence) run run label-convergence $ARGS ;;
    # shellcheck disable=SC2086
    training) run run training --n-per-prototype "$N_PER_PROTOTYPE" --n-check 1 --wave "${WAVE:-4}" ${ELEMENTS:+--elements $ELEMENTS} $ARGS ;;
    *) echo "unknown stage $stage"; exit 2 ;;
  esac
  run export --out "$ROOT/data"
done
rm -rf "$SNAP"
echo "dft training production finished $(date -u +%FT%TZ)"
