#!/usr/bin/env bash
# injector.sh: the Kubernetes injector through a real kube-apiserver
# (scripts/k8s-bin.sh): $N (default 1000) pod creations (server-side
# dry-run) injected by the webhook, alternating with the same creations in
# a namespace the webhook does not cover (the baseline, same run); prints
# the time inside the webhook (p50/p99, goal p99 < 10 ms), both end-to-end
# latencies and their ratio, and the injector's idle RSS and anonymous
# memory after serving them.
set -euo pipefail
cd "$(dirname "$0")/.."
SECRETS_BROKER_K8S_BIN="${SECRETS_BROKER_K8S_BIN:-$(scripts/k8s-bin.sh)}"
export SECRETS_BROKER_K8S_BIN
go test ./bench/injector -run '^$' -bench Admission -benchtime 1x -count 1
