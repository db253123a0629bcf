#!/usr/bin/env bash
# floor.sh: the memory floor under the broker. Peak RSS (GNU time) of a
# one-shot render of $N (default 100) KV v2 secrets from a local Vault dev
# server, whole process, by: secrets-broker "run --once"; bench/floor, the
# least any implementation must link and run (the required libraries used
# as the product uses them, text/template for Vault Agent templates, none
# of the product's checks); bench/floor built without the AWS SDK and
# without text/template, to show what each costs; and bench/minimal (vault/api
# alone). Every binary is built as the image builds it (static, -s -w).
# Runs alternate in the same run; prints medians, binary sizes and the
# ratios to the floor, and checks that every program wrote the same file.
# Target (issue 9): the broker's peak <= 14 MiB at 100 secrets.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-7}"
n="${N:-100}"
# shellcheck source=bench/vault-dev.sh
source bench/vault-dev.sh
static() { CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$@"; }
static "$work/secrets-broker" ./cmd/secrets-broker
static "$work/minimal" ./bench/minimal
static "$work/floor" ./bench/floor
static "$work/floor-noaws" -tags floor_noaws ./bench/floor
static "$work/floor-notemplate" -tags floor_notemplate ./bench/floor
seed_kv "$n"
printf 'vault:\n  address: %s\n  auth: {method: token, token_file: token}\noutput_root: out\noutputs:\n  - path: app.conf\n    template: app.tmpl\n' "$VAULT_ADDR" >"$work/one.yaml"
for i in $(seq 0 $((n - 1))); do echo "s$i={{ with secret \"secret/data/bench/s$i\" }}{{ .Data.data.password }}{{ end }}"; done >"$work/app.tmpl"

cd "$work"
mkdir -p got
: >results
measure() { # label, command...
	local label=$1; shift
	rm -rf out && mkdir out
	/usr/bin/time -f "%M" -o t env -u VAULT_TOKEN HOME="$work" "$@" >/dev/null 2>err || { cat err >&2; exit 1; }
	echo "$label $(cat t)" >>results
	outs=(out/*)
	cp "${outs[0]}" "got/$label"
}
common=(--addr "$VAULT_ADDR" --token-file token --n "$n" --out out/app.conf)
for _ in $(seq "$runs"); do
	measure secrets-broker ./secrets-broker run --once --config one.yaml
	measure floor ./floor "${common[@]}"
	measure floor-noaws ./floor-noaws "${common[@]}"
	measure floor-notemplate ./floor-notemplate "${common[@]}"
	measure minimal ./minimal "${common[@]}"
done
for label in floor floor-noaws floor-notemplate minimal; do
	cmp -s got/secrets-broker "got/$label" || { echo "$label wrote another file than the broker" >&2; exit 1; }
done
echo "all five wrote the same $n lines"
python3 - results <<'PY'
import os, statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
labels = ["secrets-broker", "floor", "floor-noaws", "floor-notemplate", "minimal"]
med = {l: statistics.median(int(r[1]) for r in rows if r[0] == l) / 1024 for l in labels}
print(f"{'program':18s} {'binary MB':>9s} {'peak MiB':>9s} {'vs floor':>9s}   ({len(rows)//len(labels)} runs each, medians)")
for l in labels:
    print(f"{l:18s} {os.path.getsize(l)/1e6:9.1f} {med[l]:9.1f} {med[l]/med['floor']:8.2f}x")
print(f"target 14 MiB: broker {'meets' if med['secrets-broker'] <= 14 else 'misses'} it; the floor {'meets' if med['floor'] <= 14 else 'misses'} it")
PY
