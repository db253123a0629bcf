#!/usr/bin/env bash
# release.sh: every release artifact of the commit at HEAD, into OUT:
#   secrets-broker_VERSION_OS_ARCH.tar.gz (linux/amd64, linux/arm64,
#     darwin/arm64) and _windows_amd64.zip, each holding the static binary,
#     README.md and LICENSE when present;
#   secrets-broker_VERSION_OS_ARCH.sbom.cdx.json beside each archive, a
#     CycloneDX SBOM of the modules linked into that binary (cyclonedx-gomod
#     bin, from the binary's own build information);
#   secrets-broker_VERSION_image_linux_ARCH.sbom.cdx.json, the SBOM of each
#     image: that binary, /etc/passwd and /etc/group, each with its SHA-256
#     (scripts/imagesbom); no CA bundle: the binary carries Mozilla's roots;
#   secrets-broker_VERSION_SHA256SUMS over all of them.
# Binaries and archives are reproducible: -trimpath, no build id, no VCS
# stamp, version/commit/date from scripts/ldflags.sh (the date is the
# commit's), archives with fixed times and owners. With --image it also
# builds the OCI images for linux/amd64 and linux/arm64 with podman from
# those same binaries (scripts/release.Dockerfile: nothing compiled there).
# Signing and pushing need GitHub (.github/workflows/release.yml).
#
# Usage: scripts/release.sh [--snapshot] [--image] OUT
#   without --snapshot, HEAD must be a tag and the tree clean.
set -euo pipefail
cd "$(dirname "$0")/.."
snapshot=0 image=0
while [[ $# -gt 1 ]]; do
	case "$1" in
	--snapshot) snapshot=1 ;;
	--image) image=1 ;;
	*) echo "release.sh: unknown flag $1" >&2; exit 2 ;;
	esac
	shift
done
out="${1:?usage: scripts/release.sh [--snapshot] [--image] OUT}"
if [[ $snapshot == 0 ]]; then
	# The tag that triggered the release (GITHUB_REF_NAME), or HEAD's only
	# tag: never one picked by git describe among several.
	mapfile -t tags < <(git tag --points-at HEAD 'v*')
	VERSION="${GITHUB_REF_NAME:-}"
	if [[ -z "$VERSION" ]]; then
		[[ ${#tags[@]} == 1 ]] || { echo "release.sh: HEAD has ${#tags[@]} v* tags (${tags[*]:-none}); tag it once, set GITHUB_REF_NAME to the one to release, or use --snapshot" >&2; exit 2; }
		VERSION="${tags[0]}"
	fi
	[[ " ${tags[*]} " == *" $VERSION "* ]] || { echo "release.sh: the tag $VERSION does not point at HEAD ($(git rev-parse --short HEAD)); check out the tag to release" >&2; exit 2; }
	[[ -z "$(git status --porcelain)" ]] || { echo "release.sh: the tree has changes; a release is built from a clean commit" >&2; exit 2; }
	export VERSION
fi
ldflags="$(scripts/ldflags.sh)"
version="${ldflags#*main.version=}" version="${version%% *}"
date="${ldflags#*main.date=}" date="${date%% *}"
epoch="$(git log -1 --format=%ct)"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
rm -rf "$out/build" "$out/image"
cdx="$(go env GOPATH)/bin/cyclonedx-gomod"
[[ -x "$cdx" ]] || { echo "release.sh: cyclonedx-gomod is missing: go install github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@v1.10.0" >&2; exit 1; }

for platform in linux/amd64 linux/arm64 darwin/arm64 windows/amd64; do
	os="${platform%/*}" arch="${platform#*/}"
	dir="$out/build/${os}_$arch"
	exe=secrets-broker
	[[ $os == windows ]] && exe=secrets-broker.exe
	mkdir -p "$dir"
	CGO_ENABLED=0 GOOS="$os" GOARCH="$arch" GOFLAGS=-mod=readonly go build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$dir/$exe" ./cmd/secrets-broker
	files=("$exe")
	for doc in README.md LICENSE; do
		[[ -f "$doc" ]] && cp "$doc" "$dir/" && touch -d "@$epoch" "$dir/$doc" && files+=("$doc")
	done
	touch -d "@$epoch" "$dir/$exe"
	name="secrets-broker_${version}_${os}_$arch"
	# From the binary's own build information: exactly the modules linked
	# into what ships (and no git needed, so it works in a worktree). Its
	# purls take the platform from GOOS and GOARCH, not from the binary.
	GOOS="$os" GOARCH="$arch" "$cdx" bin -json -std -noserial -notimestamp -version "$version" -output "$out/$name.sbom.cdx.json" "$dir/$exe"
	if [[ $os == windows ]]; then
		go run ./scripts/zipdet "$out/$name.zip" "$date" "$dir" "${files[@]}"
	else
		# Modes fixed, not the builder's umask (zipdet fixes them too):
		# the binary 0755, documents 0644.
		tar --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner --mode=u=rwX,go=rX \
			-C "$dir" -cf - "${files[@]}" | gzip -n -9 >"$out/$name.tar.gz"
	fi
	echo "release: $name"
done

# Each image's root file system, and its SBOM (made with or without
# --image, so the checksums do not depend on it). Nothing in it comes from
# the build machine: no CA bundle (the binary carries Mozilla's roots).
for arch in amd64 arm64; do
	ctx="$out/image/linux_$arch"
	mkdir -p "$ctx/rootfs/etc" "$ctx/rootfs/etc/secrets-broker" "$ctx/rootfs/secrets"
	cp "$out/build/linux_$arch/secrets-broker" "$ctx/rootfs/secrets-broker"
	echo 'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$ctx/rootfs/etc/passwd"
	echo 'nonroot:x:65532:' >"$ctx/rootfs/etc/group"
	chmod 0755 "$ctx/rootfs/secrets-broker" "$ctx/rootfs/etc" "$ctx/rootfs/etc/secrets-broker" "$ctx/rootfs/secrets"
	chmod 0644 "$ctx/rootfs/etc/passwd" "$ctx/rootfs/etc/group"
	name="secrets-broker_${version}_image_linux_$arch.sbom.cdx.json"
	go run ./scripts/imagesbom "$out/$name" "$out/secrets-broker_${version}_linux_$arch.sbom.cdx.json" \
		"${IMAGE:-ghcr.io/secrets-broker/secrets-broker}" "$version" "$ctx/rootfs"
	echo "release: $name"
done

(cd "$out" && sha256sum -- *.tar.gz *.zip *.sbom.cdx.json >"secrets-broker_${version}_SHA256SUMS")
echo "release: secrets-broker_${version}_SHA256SUMS"

if [[ $image == 1 ]]; then
	commit="${ldflags#*main.commit=}" commit="${commit%% *}"
	tag="${version//+/-}" # an image tag has no +
	for arch in amd64 arm64; do
		ctx="$out/image/linux_$arch"
		podman build --quiet --isolation=chroot --platform "linux/$arch" --build-arg VERSION="$version" --build-arg COMMIT="$commit" \
			-f scripts/release.Dockerfile -t "localhost/secrets-broker:$tag-$arch" "$ctx" >/dev/null
		echo "release: image localhost/secrets-broker:$tag-$arch"
	done
fi
