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
  tests/kube/kubeconfig_test.ts tests/kube/operator_test.ts tests/autoscaler/original_metrics_test.ts
  tests/autoscaler/dashboard_test.ts tests/autoscaler/dev_test.ts tests/autoscaler/prometheus_test.ts
  tests/kafka/dev_test.ts tests/kafka/kafka39_test.ts tests/kafka/kafka4_test.ts
  tests/kafka/original_f2s_test.ts tests/async/kafka_test.ts tests/ui/e2e_test.ts
  tests/fizzlet/pid1_test.ts tests/release/
)
unit=0
if [ "${1:-}" = "--unit" ]; then
  unit=1
  shift
fi

echo "== static checks (fmt, lint, type check)"
"$DENO" fmt --check
"$DENO" lint
"$DENO" check main.ts $(git ls-files --cached --others --exclude-standard '*.ts' | grep -v '^main.ts$' | grep -v '^ui/' | tr '\n' ' ')

echo "== system parts the tests use"
[ "$unit" = 1 ] && echo "(skipped: --unit)"
for dep in tests/deps/*.sh; do
  [ "$unit" = 0 ] || break
  [ -e "$dep" ] || continue
  echo "-- $dep"
  bash "$dep"
done

echo "== tests"
mkdir -p tests/artifacts
targets=("$@")
shards=()
if [ "$unit" = 1 ] && [ ${#targets[@]} -eq 0 ]; then
  # Two deno test processes side by side (the process tests mostly wait): the wire and
  # control tests in one, the rest in the other; about the same time each.
  for f in $(git ls-files --cached --others --exclude-standard 'tests/*_test.ts' | sort); do
    for e in "${EXTERNAL[@]}"; do [[ $f == "$e"* ]] && continue 2; done
    case $f in tests/wire/* | tests/control/*) shards[0]+="$f " ;; *) shards[1]+="$f " ;; esac
  done
fi
[ ${#targets[@]} -gt 0 ] || targets=(tests/)
set +e
if [ ${#shards[@]} -gt 0 ]; then
  pids=()
  for i in "${!shards[@]}"; do
    # shellcheck disable=SC2086 # the shard is a list of paths without spaces
    "$DENO" test -A --no-check=remote ${shards[$i]} >"tests/artifacts/test-output.$i.log" 2>&1 &
    pids+=($!)
  done
  status=0
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  cat tests/artifacts/test-output.[0-9].log | tee tests/artifacts/test-output.log
  passed=0
  failed=0
  for log in tests/artifacts/test-output.[0-9].log; do
    summary=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$log" | tail -n 1 || true)
    passed=$((passed + $(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"${summary:-| 0 passed}")))
    failed=$((failed + $(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"${summary:-| 0 failed}")))
  done
  rm -f tests/artifacts/test-output.[0-9].log
  echo "$passed passed, $failed failed"
  exit "$status"
fi
"$DENO" test -A --no-check=remote "${targets[@]}" 2>&1 | tee tests/artifacts/test-output.log
status=${PIPESTATUS[0]}
set -e
summary=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' tests/artifacts/test-output.log | tail -n 1 || true)
passed=$(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"$summary")
failed=$(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"$summary")
echo "${passed:-0} passed, ${failed:-0} failed"
exit "$status"
