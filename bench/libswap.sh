#!/usr/bin/env bash
# libswap.sh: what two kept libraries would cost in place of the broker's
# hand-written packages (issue 19): github.com/VictoriaMetrics/metrics
# behind internal/promtext's API, and github.com/cenkalti/backoff/v4 behind
# internal/backoff's. It builds the tree as it is (the baseline) and two
# scratch copies with bench/libswap/*.go.txt copied over the package, then
# measures each binary in the same run, alternating: its size, the peak
# RSS of `version` (package initialisation), of `run --once` rendering $N
# (default 100) KV v2 secrets from a Vault dev server, and of a daemon
# (`run` with /metrics served) after its first render and one scrape, with
# its anonymous memory beside the RSS. Prints medians and each variant's
# difference from the baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${N:-100}"
runs="${RUNS:-5}"
# shellcheck source=bench/vault-dev.sh
source bench/vault-dev.sh
seed_kv "$n"
mv "$work/secrets-broker" "$work/sb-baseline"

variant() { # name, go-get argument or "", package-file=bench-file...
	local name=$1 dep=$2 dir="$work/src-$1"
	shift 2
	mkdir -p "$dir"
	git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$dir"
	local spec
	for spec in "$@"; do cp "bench/libswap/${spec#*=}" "$dir/${spec%%=*}"; done
	(
		cd "$dir"
		if [[ -n $dep ]]; then go get "$dep" >/dev/null 2>&1 || { echo "go get $dep failed" >&2; exit 1; }; fi
		go build -trimpath -o "$work/sb-$name" ./cmd/secrets-broker
	)
}
variant vmmetrics github.com/VictoriaMetrics/metrics@v1.45.0 internal/promtext/promtext.go=promtext_vm.go.txt
variant cenkalti "" internal/backoff/backoff.go=backoff_cenkalti.go.txt

for i in $(seq 0 $((n - 1))); do echo "s$i={{ with secret \"secret/data/bench/s$i\" }}{{ .Data.data.password }}{{ end }}"; done >"$work/app.tmpl"
port2="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
printf 'vault:\n  address: %s\n  auth: {method: token, token_file: token}\noutput_root: out\nrefresh:\n  metrics_address: 127.0.0.1:%s\noutputs:\n  - path: app.conf\n    template: app.tmpl\n' "$VAULT_ADDR" "$port2" >"$work/broker.yaml"
cd "$work"
: >results
measure() { # variant
	local bin="./sb-$1" v pid
	/usr/bin/time -f "%M" -o t.version "$bin" version >/dev/null
	rm -rf out
	/usr/bin/time -f "%M" -o t.once env -u VAULT_TOKEN HOME="$work" "$bin" run --once --config broker.yaml >/dev/null 2>err || { cat err >&2; exit 1; }
	rm -rf out
	env -u VAULT_TOKEN HOME="$work" "$bin" run --config broker.yaml 2>daemon.log &
	pid=$!
	for _ in $(seq 300); do [[ -s out/app.conf ]] && curl -sf "http://127.0.0.1:$port2/metrics" -o metrics.txt && break; sleep 0.1; done
	[[ -s metrics.txt ]] || { cat daemon.log >&2; echo "$1: the daemon served no metrics" >&2; exit 1; }
	kib() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$pid/status"; }
	v="$1 $(stat -c %s "$bin") $(cat t.version) $(cat t.once) $(kib VmHWM) $(kib VmRSS) $(kib RssAnon)"
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	rm -f metrics.txt
	echo "$v" | tee -a results
}
echo "variant binary_bytes version_peak_kib once_peak_kib daemon_peak_kib daemon_rss_kib daemon_anon_kib"
for _ in $(seq "$runs"); do
	for v in baseline vmmetrics cenkalti; do measure "$v"; done
done
python3 - results <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
cols = ["binary", "version peak", "run --once peak", "daemon peak", "daemon RSS", "daemon anon"]
med = {v: [statistics.median(float(r[i + 1]) for r in rows if r[0] == v) for i in range(len(cols))] for v in ("baseline", "vmmetrics", "cenkalti")}
for v, m in med.items():
    print(f"{v:10} " + "  ".join(f"{c} {x / 1024 / (1024 if c == 'binary' else 1):.2f} MiB" for c, x in zip(cols, m)))
for v in ("vmmetrics", "cenkalti"):
    print(f"{v} - baseline: " + "  ".join(f"{c} {(x - b) / 1024 / (1024 if c == 'binary' else 1):+.2f} MiB ({x / b:.3f}x)" for c, x, b in zip(cols, med[v], med["baseline"])))
PY
