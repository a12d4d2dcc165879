#!/usr/bin/env bash
# Debian's chromium (and a font set that renders every screen): the browser the UI's
# end-to-end tests drive through playwright-core (tests/ui/). Playwright never downloads a
# browser here; the tests launch /usr/bin/chromium. A no-op when both are installed.
set -euo pipefail

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
[ ${#need[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
install() {
  $SUDO apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 "${need[@]}"
}
# The package lists may be missing or stale on a fresh machine: update once when needed.
if ! install; then
  $SUDO apt-get update -q -o DPkg::Lock::Timeout=600
  install
fi
