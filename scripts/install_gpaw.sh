#!/usr/bin/env bash
# Install GPAW (the project's optional `dft` extra) into the project's venv, idempotently.
#
#   scripts/install_gpaw.sh            # system libraries (when missing and we may install them) + pip gpaw
#   scripts/install_gpaw.sh /path/to/python    # (or PYTHON=/path/to/python)
#
# GPAW's pip package compiles a C extension against libxc, BLAS, FFTW and (optionally) MPI, so the Debian
# development packages come first. The pinned `gpaw` pulls the PyPI package `gpaw-data`, which carries the PAW
# setups (no download at run time, no GPAW_SETUP_PATH needed). conda users get gpaw from conda-forge instead
# (environment.yml). Exit status 0 when GPAW imports at the end, 1 otherwise.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${1:-${PYTHON:-$ROOT/.venv/bin/python}}"  # first argument, or $PYTHON, or the venv
GPAW_VERSION="${GPAW_VERSION:-26.7.0}"
APT_PACKAGES=(libxc-dev libopenblas-dev libfftw3-dev openmpi-bin libopenmpi-dev)

if "$PYTHON" -c "import gpaw, sys; sys.exit(0 if gpaw.__version__ == '$GPAW_VERSION' else 1)" 2>/dev/null; then
    echo "gpaw $GPAW_VERSION already installed for $PYTHON"
    exit 0
fi

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
fi
if ((${#missing[@]})); then
    echo "installing system packages: ${missing[*]}"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
            echo "error: need root (or passwordless sudo) to apt-get install ${missing[*]}" >&2; exit 1; fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${missing[@]}"
fi

CONSTRAINTS=()
[ -f "$ROOT/constraints.txt" ] && CONSTRAINTS=(-c "$ROOT/constraints.txt")
# Never let pip touch torch: the constraints file pins it; gpaw does not depend on it anyway.
"$PYTHON" -m pip install "${CONSTRAINTS[@]}" "gpaw==$GPAW_VERSION"
"$PYTHON" -c "import gpaw; print('gpaw', gpaw.__version__, 'installed')"
