#!/usr/bin/env bash
# k8s-bin.sh: print the directory holding a real kube-apiserver, kubectl and
# etcd, each built from the Go module proxy the first time. No kubelet or
# controller-manager: the tests need the API server (TokenRequest,
# TokenReview, server-side dry-run).
#
# The binaries are cached by version under the Go cache's parent directory
# (normally ~/.cache/secrets-broker/k8s-VERSION/), like Vault's. Kubernetes
# and etcd are built in throw-away modules of their own, never in the
# product's go.mod: Kubernetes requires k8s.io/kubernetes and replaces each
# of its ./staging modules by the published k8s.io/* v0.X.Y of the same
# release; etcd is go.etcd.io/etcd/server/v3.
#
# Usage: scripts/k8s-bin.sh      K8S_VERSION=1.37.2 ETCD_VERSION=3.7.3 scripts/k8s-bin.sh
set -euo pipefail

version="${K8S_VERSION:-1.37.2}"
etcd_version="${ETCD_VERSION:-3.7.3}"
minor="${version#1.}"
cache_root="${SECRETS_BROKER_CACHE:-$(dirname "$(go env GOCACHE)")/secrets-broker}"
out="$cache_root/k8s-$version"

k8s_ready() { [[ -x "$out/kube-apiserver" && -x "$out/kubectl" ]] && "$out/kube-apiserver" --version >/dev/null 2>&1; }
# Each version check captures the whole output first and matches it in the
# shell: a pipe into an early-exiting reader (head, grep -q) can kill the
# writer with SIGPIPE, which pipefail turns into a failure (exit 141).
etcd_ready() {
	[[ -x "$out/etcd" ]] || return 1
	local v
	v="$("$out/etcd" --version 2>/dev/null)" || return 1
	[[ "$v" == *"etcd Version: $etcd_version"* ]]
}
ready() { k8s_ready && etcd_ready; }
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
mkdir -p "$out"
if ! k8s_ready; then
	mkdir -p "$work/k8s" && cd "$work/k8s"
	echo "k8s-bin: building kube-apiserver and kubectl v$version from the Go module proxy (first time on this machine: ~5-10 min)" >&2
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
	for target in kube-apiserver kubectl; do
		GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -ldflags "$ldflags" -o "$out/$target.tmp" "k8s.io/kubernetes/cmd/$target" >&2
		mv -f "$out/$target.tmp" "$out/$target"
	done
	"$out/kube-apiserver" --version >&2
fi
if ! etcd_ready; then
	mkdir -p "$work/etcd" && cd "$work/etcd"
	echo "k8s-bin: building etcd v$etcd_version from the Go module proxy (about a minute)" >&2
	printf 'module secrets-broker.invalid/etcddev\n\ngo 1.25\n' >go.mod
	GOFLAGS="-mod=mod -buildvcs=false" go get "go.etcd.io/etcd/server/v3@v$etcd_version" >&2
	GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3 >&2
	mv -f "$out/etcd.tmp" "$out/etcd"
	etcd_version_out="$("$out/etcd" --version)"
	echo "${etcd_version_out%%$'\n'*}" >&2
fi
echo "$out"
