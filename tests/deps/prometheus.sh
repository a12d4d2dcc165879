#!/usr/bin/env bash
# Installs Debian's `prometheus` for the tests that read the autoscaler's signal from a real
# Prometheus (tests/harness/prometheus.ts starts it). A no-op when `prometheus` is on PATH.
# Debian's package is used so nothing is downloaded outside the distribution's registry.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=600)

# The package would start a system-wide Prometheus on :9090 where an init system runs; the
# tests start their own. Forbid service starts during the install unless a policy exists.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  trap '$SUDO rm -f "$policy"' EXIT
fi

# Refresh the package lists only when they do not know the package yet.
if ! apt-cache show prometheus >/dev/null 2>&1; then
  $SUDO apt-get update -q -o DPkg::Lock::Timeout=600
fi
if ! $SUDO apt-get install "${APT_OPTS[@]}" prometheus; then
  # Stale lists (a mirror moved the .deb): refresh once and retry.
  $SUDO apt-get update -q -o DPkg::Lock::Timeout=600
  $SUDO apt-get install "${APT_OPTS[@]}" prometheus
fi
prometheus --version 2>&1 | head -n 1
