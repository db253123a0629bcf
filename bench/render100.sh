#!/usr/bin/env bash
# render100.sh: whole-process, one-shot render of 100 KV v2 secrets from a
# local Vault dev server, secrets-broker "run --once" against Vault Agent
# 1.21.0 ("exit_after_auth", the same binary as the dev server), alternating
# A B A B in the same run. Prints each run, then medians of wall time and
# peak RSS (GNU time) and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-7}"
# shellcheck source=bench/vault-dev.sh
source bench/vault-dev.sh

: >"$work/app.tmpl"
for i in $(seq -w 0 99); do
	curl -sf -H "X-Vault-Token: $token" -X POST -d "{\"data\":{\"password\":\"pw-$i\"}}" "$VAULT_ADDR/v1/secret/data/bench/s0$i" >/dev/null
	echo "s$i={{ with secret \"secret/data/bench/s0$i\" }}{{ .Data.data.password }}{{ end }}" >>"$work/app.tmpl"
done

cat >"$work/broker.yaml" <<YAML
vault:
  address: $VAULT_ADDR
  auth: {method: token, token_file: token}
output_root: out-broker
outputs:
  - path: app.conf
    template: app.tmpl
YAML
cat >"$work/agent.hcl" <<HCL
vault { address = "$VAULT_ADDR" }
auto_auth {
  method "token_file" {
    config = { token_file_path = "$work/token" }
  }
}
template {
  source      = "$work/app.tmpl"
  destination = "$work/out-agent/app.conf"
}
exit_after_auth = true
HCL

measure() { # label, command...
	local label=$1; shift
	if [[ $label == secrets-broker ]]; then rm -rf "$work/out-broker"; else rm -rf "$work/out-agent"; mkdir -p "$work/out-agent"; fi
	/usr/bin/time -f "%e %M" -o "$work/t" env -u VAULT_TOKEN HOME="$work" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
	read -r wall rss <"$work/t"
	echo "$label $wall $rss" | tee -a "$work/results"
}
for r in $(seq "$runs"); do
	measure secrets-broker "$work/secrets-broker" run --once --config "$work/broker.yaml"
	measure vault-agent "$vault_bin" agent -config="$work/agent.hcl" -log-level=error
done
cmp "$work/out-broker/app.conf" "$work/out-agent/app.conf" && echo "outputs identical"
python3 - "$work/results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = {}
for label in ("secrets-broker", "vault-agent"):
    w = [float(r[1]) for r in rows if r[0] == label]
    m = [int(r[2]) for r in rows if r[0] == label]
    med[label] = (statistics.median(w), statistics.median(m))
    print(f"{label:15s} median wall {med[label][0]:.3f} s  median peak RSS {med[label][1]/1024:.1f} MiB  ({len(w)} runs)")
b, a = med["secrets-broker"], med["vault-agent"]
print(f"secrets-broker / vault-agent: wall {b[0]/a[0]:.2f}x, peak RSS {b[1]/a[1]:.2f}x")
PY
