# secrets-broker image: one static binary and a passwd entry on an empty
# base, running as 65532:65532. No shell, no package manager, no CA bundle:
# the binary carries Mozilla's roots (golang.org/x/crypto/x509roots/fallback),
# used only where the system has none. A bundle mounted at /etc/ssl/certs, or
# SSL_CERT_FILE, replaces them: include the public roots in it if Vault, KMS
# or the IdP use public certificates.
#
#   docker build $(scripts/ldflags.sh --build-args) -t secrets-broker .
#
# (VERSION, COMMIT and DATE as scripts/ldflags.sh computes them. A release
# builds its images from its own reproducible binaries instead:
# scripts/release.sh --image, with scripts/release.Dockerfile.)
#
# The builder image is pinned by digest; override GO_IMAGE to use another
# (scripts/image.sh passes a local stand-in where registries are unreachable).
# The final stage needs nothing pulled.
ARG GO_IMAGE=golang:1.26-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d

FROM ${GO_IMAGE} AS build
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=unknown
RUN go build -trimpath -buildvcs=false -ldflags "-s -w -buildid= -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.date=${DATE}" \
        -o /rootfs/secrets-broker ./cmd/secrets-broker && \
    mkdir -p /rootfs/etc/secrets-broker /rootfs/secrets && \
    echo 'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' > /rootfs/etc/passwd && \
    echo 'nonroot:x:65532:' > /rootfs/etc/group

FROM scratch
ARG VERSION=dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="secrets-broker" \
      org.opencontainers.image.description="Gets API keys and client secrets to the services that need them, safely" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.source="https://github.com/secrets-broker/secrets-broker"
# /etc/secrets-broker: mount the config here; /secrets: the output volume.
COPY --from=build /rootfs/ /
USER 65532:65532
ENV HOME=/home/nonroot
ENTRYPOINT ["/secrets-broker"]
CMD ["run", "--once", "-c", "/etc/secrets-broker/broker.yaml"]
