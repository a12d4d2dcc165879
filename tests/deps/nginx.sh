#!/usr/bin/env bash
# nginx and wrk (Debian packages): the reference proxy and the load generator of
# `deno task bench fizzlet` (bench/load.ts falls back to a Deno loop without wrk). No test
# needs them, so a failed install only warns. A no-op when both are installed; the package
# scripts are kept from starting an nginx service.
set -euo pipefail

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
[ ${#need[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
made_policy=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  made_policy=1
fi
cleanup() { [ -z "$made_policy" ] || $SUDO rm -f "$policy"; }
trap cleanup EXIT

install() {
  $SUDO apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 "${need[@]}"
}
if ! install >/dev/null 2>&1; then
  $SUDO apt-get update -q -o DPkg::Lock::Timeout=600 >/dev/null &&
    install >/dev/null ||
    echo "tests/deps/nginx.sh: could not install ${need[*]}; the fizzlet bench will skip them" >&2
fi
exit 0
