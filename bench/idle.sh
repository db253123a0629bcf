#!/usr/bin/env bash
# idle.sh: resident memory of an idle sidecar. Starts "secrets-broker run"
# holding $N (default 100) KV v2 secrets in one template against a local
# Vault dev server, waits $WAIT seconds (default 30), and prints its
# resident set (VmRSS, and its anonymous and file-backed parts) beside the
# bench/minimal client's peak for the same secrets, run in the same run.
# Target (issue 9): idle RSS <= 14 MiB after 30 s.
# Run as root, it starts the daemon as user 65532 from the root-owned
# binary, as the image does (the kernel treats a process that does not own
# its executable differently when asked to give pages back).
set -euo pipefail
cd "$(dirname "$0")/.."
n="${N:-100}"
wait_s="${WAIT:-30}"
# shellcheck source=bench/vault-dev.sh
source bench/vault-dev.sh
go build -trimpath -o "$work/minimal" ./bench/minimal
seed_kv "$n"
printf 'vault:\n  address: %s\n  auth: {method: token, token_file: token}\noutput_root: out\noutputs:\n  - path: app.conf\n    template: app.tmpl\n' "$VAULT_ADDR" >"$work/one.yaml"
for i in $(seq 0 $((n - 1))); do echo "s$i={{ with secret \"secret/data/bench/s$i\" }}{{ .Data.data.password }}{{ end }}"; done >"$work/app.tmpl"
cd "$work"
mkdir -p out
/usr/bin/time -f "%M" -o minimal.rss ./minimal -addr "$VAULT_ADDR" -token-file token -n "$n" -out out/min.conf
as_user=()
if [[ $(id -u) == 0 ]]; then
	chmod 755 "$work" && chown -R 65532:65532 out one.yaml app.tmpl token
	as_user=(setpriv --reuid=65532 --regid=65532 --clear-groups)
fi
env -u VAULT_TOKEN HOME="$work" "${as_user[@]}" ./secrets-broker run --config one.yaml 2>daemon.log &
pid=$!
for _ in $(seq 100); do [[ -s out/app.conf ]] && break; sleep 0.1; done
[[ -s out/app.conf ]] || { cat daemon.log >&2; echo "the daemon rendered nothing" >&2; exit 1; }
kib() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$pid/status"; }
start_rss=$(kib VmRSS)
sleep "$wait_s"
rss=$(kib VmRSS) anon=$(kib RssAnon) file=$(kib RssFile) uid=$(awk '$1 == "Uid:" {print $2}' "/proc/$pid/status")
kill "$pid"; wait "$pid" 2>/dev/null || true
min=$(cat minimal.rss)
printf 'idle sidecar (uid %s), %d secrets, after %ss: RSS %.1f MiB (anon %.1f, file %.1f; %.1f MiB after the first render)\n' "$uid" "$n" "$wait_s" "$(bc -l <<<"$rss/1024")" "$(bc -l <<<"$anon/1024")" "$(bc -l <<<"$file/1024")" "$(bc -l <<<"$start_rss/1024")"
printf 'bench/minimal peak RSS for the same secrets: %.1f MiB; idle broker/minimal: %.2fx (target: idle <= 14 MiB)\n' "$(bc -l <<<"$min/1024")" "$(bc -l <<<"$rss/$min")"
