#!/usr/bin/env bash
# image.sh: build the image from the Dockerfile with podman and check it.
#
# Registries that host base images cannot be reached here, so the builder
# stage runs on a local stand-in (the machine's Go toolchain, CA
# certificates and a static busybox for RUN's /bin/sh, imported with
# `podman import`) passed as GO_IMAGE; the Dockerfile is the one a user
# builds with `docker build .`. RUN steps need --isolation=chroot here.
#
# Checks on the built image: the binary is static, the user is 65532,
# `secrets-broker version` runs, and `run --once` renders a secret from a
# real Vault dev server with the image's root file system mounted read-only.
# `podman run` cannot start containers inside this sandbox (setrlimit is not
# permitted), so the image's root file system is run with
# `podman image mount` and `chroot --userspec=65532:65532`; the script says
# which path ran.
#
# Usage: scripts/image.sh            (needs root, podman, busybox-static)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'image: %s\n' "$*"; }

if ! command -v podman >/dev/null || ! [ -x /bin/busybox ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq podman busybox-static >/dev/null
fi

goversion=$(go env GOVERSION)
builder="localhost/secrets-broker-go-builder:${goversion#go}"
if ! podman image exists "$builder"; then
	say "making the builder stand-in $builder from $(go env GOROOT)"
	root=$(mktemp -d)
	trap 'rm -rf "$root"' EXIT
	mkdir -p "$root/usr/local" "$root/bin" "$root/etc/ssl/certs" "$root/tmp" "$root/root"
	cp -a "$(go env GOROOT)" "$root/usr/local/go"
	cp /bin/busybox "$root/bin/busybox"
	for tool in sh mkdir cp echo cat ls; do ln -s busybox "$root/bin/$tool"; done
	cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
	cp /etc/resolv.conf "$root/etc/" 2>/dev/null || true
	tar -C "$root" -c . | podman import \
		--change 'ENV PATH=/usr/local/go/bin:/bin' --change 'ENV HOME=/root' \
		--change "ENV GOPROXY=$(go env GOPROXY)" --change 'ENV GOPATH=/root/go' \
		- "$builder" >/dev/null 2>&1
	rm -rf "$root"
	trap - EXIT
fi

read -r -a stamp <<<"$(scripts/ldflags.sh --build-args)"
image="localhost/secrets-broker:test"
start=$(date +%s)
podman build --quiet --isolation=chroot \
	--build-arg GO_IMAGE="$builder" "${stamp[@]}" \
	-t "$image" . >/dev/null
say "built $image from the Dockerfile in $(($(date +%s) - start)) s"

user=$(podman image inspect --format '{{.Config.User}}' "$image")
[ "$user" = "65532:65532" ] || { say "FAIL: image user is $user, want 65532:65532"; exit 1; }
size=$(podman image inspect --format '{{.Size}}' "$image")
say "user $user; image size $((size / 1024)) KiB"

mnt=$(podman image mount "$image")
ro=$(mktemp -d)
work=$(mktemp -d)
vault_pid=""
daemon_pid=""
cleanup() {
	[ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
	[ -n "$vault_pid" ] && kill "$vault_pid" 2>/dev/null && wait "$vault_pid" 2>/dev/null
	for m in "$ro/secrets" "$ro/etc/secrets-broker" "$ro"; do umount "$m" 2>/dev/null || true; done
	podman image unmount "$image" >/dev/null 2>&1 || true
	rm -rf "$ro" "$work"
}
trap cleanup EXIT

if [[ "$(readelf -l "$mnt/secrets-broker")" == *INTERP* ]]; then
	say "FAIL: the binary is dynamically linked"
	exit 1
fi
say "binary is static ($(($(stat -c %s "$mnt/secrets-broker") / 1024)) KiB, stripped)"
ls "$mnt" | sort | tr '\n' ' ' | sed 's/^/image root: /;s/$/\n/'

say "running the image's root file system with chroot --userspec=65532:65532 (podman run cannot start containers in this sandbox)"
chroot --userspec=65532:65532 "$mnt" /secrets-broker version

# A real Vault dev server on loopback, with one KV secret.
vault="$(scripts/vault-bin.sh)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
token="root-$RANDOM$RANDOM"
"$vault" server -dev -dev-root-token-id="$token" -dev-listen-address="127.0.0.1:$port" -log-level=warn >"$work/vault.log" 2>&1 &
vault_pid=$!
export VAULT_ADDR="http://127.0.0.1:$port"
for _ in $(seq 1 300); do
	if curl -fsS "$VAULT_ADDR/v1/sys/health" >/dev/null 2>&1; then break; fi
	sleep 0.1
done
VAULT_TOKEN="$token" "$vault" kv put secret/app password=from-vault >/dev/null

# The image's root, read-only, with a config and a writable output directory.
mkdir -p "$work/config" "$work/out"
printf '%s' "$token" >"$work/config/token"
cat >"$work/config/broker.yaml" <<YAML
vault:
  address: $VAULT_ADDR
  auth: {method: token, token_file: token}
output_root: /secrets
secrets:
  password: vault:secret/data/app#password
outputs:
  - path: app/password.txt
    secret: password
    mode: "0640"
YAML
chmod -R a+rX "$work/config"
chown 65532:65532 "$work/out"
mount --bind "$mnt" "$ro" && mount -o remount,bind,ro "$ro"
mount --bind "$work/config" "$ro/etc/secrets-broker" 2>/dev/null || {
	say "FAIL: the image has no /etc/secrets-broker mount point"
	exit 1
}
mount --bind "$work/out" "$ro/secrets" 2>/dev/null || {
	say "FAIL: the image has no /secrets mount point"
	exit 1
}
if chroot --userspec=65532:65532 "$ro" /secrets-broker keygen --out /tmp/x.key >/dev/null 2>&1; then
	say "FAIL: the root file system is writable"
	exit 1
fi
chroot --userspec=65532:65532 "$ro" /secrets-broker run --once -c /etc/secrets-broker/broker.yaml
got=$(cat "$work/out/app/password.txt")
[ "$got" = "from-vault" ] || { say "FAIL: rendered '$got'"; exit 1; }
say "run --once rendered a Vault secret with a read-only root file system: OK"

# The image's binary as a sidecar, run as the image's user outside the
# chroot (which has no /proc; a container runtime mounts one). Idle 10 s
# after its render pass, the daemon gives memory back, including its
# executable's pages, which that user does not own (issue 9: an idle
# sidecar at most 14 MiB resident).
mkdir -p "$work/sidecar/out"
sed "s|output_root: /secrets|output_root: $work/sidecar/out|" "$work/config/broker.yaml" >"$work/sidecar/broker.yaml"
cp "$work/config/token" "$work/sidecar/token"
chown -R 65532:65532 "$work/sidecar" && chmod 755 "$work"
(cd "$work/sidecar" && exec setpriv --reuid=65532 --regid=65532 --clear-groups "$mnt/secrets-broker" run --log-level debug -c broker.yaml 2>"$work/daemon.log") &
daemon_pid=$!
for _ in $(seq 1 600); do
	grep -q "idle: gave memory back" "$work/daemon.log" && break
	kill -0 "$daemon_pid" 2>/dev/null || break
	sleep 0.1
done
grep -q "idle: gave memory back" "$work/daemon.log" || { cat "$work/daemon.log"; say "FAIL: the sidecar did not give memory back within 60 s"; exit 1; }
rss=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$daemon_pid/status")
uid=$(awk '$1 == "Uid:" {print $2}' "/proc/$daemon_pid/status")
owner=$(stat -c %u "$mnt/secrets-broker")
[ "$uid" = 65532 ] && [ "$owner" = 0 ] || { say "FAIL: the sidecar runs as uid $uid, its binary owned by uid $owner"; exit 1; }
[ "$rss" -le $((14 * 1024)) ] || { grep "gave memory back" "$work/daemon.log"; say "FAIL: the idle sidecar holds ${rss} KiB, want at most 14 MiB"; exit 1; }
say "idle sidecar, the image's binary (owned by root) run as uid 65532: $((rss / 1024)) MiB resident after giving memory back: OK"
