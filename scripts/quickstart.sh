#!/usr/bin/env bash
# quickstart.sh: the main job on the embedded default, a local key; no Vault
# or AWS. Everything it makes goes to .quickstart/ in this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
work=.quickstart
mkdir -p "$work" && chmod 700 "$work"
export SECRETS_BROKER_LOCAL_KEY="$PWD/$work/local.key"
go build -trimpath -o "$work/secrets-broker" ./cmd/secrets-broker
sb="$work/secrets-broker"

say() { printf '\n$ %s\n' "$*"; }

if [[ ! -f $SECRETS_BROKER_LOCAL_KEY ]]; then
	say "secrets-broker keygen"
	"$sb" keygen
fi

say "secrets-broker encrypt --file examples/quickstart/secrets.yaml --out $work/secrets.enc.yaml --context env=demo --force   # --force: replace the file a previous run made"
"$sb" encrypt --file examples/quickstart/secrets.yaml --out "$work/secrets.enc.yaml" --context env=demo --force
cut -c1-90 "$work/secrets.enc.yaml"

say "secrets-broker inspect --in $work/secrets.enc.yaml --verify   # names, keys, context; never values"
"$sb" inspect --in "$work/secrets.enc.yaml" --verify

cp examples/quickstart/broker.yaml examples/quickstart/app.conf.tmpl "$work/"
say "secrets-broker validate --config $work/broker.yaml   # no Vault, no KMS contacted"
"$sb" validate --config "$work/broker.yaml"

say "secrets-broker run --once --config $work/broker.yaml   # the init-container job"
"$sb" run --once --config "$work/broker.yaml"
ls -lR "$work/out" | sed -n '1,20p'
echo "--- $work/out/app.conf"
cat "$work/out/app.conf"

say "secrets-broker run --once --config $work/broker.yaml   # again: nothing changed, nothing written"
"$sb" run --once --config "$work/broker.yaml"

say "secrets-broker exec --config $work/broker.yaml --redact-output -- sh -c 'echo \$api_key'"
"$sb" exec --config "$work/broker.yaml" --redact-output -- sh -c 'echo "api_key is $api_key"'

say "printf %s 's3cr3t' | secrets-broker encrypt --name api_token   # one secret, compact text form"
token="$(printf %s 's3cr3t' | "$sb" encrypt --name api_token)"
echo "$token"

say "secrets-broker decrypt --name db_password <<< \"\$token\"   # sealed for api_token: refused"
set +e
"$sb" decrypt --name db_password <<<"$token"
echo "exit code $? (4 = integrity)"
set -e

echo
echo "quickstart: OK (files in $work/)"
