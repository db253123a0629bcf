#!/usr/bin/env bash
# k8s-bin.sh: print the directory holding a real kube-apiserver and kubectl
# (built from the Go module proxy the first time) and make sure etcd is
# installed (Debian's etcd-server). No kubelet or controller-manager: the
# tests need the API server (TokenRequest, TokenReview, server-side dry-run).
#
# The binaries are cached by version under the Go cache's parent directory
# (normally ~/.cache/secrets-broker/k8s-VERSION/), like Vault's. Kubernetes
# is built in a throw-away module of its own, never in the product's go.mod:
# it requires k8s.io/kubernetes and replaces each of its ./staging modules by
# the published k8s.io/* v0.X.Y of the same release.
#
# Usage: scripts/k8s-bin.sh           K8S_VERSION=1.37.2 scripts/k8s-bin.sh
set -euo pipefail

version="${K8S_VERSION:-1.37.2}"
minor="${version#1.}"
cache_root="${SECRETS_BROKER_CACHE:-$(dirname "$(go env GOCACHE)")/secrets-broker}"
out="$cache_root/k8s-$version"

if ! command -v etcd >/dev/null; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
fi

ready() { [[ -x "$out/kube-apiserver" && -x "$out/kubectl" ]] && "$out/kube-apiserver" --version >/dev/null 2>&1; }
if ready; then
	echo "$out"
	exit 0
fi
mkdir -p "$cache_root"
exec 9>"$cache_root/.k8s-build.lock"
flock 9
if ready; then
	echo "$out"
	exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
echo "k8s-bin: building kube-apiserver and kubectl v$version from the Go module proxy (first time on this machine: ~10-15 min)" >&2
go mod download -json "k8s.io/kubernetes@v$version" >/dev/null
upstream="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/v$version.mod"
{
	echo "module secrets-broker.invalid/k8sdev"
	echo
	echo "go $(awk '/^go /{print $2; exit}' "$upstream")"
	echo
	echo "require k8s.io/kubernetes v$version"
	echo
	echo "replace ("
	awk -v v="v0.$minor" '/=> \.\/staging/ {print "\t" $1 " => " $1 " " v}' "$upstream"
	echo ")"
} >go.mod
printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n\t_ "k8s.io/kubernetes/cmd/kubectl"\n)\n' >tools.go
GOFLAGS="-mod=mod -buildvcs=false" go mod tidy >&2
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags="$ldflags -X $p.gitVersion=v$version -X $p.gitMajor=1 -X $p.gitMinor=${minor%%.*} -X $p.gitTreeState=clean"
done
mkdir -p "$out.tmp"
for target in kube-apiserver kubectl; do
	GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -ldflags "$ldflags" -o "$out.tmp/$target" "k8s.io/kubernetes/cmd/$target" >&2
done
rm -rf "$out"
mv "$out.tmp" "$out"
"$out/kube-apiserver" --version >&2
echo "$out"
