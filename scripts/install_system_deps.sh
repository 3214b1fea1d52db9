#!/usr/bin/env bash
# Best-effort installation of the system packages that some tests use (called by `make test`):
#   chromium  headless rendering check of the built book (tests/test_spine.py skips with a reason without it)
# Needs root (or sudo) and Debian/Ubuntu apt; anywhere else it says what it skipped and exits 0.
set -u
want=()
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || want+=(chromium)
[ ${#want[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_system_deps: no apt-get; not installing ${want[*]} (the tests that need them will skip)"; exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "install_system_deps: not root; not installing ${want[*]} (the tests that need them will skip)"; exit 0
  fi
fi
echo "install_system_deps: apt-get install ${want[*]}"
$SUDO apt-get update -qq >/dev/null 2>&1 || true
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${want[@]}" >/dev/null 2>&1 \
  || echo "install_system_deps: apt-get install ${want[*]} failed (the tests that need them will skip)"
exit 0
