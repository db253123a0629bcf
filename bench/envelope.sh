#!/usr/bin/env bash
# envelope.sh: envelope seal/open against raw AES-256-GCM on the same data, in
# the same run, on one core; prints each pair's throughput ratio and the
# 100-byte seal+open rate. Targets (issue 2): 64 KiB open >= 0.8x raw GCM;
# 100 B seal+open >= 100k ops/s.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(GOMAXPROCS=1 go test ./envelope -run '^$' -bench . -benchtime "${BENCHTIME:-2s}" -count "${COUNT:-3}")"
echo "$out" | grep -E '^Benchmark'
echo
echo "$out" | awk '
/^Benchmark/ {
	split($1, p, "/"); key = p[1] "/" p[2]; kind = p[3]; sub(/-[0-9]+$/, "", kind)
	ns[key, kind] += $3; n[key, kind]++
	keys[key] = 1
}
END {
	for (k in keys) {
		e = ns[k, "envelope"] / n[k, "envelope"]; r = ns[k, "raw-gcm"] / n[k, "raw-gcm"]
		printf "%-28s envelope %9.0f ns/op  raw-gcm %9.0f ns/op  throughput ratio %.2fx", k, e, r, r / e
		if (k ~ /SealOpen\/100B/) printf "  (%.0f seal+open/s on one core)", 1e9 / e
		printf "\n"
	}
}' | sort
