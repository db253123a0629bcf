#!/usr/bin/env bash
# kms.sh: opening a KMS-sealed secrets file of $N entries (default 100) at
# $LATENCY per KMS request (default 10ms), serial against the broker's
# whole run --once, in the same run (bench/kms; the KMS is the in-process
# test double: AWS KMS is not reachable here).
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
go build -trimpath -o "$work/secrets-broker" ./cmd/secrets-broker
go run ./bench/kms -broker "$work/secrets-broker" -n "${N:-100}" -latency "${LATENCY:-10ms}" -runs "${RUNS:-3}"
