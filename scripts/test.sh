#!/usr/bin/env bash
# test.sh: the full test suite, as CI runs it, on a fresh machine.
# It installs what it needs: PostgreSQL, podman, busybox-static (Debian
# packages), a real Vault and a real kube-apiserver, kubectl and etcd built
# from the Go module proxy (scripts/vault-bin.sh, scripts/k8s-bin.sh,
# scripts/consul-template-bin.sh, cached per machine), helm and staticcheck; then gofmt,
# go vet, staticcheck, cross-builds, the container image (scripts/image.sh)
# and go test -race.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "PostgreSQL server (Debian packages) for the Vault database-engine tests"
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
	if [[ $(id -u) -ne 0 ]]; then
		echo "PostgreSQL is missing; install Debian's postgresql package (needs root)" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq postgresql >/dev/null
fi
ls -d /usr/lib/postgresql/*/bin/initdb

step "Vault dev server binary (built once per machine from the Go module proxy)"
SECRETS_BROKER_VAULT_BIN="$(scripts/vault-bin.sh)"
export SECRETS_BROKER_VAULT_BIN
"$SECRETS_BROKER_VAULT_BIN" version

step "Kubernetes control plane: kube-apiserver, kubectl and etcd (built once per machine from the Go module proxy)"
SECRETS_BROKER_K8S_BIN="$(scripts/k8s-bin.sh)"
export SECRETS_BROKER_K8S_BIN
"$SECRETS_BROKER_K8S_BIN/kube-apiserver" --version
"$SECRETS_BROKER_K8S_BIN/kubectl" version --client

step "consul-template, for the side-by-side template corpus (built once per machine from the Go module proxy)"
SECRETS_BROKER_CONSUL_TEMPLATE_BIN="$(scripts/consul-template-bin.sh)"
export SECRETS_BROKER_CONSUL_TEMPLATE_BIN

step "checkers of the examples: systemd-analyze (systemd), docker-compose (Debian), actionlint (Go module proxy)"
if ! command -v docker-compose >/dev/null || ! command -v systemd-analyze >/dev/null; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq docker-compose systemd >/dev/null
fi
ACTIONLINT_VERSION=v1.7.12
# Version checks capture the output, then match it in the shell: never a pipe
# into grep -q, whose early exit can kill the writer (exit 141 under pipefail).
have="$("$(go env GOPATH)/bin/actionlint" -version 2>/dev/null || true)"
if [[ "$have" != "${ACTIONLINT_VERSION#v}"* ]]; then
	GOFLAGS=-mod=mod go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
fi

step "helm, for the injector's chart (built once per machine from the Go module proxy)"
HELM_VERSION=v4.3.2
# helm built by go install reports only its minor version; the module
# version is in the binary's build info.
have="$(go version -m "$(go env GOPATH)/bin/helm" 2>/dev/null || true)"
if [[ "$have" != *"helm.sh/helm/v4"*"$HELM_VERSION"* ]]; then
	GOFLAGS=-mod=mod go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
fi
"$(go env GOPATH)/bin/helm" version --short

step "cyclonedx-gomod, for the release snapshot's SBOM (Go module proxy)"
CYCLONEDX_VERSION=v1.10.0
have="$(go version -m "$(go env GOPATH)/bin/cyclonedx-gomod" 2>/dev/null || true)"
if [[ "$have" != *"github.com/CycloneDX/cyclonedx-gomod"*"$CYCLONEDX_VERSION"* ]]; then
	GOFLAGS=-mod=mod go install "github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@$CYCLONEDX_VERSION"
fi

step "staticcheck"
STATICCHECK_VERSION=v0.8.2
gobin="$(go env GOPATH)/bin"
have="$("$gobin/staticcheck" -version 2>/dev/null || true)"
if [[ "$have" != *"(${STATICCHECK_VERSION#v})"* ]]; then
	GOFLAGS=-mod=mod go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi

step "shell scripts: no pipe into an early-exiting reader under pipefail"
# head, grep -q and friends exit at their first match; the writer then dies
# of SIGPIPE and pipefail fails the script (exit 141) on a race: on a cold
# machine that was etcd's version check. Capture output and match in the shell.
bad=""
for f in $(git ls-files '*.sh' 'scripts/*' '.ci/*' 'shared/*' 2>/dev/null || find scripts bench .ci -type f); do
	[[ -f "$f" ]] || continue
	text="$(<"$f")"
	[[ "$text" == *pipefail* ]] || continue
	while IFS= read -r line; do
		bad+="$f: $line"$'\n'
	done < <(grep -n -E '\|[[:space:]]*(head|grep[[:space:]]+(-[a-zA-Z]*[qm]|--quiet|--max-count)|sed[[:space:]]+-n[^|]*q)' "$f" || true)
done
if [[ -n "$bad" ]]; then
	echo "pipes into an early-exiting reader in scripts run under pipefail:" >&2
	printf '%s' "$bad" >&2
	exit 1
fi

step "gofmt"
unformatted="$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"
if [[ -n "$unformatted" ]]; then
	echo "not gofmt-formatted:" >&2
	echo "$unformatted" >&2
	exit 1
fi

step "go vet"
go vet ./...

step "staticcheck"
"$gobin/staticcheck" ./...

step "cross-builds of the binary (static): linux/arm64, darwin/arm64, windows/amd64"
for target in linux/arm64 darwin/arm64 windows/amd64; do
	CGO_ENABLED=0 GOOS="${target%/*}" GOARCH="${target#*/}" go build -trimpath -o /dev/null ./cmd/secrets-broker
	echo "built for $target"
done

step "container image: built from the Dockerfile with podman, then checked"
scripts/image.sh

step "go test -race"
go test -race -count=1 -timeout 30m ./...
