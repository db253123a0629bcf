# The release image: the release's own static binary (built and checksummed
# by scripts/release.sh, byte-identical to the archive's; Mozilla's roots
# compiled in) and a passwd entry, nothing else: no CA bundle of the
# machine that built it; built per architecture from a root
# file system release.sh prepares, so nothing is compiled or run here.
FROM scratch
ARG VERSION=dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="secrets-broker" \
      org.opencontainers.image.description="Gets API keys and client secrets to the services that need them, safely" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.source="https://github.com/secrets-broker/secrets-broker"
COPY rootfs/ /
USER 65532:65532
ENV HOME=/home/nonroot
ENTRYPOINT ["/secrets-broker"]
CMD ["run", "--once", "-c", "/etc/secrets-broker/broker.yaml"]
