#!/usr/bin/env bash
# Builds the test cluster's parts from source (tests/cluster/, docs/test-cluster.md):
# kube-apiserver, kube-controller-manager, kube-scheduler and kubectl from k8s.io/kubernetes,
# etcd from go.etcd.io/etcd/server/v3 (one `go build` of tests/cluster/build, whose go.mod
# pins the versions and maps the staging modules to their releases), and helm from
# helm.sh/helm/v4. Everything comes from the Go module proxy. The binaries go to
#   ${F2S_CACHE:-$HOME/.cache/f2s}/cluster/k8s-<version>-<key>/bin
# keyed by tests/cluster/versions.env and the build module; a no-op once that folder is
# complete. Also makes sure iproute2 and openssl are there (Debian packages).
#
# The first build takes 12 to 20 minutes on 2 cores (measured: 698 s with empty Go module and
# build caches); build-times.json beside bin/ records it.
set -euo pipefail
cd "$(dirname "$0")/../cluster"

CACHE=${F2S_CACHE:-$HOME/.cache/f2s}
# shellcheck source=../cluster/versions.env
. ./versions.env
key=$(cat versions.env build/go.mod build/go.sum | sha256sum | cut -c1-12)
out="$CACHE/cluster/k8s-$K8S_VERSION-$key"
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl helm)

need_apt=()
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q -o DPkg::Lock::Timeout=600
  $SUDO apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 "${need_apt[@]}"
fi

[ -e "$out/.complete" ] && exit 0

if ! command -v go >/dev/null 2>&1; then
  echo "tests/deps/cluster.sh: the Go toolchain (1.26 or newer) is needed to build the test cluster" >&2
  exit 1
fi

mkdir -p "$CACHE/cluster"
exec 9>"$CACHE/cluster/.lock"
echo "waiting for other builds of the test cluster (lock $CACHE/cluster/.lock)" >&2
flock 9
[ -e "$out/.complete" ] && exit 0

# Only the Go in PATH: a toolchain download would be a binary from outside the registries.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
have=$(cd build && go list -m -f '{{.Version}}' k8s.io/kubernetes go.etcd.io/etcd/server/v3 | tr '\n' ' ')
if [ "$have" != "$K8S_VERSION $ETCD_VERSION " ]; then
  echo "tests/cluster/build/go.mod pins '$have', versions.env says '$K8S_VERSION $ETCD_VERSION '" >&2
  exit 1
fi

rm -rf "$out.tmp"
mkdir -p "$out.tmp/bin"
minor=${K8S_VERSION#v1.}
minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

echo "building Kubernetes $K8S_VERSION and etcd $ETCD_VERSION into $out (first time: 12 to 20 min)" >&2
start=$(date +%s)
# One invocation, so packages shared by the commands compile once.
(cd build && go build -mod=readonly -trimpath -ldflags="$ldflags" -o "$out.tmp/bin/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubectl \
  go.etcd.io/etcd/server/v3)
# go names the etcd binary after its module path's last element before /v3.
mv "$out.tmp/bin/server" "$out.tmp/bin/etcd"
k8s_seconds=$(($(date +%s) - start))

echo "building helm $HELM_VERSION" >&2
start=$(date +%s)
GOBIN="$out.tmp/bin" go install -trimpath \
  -ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
  "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
helm_seconds=$(($(date +%s) - start))

for b in "${bins[@]}"; do
  [ -x "$out.tmp/bin/$b" ] || { echo "tests/deps/cluster.sh: $b was not built" >&2; exit 1; }
done
"$out.tmp/bin/kube-apiserver" --version >&2
"$out.tmp/bin/etcd" --version | head -n 1 >&2
"$out.tmp/bin/helm" version --short >&2
printf '{"kubernetes_and_etcd": %d, "helm": %d}\n' "$k8s_seconds" "$helm_seconds" \
  >"$out.tmp/build-times.json"
touch "$out.tmp/.complete"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "test cluster binaries ready in $out/bin (build: ${k8s_seconds}s + ${helm_seconds}s)" >&2
