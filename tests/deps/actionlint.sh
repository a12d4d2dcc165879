#!/usr/bin/env bash
# Builds actionlint (github.com/rhysd/actionlint), which checks .github/workflows/*.yml in
# tests/release/workflow_test.ts, from the Go module proxy into
#   ${F2S_CACHE:-$HOME/.cache/f2s}/actionlint/<version>/actionlint
# A no-op once that file exists. GOTOOLCHAIN=local: the machine's Go builds it, nothing but
# the module proxy is used.
set -euo pipefail

VERSION=v1.7.12
CACHE=${F2S_CACHE:-$HOME/.cache/f2s}
out="$CACHE/actionlint/$VERSION"
[ -x "$out/actionlint" ] && exit 0

if ! command -v go >/dev/null 2>&1; then
  echo "tests/deps/actionlint.sh: the Go toolchain is needed to build actionlint" >&2
  exit 1
fi
mkdir -p "$CACHE/actionlint"
exec 9>"$CACHE/actionlint/.lock"
flock 9
[ -x "$out/actionlint" ] && exit 0

rm -rf "$out.tmp"
mkdir -p "$out.tmp"
GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOBIN="$out.tmp" \
  go install -trimpath -ldflags="-s -w" "github.com/rhysd/actionlint/cmd/actionlint@$VERSION"
"$out.tmp/actionlint" -version | head -n 1 >&2
rm -rf "$out"
mv "$out.tmp" "$out"
