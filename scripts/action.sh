#!/usr/bin/env bash
# action.sh: the GitHub Action's step (action.yml). Inputs arrive as
# INPUT_* variables; GITHUB_OUTPUT, GITHUB_ENV, RUNNER_OS, RUNNER_ARCH and
# RUNNER_TEMP are the runner's. Downloads the pinned release, refuses it
# unless its SHA-256 is the pinned one, the release's SHA256SUMS lists it
# with that checksum, and the SHA256SUMS' Sigstore bundle verifies as
# signed by this repository's release workflow at exactly that tag
# (cosign: action.yml installs it; INPUT_VERIFY_SIGNATURE=false skips this
# with a warning), then runs `secrets-broker exec --github-actions
# --github-env --only NAME...`: exactly the secrets lines' secrets are
# fetched, every value and line masked first, then appended to GITHUB_ENV
# (nothing else of a config's secrets or exec.env); their names go to
# GITHUB_OUTPUT.
set -euo pipefail
version="${INPUT_VERSION:?version is required (e.g. v1.2.3)}"
want="${INPUT_SHA256:?sha256 is required: pin the checksum of the release archive}"
case "${RUNNER_OS:-Linux}/${RUNNER_ARCH:-X64}" in
Linux/X64) platform=linux_amd64 ext=tar.gz ;;
Linux/ARM64) platform=linux_arm64 ext=tar.gz ;;
macOS/ARM64) platform=darwin_arm64 ext=tar.gz ;;
Windows/X64) platform=windows_amd64 ext=zip ;;
*) echo "::error::secrets-broker: no release for ${RUNNER_OS:-}/${RUNNER_ARCH:-}" >&2; exit 1 ;;
esac
work="$(mktemp -d "${RUNNER_TEMP:-/tmp}/secrets-broker.XXXXXX")"
trap 'rm -rf "$work"' EXIT
archive="secrets-broker_${version}_${platform}.${ext}"
sums="secrets-broker_${version}_SHA256SUMS"
base="${INPUT_DOWNLOAD_URL%/}/$version"
curl --fail --silent --show-error --location --proto '=https,file' -o "$work/$archive" "$base/$archive"
curl --fail --silent --show-error --location --proto '=https,file' -o "$work/$sums" "$base/$sums"
got="$(sha256sum "$work/$archive")" got="${got%% *}"
if [[ "$got" != "$want" ]]; then
	echo "::error::secrets-broker: $archive has SHA-256 $got, not the pinned $want: refusing to run it" >&2
	exit 1
fi
listed=""
while read -r sum name; do
	[[ "$name" == "$archive" ]] && listed="$sum"
done <"$work/$sums"
if [[ "$listed" != "$want" ]]; then
	echo "::error::secrets-broker: the release's $sums does not list $archive with the pinned checksum" >&2
	exit 1
fi
if [[ "${INPUT_VERIFY_SIGNATURE:-true}" == false ]]; then
	echo "::warning::secrets-broker: verify-signature is false: $archive is trusted on its pinned checksum alone"
else
	command -v cosign >/dev/null || { echo "::error::secrets-broker: cosign is not on the runner, so the release's signature cannot be verified; action.yml installs it, or set verify-signature: false to rely on the pinned checksum alone" >&2; exit 1; }
	curl --fail --silent --show-error --location --proto '=https,file' -o "$work/$sums.sigstore.json" "$base/$sums.sigstore.json" ||
		{ echo "::error::secrets-broker: the release has no signature $sums.sigstore.json: refusing it" >&2; exit 1; }
	# Exactly this repository's release workflow, run for exactly this tag.
	cosign verify-blob --bundle "$work/$sums.sigstore.json" \
		--certificate-identity "https://github.com/secrets-broker/secrets-broker/.github/workflows/release.yml@refs/tags/$version" \
		--certificate-oidc-issuer https://token.actions.githubusercontent.com "$work/$sums" >/dev/null ||
		{ echo "::error::secrets-broker: $sums is not signed by the release workflow for $version: refusing it" >&2; exit 1; }
	echo "secrets-broker: $sums signature verified (release workflow, $version)"
fi
mkdir -p "$work/bin"
if [[ $ext == zip ]]; then
	unzip -q -o "$work/$archive" -d "$work/bin"
else
	tar -xzf "$work/$archive" -C "$work/bin"
fi
args=(exec --github-actions --github-env "${GITHUB_ENV:?GITHUB_ENV is not set: run this as a GitHub Actions step}")
names=()
while IFS= read -r line; do
	line="${line#"${line%%[![:space:]]*}"}" line="${line%"${line##*[![:space:]]}"}"
	[[ -z "$line" || "$line" == \#* ]] && continue
	args+=(--secret "$line" --only "${line%%=*}")
	names+=("${line%%=*}")
done <<<"${INPUT_SECRETS:-}"
if [[ -n "${INPUT_CONFIG:-}" ]]; then
	args+=(-c "$INPUT_CONFIG")
fi
if [[ ${#names[@]} -eq 0 ]]; then
	echo "::error::secrets-broker: give secrets: NAME=REF lines (config only says how to reach and log in to Vault)" >&2
	exit 1
fi
"$work/bin/secrets-broker" version
# No command: the broker masks, then appends to GITHUB_ENV the secrets it
# resolved, with a random heredoc delimiter, and exits.
"$work/bin/secrets-broker" "${args[@]}"
echo "names=${names[*]}" >>"$GITHUB_OUTPUT"
echo "secrets-broker: ${#names[@]} secret(s) exported, masked"
