#!/usr/bin/env bash
# The whole test suite, as `npm test` runs it: static checks, then the system parts the
# tests need (installed once by tests/deps/*.sh), then every *_test.ts under tests/.
# Ends with a plain "N passed, N failed" line.
#
#   bash tests/run.sh                 # everything
#   bash tests/run.sh tests/fizzlet   # only some test files or folders (checks still run)
set -euo pipefail
cd "$(dirname "$0")/.."
DENO=${DENO:-$PWD/node_modules/.bin/deno}
export NO_COLOR=1

echo "== static checks (fmt, lint, type check)"
"$DENO" fmt --check
"$DENO" lint
"$DENO" check main.ts $(git ls-files --cached --others --exclude-standard '*.ts' | grep -v '^main.ts$' | grep -v '^ui/' | tr '\n' ' ')

echo "== system parts the tests use"
for dep in tests/deps/*.sh; do
  [ -e "$dep" ] || continue
  echo "-- $dep"
  bash "$dep"
done

echo "== tests"
mkdir -p tests/artifacts
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(tests/)
set +e
"$DENO" test -A --no-check=remote "${targets[@]}" 2>&1 | tee tests/artifacts/test-output.log
status=${PIPESTATUS[0]}
set -e
summary=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' tests/artifacts/test-output.log | tail -n 1 || true)
passed=$(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"$summary")
failed=$(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"$summary")
echo "${passed:-0} passed, ${failed:-0} failed"
exit "$status"
