#!/usr/bin/env bash
# tini (Debian package): the init the function images run as PID 1 so that processes a
# function leaves behind are reaped; tests/fizzlet/pid1_test.ts runs the fizzlet under it in
# a PID namespace. A no-op when it is installed.
set -euo pipefail

command -v tini >/dev/null 2>&1 && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
install() {
  $SUDO apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 tini
}
if ! install >/dev/null 2>&1; then
  $SUDO apt-get update -q -o DPkg::Lock::Timeout=600 >/dev/null &&
    install >/dev/null ||
    echo "tests/deps/tini.sh: could not install tini; tests/fizzlet/pid1_test.ts will fail" >&2
fi
exit 0
