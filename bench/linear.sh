#!/usr/bin/env bash
# linear.sh: is the broker's cost linear in the number of secrets? For N in
# $SIZES (default 100 1000 10000) KV v2 secrets in a local Vault dev server,
# renders them whole-process with secrets-broker "run --once" and with
# bench/minimal (vault/api, 8 in flight, one file), in two layouts: one
# template with N secrets, and N dotenv outputs of one secret each. Runs
# alternate A B A B in the same run; prints medians of wall time, CPU time
# (user+sys) and peak RSS (GNU time) and the ratios broker/minimal (for N
# outputs, against the minimal client writing N files with os.WriteFile: no
# temporary file, fsync or rename, which the broker's atomic writes do).
# Targets (issue 9): wall <= 1.3x and CPU <= 2x at 1000 and 10000.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-3}"
sizes="${SIZES:-100 1000 10000}"
# shellcheck source=bench/vault-dev.sh
source bench/vault-dev.sh
go build -trimpath -o "$work/minimal" ./bench/minimal

max=0
for n in $sizes; do ((n > max)) && max=$n; done
seed_kv "$max"

measure() { # label, command...
	local label=$1; shift
	rm -rf "$work/out"; mkdir -p "$work/out"
	/usr/bin/time -f "%e %U %S %M" -o "$work/t" env -u VAULT_TOKEN HOME="$work" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
	read -r wall user sys rss <"$work/t"
	echo "$label $wall $(echo "$user + $sys" | bc) $rss" >>"$work/results"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '%-26s %8s %8s %9s   %s\n' "case" "wall s" "cpu s" "rss MiB" "broker/minimal wall cpu rss"
for n in $sizes; do
	: >"$work/app.tmpl"
	{
		echo "vault:"
		echo "  address: $VAULT_ADDR"
		echo "  auth: {method: token, token_file: token}"
		echo "output_root: out"
		echo "outputs:"
		echo "  - path: app.conf"
		echo "    template: app.tmpl"
	} >"$work/one.yaml"
	{
		echo "vault:"
		echo "  address: $VAULT_ADDR"
		echo "  auth: {method: token, token_file: token}"
		echo "output_root: out"
		echo "secrets:"
		for i in $(seq 0 $((n - 1))); do echo "  s$i: vault:secret/data/bench/s$i#password"; done
		echo "outputs:"
		for i in $(seq 0 $((n - 1))); do printf '  - path: o%d.env\n    secrets: [s%d]\n' "$i" "$i"; done
	} >"$work/many.yaml"
	for i in $(seq 0 $((n - 1))); do echo "s$i={{ with secret \"secret/data/bench/s$i\" }}{{ .Data.data.password }}{{ end }}"; done >"$work/app.tmpl"
	: >"$work/results"
	for _ in $(seq "$runs"); do
		measure minimal "$work/minimal" -addr "$VAULT_ADDR" -token-file "$work/token" -n "$n" -out "$work/out/app.conf"
		measure one-template "$work/secrets-broker" run --once --config "$work/one.yaml"
		measure many-outputs "$work/secrets-broker" run --once --config "$work/many.yaml"
		measure minimal-files "$work/minimal" -addr "$VAULT_ADDR" -token-file "$work/token" -n "$n" -files -out "$work/out"
	done
	declare -A W C R
	for label in minimal one-template minimal-files many-outputs; do
		W[$label]=$(awk -v l=$label '$1==l {print $2}' "$work/results" | median)
		C[$label]=$(awk -v l=$label '$1==l {print $3}' "$work/results" | median)
		R[$label]=$(awk -v l=$label '$1==l {print $4}' "$work/results" | median)
	done
	for label in minimal one-template minimal-files many-outputs; do
		ratio=""
		base=minimal
		[[ $label == many-outputs ]] && base=minimal-files
		if [[ $label != minimal* ]]; then
			ratio=$(awk -v a="${W[$label]}" -v b="${W[$base]}" -v c="${C[$label]}" -v d="${C[$base]}" -v e="${R[$label]}" -v f="${R[$base]}" \
				'BEGIN {printf "%.2fx %.2fx %.2fx", a/(b>0?b:0.01), c/(d>0?d:0.01), e/f}')
		fi
		printf '%-26s %8s %8s %9.1f   %s\n' "$label n=$n" "${W[$label]}" "${C[$label]}" "$(echo "${R[$label]} / 1024" | bc -l)" "$ratio"
	done
done
