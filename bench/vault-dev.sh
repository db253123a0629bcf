# vault-dev.sh, sourced by the bench scripts: makes $work (removed at exit
# unless KEEP is set), builds secrets-broker into it, and starts a Vault dev
# server on a free loopback port with a random root token. Sets VAULT_ADDR
# (exported), token and $work/token; the server is stopped at exit. Defines
# seed_kv.
vault_bin="$(scripts/vault-bin.sh)"
work="$(mktemp -d)"
trap 'kill "$vault_pid" 2>/dev/null || true; [[ -n ${KEEP:-} ]] || rm -rf "$work"' EXIT
go build -trimpath -o "$work/secrets-broker" ./cmd/secrets-broker
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
token="root-$RANDOM$RANDOM"
HOME="$work" "$vault_bin" server -dev -dev-root-token-id="$token" -dev-listen-address="127.0.0.1:$port" -dev-no-store-token -log-level=error >"$work/vault.log" 2>&1 &
vault_pid=$!
export VAULT_ADDR="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -sf "$VAULT_ADDR/v1/sys/health" >/dev/null && break; sleep 0.1; done
curl -sf "$VAULT_ADDR/v1/sys/health" >/dev/null || { cat "$work/vault.log" >&2; echo "the Vault dev server did not start" >&2; exit 1; }
printf '%s' "$token" >"$work/token"

# seed_kv N writes the KV v2 secrets secret/bench/s0 .. s(N-1), each
# {"password": "pw-I"}, with 16 writers at once.
seed_kv() {
	seq 0 $(($1 - 1)) | xargs -P 16 -I{} curl -sf -H "X-Vault-Token: $token" -X POST -d '{"data":{"password":"pw-{}"}}' "$VAULT_ADDR/v1/secret/data/bench/s{}" -o /dev/null
}
