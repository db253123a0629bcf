#!/usr/bin/env bash
# ldflags.sh: the linker flags every build of the binary uses (Makefile,
# scripts/release.sh; the Dockerfile takes the same three values as build
# arguments): stripped, no build id, and the version, commit and date
# stamped for `secrets-broker version`. The date is the commit's time, not
# the build's, so two builds of one commit are byte-identical.
#
#   VERSION  default: the tag at HEAD, else v0.0.0-dev+SHORTCOMMIT
#   COMMIT   default: git rev-parse HEAD
#   DATE     default: the commit's time, UTC, RFC 3339
#
# With --build-args it prints the three as docker/podman --build-arg flags.
set -euo pipefail
cd "$(dirname "$0")/.."
commit="${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}"
if [[ -z "${VERSION:-}" ]]; then
	VERSION="$(git describe --tags --exact-match 2>/dev/null || true)"
	[[ -n "$VERSION" ]] || VERSION="v0.0.0-dev+${commit:0:12}"
fi
date="${DATE:-$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo unknown)}"
if [[ "${1:-}" == --build-args ]]; then
	echo "--build-arg VERSION=$VERSION --build-arg COMMIT=$commit --build-arg DATE=$date"
	exit 0
fi
echo "-s -w -buildid= -X main.version=$VERSION -X main.commit=$commit -X main.date=$date"
