#!/usr/bin/env bash
# The whole test suite, as `npm test` runs it: static checks, then the system parts the
# tests need (installed once by tests/deps/*.sh), then every *_test.ts under tests/.
# Ends with a plain "N passed, N failed" line.
#
#   bash tests/run.sh                 # everything
#   bash tests/run.sh tests/fizzlet   # only some test files or folders (checks still run)
#   bash tests/run.sh --unit          # the fast lane: checks, then every test that needs no
#                                     # external system (EXTERNAL below), no tests/deps install
set -euo pipefail
cd "$(dirname "$0")/.."
DENO=${DENO:-$PWD/node_modules/.bin/deno}
export NO_COLOR=1

# Tests that need a system tests/deps/*.sh installs (nginx, prometheus, chromium, tini, kafka,
# the Kubernetes cluster, actionlint) or the npm registry: folders or files. `--unit` runs
# every other *_test.ts; a new test joins the fast lane unless it is listed here.
EXTERNAL=(
  tests/cluster/ tests/kube/chart_test.ts tests/kube/ha_test.ts tests/kube/ha_scaling_test.ts
  tests/kube/kubeconfig_test.ts tests/kube/operator_test.ts tests/kube/schedule_test.ts
  tests/autoscaler/original_metrics_test.ts
  tests/autoscaler/dashboard_test.ts tests/autoscaler/dev_test.ts tests/autoscaler/prometheus_test.ts
  tests/kafka/dev_test.ts tests/kafka/kafka39_test.ts tests/kafka/kafka4_test.ts
  tests/kafka/original_f2s_test.ts tests/async/kafka_test.ts tests/async/call_state_test.ts
  tests/ui/e2e_test.ts tests/fizzlet/pid1_test.ts tests/release/
)
# Unit tests that change what a whole process shares (Deno.env): not among the files the
# fast lane runs side by side in one process, whose other tests start processes that inherit it.
OWN_PROCESS=(tests/kube/manifests_test.ts)
unit=0
if [ "${1:-}" = "--unit" ]; then
  unit=1
  shift
fi

checks() {
  echo "== static checks (fmt, lint, type check)"
  "$DENO" fmt --check &&
    "$DENO" lint &&
    "$DENO" check main.ts $(git ls-files --cached --others --exclude-standard '*.ts' | grep -v '^main.ts$' | grep -v '^ui/' | tr '\n' ' ')
}
mkdir -p tests/artifacts
if [ "$unit" = 1 ] && [ $# -eq 0 ]; then
  # The fast lane checks while its tests run (the type check is busy while the tests mostly
  # wait); it fails when either does.
  checks >tests/artifacts/checks.log 2>&1 &
  checking=$!
else
  checks
fi

echo "== system parts the tests use"
[ "$unit" = 1 ] && echo "(skipped: --unit)"
for dep in tests/deps/*.sh; do
  [ "$unit" = 0 ] || break
  [ -e "$dep" ] || continue
  echo "-- $dep"
  bash "$dep"
done

echo "== tests"
# The static checks type-check every file, tests included: no second check here.
targets=("$@")
if [ "$unit" = 1 ] && [ ${#targets[@]} -eq 0 ]; then
  # Every test file not EXTERNAL, several at a time in one process (`--parallel`; DENO_JOBS,
  # default 4: the process tests mostly wait). Files that change what the whole process
  # shares (its environment) run beside them in a process of their own.
  parallel=()
  serial=()
  for f in $(git ls-files --cached --others --exclude-standard 'tests/*_test.ts' | sort); do
    for e in "${EXTERNAL[@]}"; do [[ $f == "$e"* ]] && continue 2; done
    for e in "${OWN_PROCESS[@]}"; do [[ $f == "$e" ]] && serial+=("$f") && continue 2; done
    parallel+=("$f")
  done
  set +e
  "$DENO" test -A --no-check ${serial[@]+"${serial[@]}"} >tests/artifacts/test-output.1.log 2>&1 &
  own=$!
  DENO_JOBS=${DENO_JOBS:-4} "$DENO" test -A --no-check --parallel "${parallel[@]}" \
    >tests/artifacts/test-output.0.log 2>&1
  status=$?
  wait "$own" || status=1
  wait "$checking" || status=1
  cat tests/artifacts/checks.log
  cat tests/artifacts/test-output.[01].log | tee tests/artifacts/test-output.log
  passed=0
  failed=0
  for log in tests/artifacts/test-output.[01].log; do
    summary=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$log" | tail -n 1 || true)
    passed=$((passed + $(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"${summary:-| 0 passed}")))
    failed=$((failed + $(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"${summary:-| 0 failed}")))
  done
  rm -f tests/artifacts/test-output.[01].log tests/artifacts/checks.log
  echo "$passed passed, $failed failed"
  exit "$status"
fi
[ ${#targets[@]} -gt 0 ] || targets=(tests/)
set +e
"$DENO" test -A --no-check "${targets[@]}" 2>&1 | tee tests/artifacts/test-output.log
status=${PIPESTATUS[0]}
set -e
summary=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' tests/artifacts/test-output.log | tail -n 1 || true)
passed=$(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"$summary")
failed=$(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"$summary")
echo "${passed:-0} passed, ${failed:-0} failed"
exit "$status"
