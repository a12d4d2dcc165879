#!/usr/bin/env bash
# A real Kubernetes cluster on this machine for trying F2S by hand (tests use harness.ts):
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and the process kubelet.
# Needs root (pod network namespaces). docs/test-cluster.md explains the parts.
#
#   bash tests/cluster/cluster.sh up      # build once if needed, start, print export lines
#   eval "$(bash tests/cluster/cluster.sh env)"; kubectl get nodes
#   bash tests/cluster/cluster.sh status  # running clusters and their processes
#   bash tests/cluster/cluster.sh down    # stop, and remove leftovers of crashed runs
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
export PATH="$repo/node_modules/.bin:$PATH"
command -v deno >/dev/null || npm install --no-audit --no-fund --loglevel=error >&2
if [ "${1:-}" = "up" ]; then
  bash tests/deps/cluster.sh >&2
fi
exec deno run -A --no-prompt tests/cluster/cli.ts "$@"
