#!/usr/bin/env bash
# vault-bin.sh: print the path of a real Vault server binary, building it from
# the Go module proxy the first time (see docs/testing.md).
#
# The binary is cached by version under the Go cache's parent directory
# (normally ~/.cache/secrets-broker/), so a machine builds it once. Vault's
# server code is built in a throw-away module of its own: it never enters the
# product's go.mod.
#
# Usage: scripts/vault-bin.sh        # build if missing, print the path
#        VAULT_VERSION=v1.21.0 scripts/vault-bin.sh
set -euo pipefail

version="${VAULT_VERSION:-v1.21.0}"
cache_root="${SECRETS_BROKER_CACHE:-$(dirname "$(go env GOCACHE)")/secrets-broker}"
bin="$cache_root/vault-${version#v}"

if [[ -x "$bin" ]] && "$bin" version >/dev/null 2>&1; then
	echo "$bin"
	exit 0
fi

mkdir -p "$cache_root"
lock="$cache_root/.vault-build.lock"
exec 9>"$lock"
flock 9
# Another process may have finished the build while we waited for the lock.
if [[ -x "$bin" ]] && "$bin" version >/dev/null 2>&1; then
	echo "$bin"
	exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat >"$work/go.mod" <<MOD
module secrets-broker.invalid/vaultdev

go 1.25

require github.com/hashicorp/vault $version

// Vault's own go.mod carries these two replacements; as a dependency its
// replace lines are ignored, so they are repeated here.
replace github.com/99designs/keyring => github.com/Jeffail/keyring v1.2.3

replace github.com/ma314smith/signedxml v1.1.1 => github.com/moov-io/signedxml v1.1.1
MOD
echo "vault-bin: building Vault $version from the Go module proxy (first time on this machine: ~15 min)" >&2
(
	cd "$work"
	GOFLAGS=-mod=mod go build -trimpath -o "$bin.tmp" github.com/hashicorp/vault
)
mv -f "$bin.tmp" "$bin"
"$bin" version >&2
echo "$bin"
