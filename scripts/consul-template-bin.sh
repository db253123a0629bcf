#!/usr/bin/env bash
# consul-template-bin.sh: print the path of a consul-template binary, built
# from the Go module proxy the first time, for the side-by-side template
# tests (templates/testdata/compat). Cached by version next to the Vault
# build (normally ~/.cache/secrets-broker/); built in a throw-away module,
# so it never enters the product's go.mod.
#
# Usage: scripts/consul-template-bin.sh
#        CONSUL_TEMPLATE_VERSION=v0.41.1 scripts/consul-template-bin.sh
set -euo pipefail

version="${CONSUL_TEMPLATE_VERSION:-v0.41.1}"
cache_root="${SECRETS_BROKER_CACHE:-$(dirname "$(go env GOCACHE)")/secrets-broker}"
bin="$cache_root/consul-template-${version#v}"

if [[ -x "$bin" ]] && "$bin" -v >/dev/null 2>&1; then
	echo "$bin"
	exit 0
fi
mkdir -p "$cache_root"
exec 9>"$cache_root/.consul-template-build.lock"
flock 9
if [[ -x "$bin" ]] && "$bin" -v >/dev/null 2>&1; then
	echo "$bin"
	exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
printf 'module secrets-broker.invalid/consultemplate\n\ngo 1.25\n\nrequire github.com/hashicorp/consul-template %s\n' "$version" >"$work/go.mod"
echo "consul-template-bin: building consul-template $version from the Go module proxy (first time on this machine)" >&2
(
	cd "$work"
	GOFLAGS=-mod=mod go build -trimpath -o "$bin.tmp" github.com/hashicorp/consul-template
)
mv -f "$bin.tmp" "$bin"
"$bin" -v >&2
echo "$bin"
