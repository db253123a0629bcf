#!/usr/bin/env bash
# cold-check.sh: run every builder script the way a fresh machine does, with
# nothing cached, and print how long each took. A fresh CI machine takes this
# path on its first `make test`; this script lets a developer take it on
# purpose before changing a builder, instead of learning it from a newcomer.
#
# Usage: scripts/cold-check.sh            # empty builder cache, empty Go caches
#        scripts/cold-check.sh DIR        # DIR (must be empty or missing) as the builder cache
# With FULL_GO_CACHE=0 the Go module and build caches of this machine are
# reused, which only checks the scripts (minutes instead of about 40).
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${1:-$(mktemp -d)}"
mkdir -p "$cache"
shopt -s nullglob dotglob
left=("$cache"/*)
shopt -u nullglob dotglob
for f in "${left[@]}"; do
	case "$(basename "$f")" in
	.*.lock) ;;
	*)
		echo "cold-check: $cache is not empty ($f); give an empty or missing directory" >&2
		exit 2
		;;
	esac
done
export SECRETS_BROKER_CACHE="$cache"
if [[ "${FULL_GO_CACHE:-1}" != 0 ]]; then
	gotmp="$(mktemp -d)"
	export GOMODCACHE="$gotmp/mod" GOCACHE="$gotmp/build"
	echo "cold-check: empty Go module and build caches in $gotmp" >&2
fi

total=0
for builder in vault-bin.sh k8s-bin.sh consul-template-bin.sh; do
	start=$SECONDS
	path="$(scripts/$builder)"
	took=$((SECONDS - start))
	total=$((total + took))
	printf 'cold-check: %-24s %5d s  %s\n' "$builder" "$took" "$path"
	# A second call must find the cache and build nothing.
	start=$SECONDS
	again="$(scripts/$builder)"
	if [[ "$again" != "$path" ]]; then
		echo "cold-check: $builder printed $again on its second call, $path on its first" >&2
		exit 1
	fi
	printf 'cold-check: %-24s %5d s  (cached)\n' "$builder" "$((SECONDS - start))"
done
printf 'cold-check: all builders from an empty cache in %d s\n' "$total"
