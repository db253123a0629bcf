#!/usr/bin/env bash
# fleet.sh: does a fleet refresh flat or in lockstep? Starts N (default 200)
# secrets-broker daemons at once against one Vault dev server and a real
# PostgreSQL, each holding a database lease (TTL $TTL, default 10s), and
# prints Vault's request rate per second (from its audit log) over $CYCLES
# TTLs after the last one rendered: mean, peak, peak/mean (target <= 2x).
# BASELINE_REF (a git commit) builds that commit too and runs it first in
# the same run, e.g. BASELINE_REF=006b1ad (Vault's LifetimeWatcher renewals).
set -euo pipefail
cd "$(dirname "$0")/.."
export SECRETS_BROKER_VAULT_BIN="${SECRETS_BROKER_VAULT_BIN:-$(scripts/vault-bin.sh)}"
work="$(mktemp -d)"
trap 'git worktree remove --force "$work/base" 2>/dev/null || true; rm -rf "$work"' EXIT
go build -trimpath -o "$work/secrets-broker" ./cmd/secrets-broker
args=(-broker "$work/secrets-broker" -n "${N:-200}" -ttl "${TTL:-10s}" -cycles "${CYCLES:-4}")
if [[ -n ${BASELINE_REF:-} ]]; then
	git worktree add -q --detach "$work/base" "$BASELINE_REF"
	(cd "$work/base" && go build -trimpath -o "$work/baseline" ./cmd/secrets-broker)
	args+=(-baseline "$work/baseline")
fi
ulimit -n 65536 2>/dev/null || true
# Each daemon holds one inotify instance (128 per user by default); the
# program refuses to run a fleet the limit would cut short.
if [[ $(cat /proc/sys/fs/inotify/max_user_instances) -lt $((${N:-200} + 16)) ]]; then
	sysctl -qw fs.inotify.max_user_instances=$((${N:-200} + 128)) 2>/dev/null || true
fi
go run ./bench/fleet "${args[@]}"
