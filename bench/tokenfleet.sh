#!/usr/bin/env bash
# tokenfleet.sh: does a fleet refresh its access tokens flat or in lockstep?
# Starts N (default 200) secrets-broker daemons at once against one OpenID
# provider (zitadel's pkg/op, in-process on loopback TLS) issuing tokens of
# LIFETIME (default 10s), after N x/oauth2 clients in the same run (the
# baseline), and prints the OP's token requests per second over CYCLES
# (default 4) lifetimes: mean, peak, peak/mean (target < 2x), and the
# arithmetic for 10,000 pods with 1 h tokens.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
go build -trimpath -o "$work/secrets-broker" ./cmd/secrets-broker
ulimit -n 65536 2>/dev/null || true
# Each daemon holds one inotify instance (128 per user by default).
if [[ $(cat /proc/sys/fs/inotify/max_user_instances) -lt $((${N:-200} + 16)) ]]; then
	sysctl -qw fs.inotify.max_user_instances=$((${N:-200} + 128)) 2>/dev/null || true
fi
go run ./bench/tokenfleet -broker "$work/secrets-broker" -n "${N:-200}" -lifetime "${LIFETIME:-10s}" -cycles "${CYCLES:-4}"
